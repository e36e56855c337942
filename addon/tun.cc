// TUN interface: open (TUNSETIFF), configuration ioctls, the batching reader thread, batched writes.
// Threads: the JS thread opens, configures, writes and closes; one reader thread per started
// device polls the TUN fd and an eventfd (shutdown) and only ever touches its own slots (native-owned
// Blocks held by the reader), the TUN fd and the ThreadSafeFunction. Invariants: a slot is owned by
// exactly one side at a time (free list under the mutex); the thread is joined before either
// descriptor is closed; the ThreadSafeFunction is released exactly once, after the join.
// Configuration (MTU, address, flags) runs synchronously on the JS thread: these are quick
// netdevice ioctls on a local socket that never wait for a device, unlike volume I/O.
#include "tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "buffer.h"
#include "channel.h"
#include "gso.h"
#include "thread-name.h"

namespace lunlink {

struct TunBatch {
  TunReader* reader;
  int slot;
  uint32_t count;
  uint32_t bytes;
  uint32_t superpackets;  // vnet-framed TCP superpackets among the packets
  uint32_t malformed;     // packets dropped for a vnet header the checks refused (gso.h)
  int32_t error;  // errno that ended the reader thread (0: more batches follow)
  Syscall syscall;
};

struct TunReader {
  int fd = -1;
  int wakeFd = -1;
  bool offload = false;  // reads start with a virtio_net_hdr
  std::mutex mutex;
  std::condition_variable freed;
  bool stopping = false;     // guarded by mutex
  int inFlight = 0;          // guarded by mutex: batches posted to JS and not yet recycled
  bool accumulating = false; // guarded by mutex: the thread holds a partial batch until inFlight is 0
  std::vector<int> free;     // guarded by mutex; capacity kTunSlots, never reallocates
  bool delivering = true;    // JS thread only: false once closed, late batches are dropped
  bool heldByJs[kTunSlots] = {};  // JS thread only: slots JS will hand back with recycle(slot)
  // Slot memory is native-owned (buffer.h): JS sees it through external ArrayBuffers, whose
  // finalizers hold their own references, so neither a JS view outliving the device nor any JS
  // operation on a view can free or move memory this thread writes into.
  BlockRef packetBlocks[kTunSlots];
  BlockRef lengthBlocks[kTunSlots];
  uint8_t* data[kTunSlots] = {};
  uint32_t* lengths[kTunSlots] = {};
  TunBatch batches[kTunSlots] = {};
  Napi::ThreadSafeFunction tsfn;
  std::thread thread;

  void Run();
  void Recycle(int slot);
  // Fills batches[slot] from the descriptor; returns false if the thread must end (error).
  void Drain(TunBatch& batch);
  ssize_t Unframe(uint8_t* at, size_t n, TunBatch& batch);
  static void Deliver(Napi::Env env, Napi::Function onBatch, TunBatch* batch);
};

namespace {

// A JS error for a failed syscall: lib/tun maps errno + syscall to a coded LunlinkError.
Napi::Error SystemError(Napi::Env env, int error, Syscall syscall) {
  Napi::Error e = Napi::Error::New(env, std::string("syscall failed: ") + std::strerror(error));
  e.Set("errno", Napi::Number::New(env, error));
  e.Set("syscallId", Napi::Number::New(env, static_cast<int32_t>(syscall)));
  return e;
}

bool ValidName(const std::string& name) {
  if (name.size() >= IFNAMSIZ || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '\0' || c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n') return false;
  }
  return true;
}

// Runs fn(socketFd) on a fresh AF_INET datagram socket in this process's network namespace.
template <typename Fn>
void WithSocket(Napi::Env env, Fn fn) {
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw SystemError(env, errno, Syscall::kSocket);
  const int error = fn(s);
  close(s);
  if (error != 0) throw SystemError(env, error, Syscall::kIoctl);
}

void NameInto(struct ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof(*ifr));
  std::memcpy(ifr->ifr_name, name.data(), name.size());  // size < IFNAMSIZ: checked at open
}

int Ioctl(int fd, unsigned long request, struct ifreq* ifr) {
  int r;
  do {
    r = ioctl(fd, request, ifr);
  } while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : errno;
}

uint32_t U32Arg(const Napi::Value& value, const char* name, uint32_t min, uint32_t max) {
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), std::string(name) + " must be a number");
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= min) || d > max || std::floor(d) != d) {
    throw Napi::RangeError::New(value.Env(), std::string(name) + " must be an integer in " + std::to_string(min) + ".." +
                                                 std::to_string(max));
  }
  return static_cast<uint32_t>(d);
}

// Errors of one packet, not of the device: the kernel refused or had no room for this packet
// (EINVAL: neither IPv4 nor IPv6; EIO: interface down). Counted as a drop, like a network would.
bool IsPacketDrop(int error) {
  return error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS || error == ENOMEM || error == EINVAL ||
         error == EIO || error == EMSGSIZE;
}

}  // namespace

// ---- reader thread -------------------------------------------------------------------------

// Batching policy: when JS has no batch in hand the first packets go out at once (latency); while
// JS is still busy with earlier batches the thread keeps filling the current slot (throughput),
// and posts it when it is full or JS has caught up (Recycle wakes the thread through the eventfd).
void TunReader::Run() {
  NameThisThread("lunlink-tun");
  int slot = -1;
  for (;;) {
    if (slot < 0) {
      std::unique_lock<std::mutex> lock(mutex);
      // JS behind: hold here, reading nothing; the kernel's txqueue then drops, like a network.
      freed.wait(lock, [this] { return stopping || !free.empty(); });
      if (stopping) return;
      slot = free.back();
      free.pop_back();
      TunBatch& fresh = batches[slot];
      fresh.count = 0;
      fresh.bytes = 0;
      fresh.superpackets = 0;
      fresh.malformed = 0;
      fresh.error = 0;
      fresh.syscall = Syscall::kNone;
    }
    TunBatch& batch = batches[slot];

    struct pollfd fds[2] = {{fd, POLLIN, 0}, {wakeFd, POLLIN, 0}};
    const int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      batch.error = errno;
      batch.syscall = Syscall::kPoll;
    } else {
      if (fds[1].revents != 0) {
        uint64_t value;
        ssize_t n;
        do {
          n = read(wakeFd, &value, sizeof(value));  // reset the counter; EAGAIN cannot happen here
        } while (n < 0 && errno == EINTR);
        std::lock_guard<std::mutex> lock(mutex);
        if (stopping || n != static_cast<ssize_t>(sizeof(value))) return;  // shutdown (or a broken eventfd)
      }
      if (fds[0].revents != 0) {
        const uint32_t before = batch.count;
        Drain(batch);
        if (batch.count == before && batch.error == 0 && (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
          batch.error = EIO;  // error condition without an errno to read: the interface is gone
          batch.syscall = Syscall::kPoll;
        }
      }
    }
    const bool full = batch.count >= kTunBatchPackets || kTunBatchBytes - batch.bytes < kTunReadRoomBytes;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (batch.error == 0 && !full && (batch.count == 0 || inFlight > 0)) {
        accumulating = batch.count > 0;  // ask Recycle to wake us when JS has caught up
        continue;
      }
      accumulating = false;
      inFlight++;
    }
    const int posted = slot;
    slot = -1;
    if (tsfn.NonBlockingCall(&batches[posted], Deliver) != napi_ok) return;  // environment closing
    if (batches[posted].error != 0) return;  // reported to JS; the device is unusable
  }
}

void TunReader::Drain(TunBatch& batch) {
  uint8_t* base = data[batch.slot];
  uint32_t* table = lengths[batch.slot];
  while (batch.count < kTunBatchPackets && kTunBatchBytes - batch.bytes >= kTunReadRoomBytes) {
    uint8_t* at = base + batch.bytes;
    ssize_t n = read(fd, at, kTunReadRoomBytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      batch.error = errno;
      batch.syscall = Syscall::kRead;
      return;
    }
    if (n == 0) return;  // nothing to read: a TUN read never returns 0 for a packet
    if (offload) {
      n = Unframe(at, static_cast<size_t>(n), batch);
      if (n == 0) continue;  // refused (counted)
    }
    table[batch.count++] = static_cast<uint32_t>(n);
    batch.bytes += static_cast<uint32_t>(n);
  }
}

// A read with offload on: a plain packet loses its vnet header (moved down over it) after its
// checksum is completed; a TCP superpacket keeps it, hdr_len set to its real header length (the
// kernel reports the linear part, which may be more). Returns the packet's length in the batch, 0 if
// the header was refused (the kernel never sends one: counted, dropped).
ssize_t TunReader::Unframe(uint8_t* at, size_t n, TunBatch& batch) {
  if (n <= kVnetHdrBytes) {
    batch.malformed++;
    return 0;
  }
  VnetHdr h = ReadVnetHdr(at);
  const size_t packetBytes = n - kVnetHdrBytes;
  if (h.gsoType == kVnetGsoNone) {
    if (CompleteChecksum(at + kVnetHdrBytes, packetBytes, h) != GsoError::kOk) {
      batch.malformed++;
      return 0;
    }
    std::memmove(at, at + kVnetHdrBytes, packetBytes);
    return static_cast<ssize_t>(packetBytes);
  }
  size_t needBytes = 0;
  if (SegmentBounds(at + kVnetHdrBytes, packetBytes, h, &needBytes) <= 0) {
    batch.malformed++;
    return 0;
  }
  const uint8_t* tcp = at + kVnetHdrBytes + h.csumStart;
  h.hdrLen = static_cast<uint16_t>(h.csumStart + (tcp[12] >> 4) * 4);
  WriteVnetHdr(at, h);
  batch.superpackets++;
  return static_cast<ssize_t>(n);
}

void TunReader::Recycle(int slot) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex);
    free.push_back(slot);
    inFlight--;
    wake = accumulating && inFlight == 0;
    if (wake) accumulating = false;
  }
  freed.notify_one();
  if (wake) {
    const uint64_t one = 1;
    ssize_t n;
    do {
      n = write(wakeFd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    // Cannot fail: the thread resets the counter on every wake-up, so it never nears overflow.
    if (n != static_cast<ssize_t>(sizeof(one))) std::abort();
  }
}

// JS thread: onBatch(slot, count, bytes, errno, syscallId) runs synchronously; the slot's buffers
// are valid only during that call. If it returns true, JS keeps the slot until recycle(slot) (it
// hands slots back once per event-loop turn: Node drains up to 1000 queued thread-safe calls in one
// turn, so recycling at once let a busy TUN keep the loop away from timers for hundreds of ms);
// otherwise the slot goes back to the thread as soon as the call returns.
void TunReader::Deliver(Napi::Env env, Napi::Function onBatch, TunBatch* batch) {
  TunReader* reader = batch->reader;
  if (env == nullptr || onBatch.IsEmpty() || !reader->delivering) {
    reader->Recycle(batch->slot);
    return;
  }
  try {
    Napi::HandleScope scope(env);
    Napi::Value keep = onBatch.Call({Napi::Number::New(env, batch->slot), Napi::Number::New(env, batch->count),
                                     Napi::Number::New(env, batch->bytes), Napi::Number::New(env, batch->error),
                                     Napi::Number::New(env, static_cast<int32_t>(batch->syscall)),
                                     Napi::Number::New(env, batch->superpackets), Napi::Number::New(env, batch->malformed)});
    if (keep.IsBoolean() && keep.As<Napi::Boolean>().Value() && batch->error == 0) {
      reader->heldByJs[batch->slot] = true;
    } else {
      reader->Recycle(batch->slot);
    }
  } catch (const Napi::Error& error) {
    // The packet handler threw (an uncaught exception, as for any listener) or the environment is
    // terminating: recycle the slot, and hand the exception back to JS if it still runs.
    reader->Recycle(batch->slot);
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && !pending && !error.IsEmpty()) {
      napi_throw(env, error.Value());
    }
  }
}

// ---- JS surface ----------------------------------------------------------------------------

Napi::Function NativeTun::Define(Napi::Env env) {
  return DefineClass(env, "NativeTun",
                     {
                         InstanceMethod<&NativeTun::Open>("open"),
                         InstanceMethod<&NativeTun::SetMtu>("setMtu"),
                         InstanceMethod<&NativeTun::SetAddress>("setAddress"),
                         InstanceMethod<&NativeTun::SetUp>("setUp"),
                         InstanceMethod<&NativeTun::Info>("info"),
                         InstanceMethod<&NativeTun::Start>("start"),
                         InstanceMethod<&NativeTun::Write>("write"),
                         InstanceMethod<&NativeTun::WriteBatch>("writeBatch"),
                         InstanceMethod<&NativeTun::Close>("close"),
                         InstanceMethod<&NativeTun::RecycleSlot>("recycle"),
                     });
}

NativeTun::NativeTun(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTun>(info), env_(info.Env()) {}

NativeTun::~NativeTun() {
  // Garbage-collected without close(): only possible when not started (a started device's
  // ThreadSafeFunction holds its onBatch callback, and so the JS object, until close).
  RemoveCleanupHook();
  Shutdown();
}

void NativeTun::AddCleanupHook() {
  if (hooked_) return;
  if (napi_add_env_cleanup_hook(env_, Cleanup, this) != napi_ok) throw Napi::Error::New(env_, "napi_add_env_cleanup_hook failed");
  hooked_ = true;
}

void NativeTun::RemoveCleanupHook() {
  if (!hooked_) return;
  hooked_ = false;
  napi_remove_env_cleanup_hook(env_, Cleanup, this);
}

// Environment teardown with the device still open. Registered after the ThreadSafeFunction was
// created (re-registered by start), so it runs before Node deletes it (hooks run last-in, first-out).
void NativeTun::Cleanup(void* arg) {
  auto* self = static_cast<NativeTun*>(arg);
  self->hooked_ = false;  // Node removes a hook as it runs it
  self->Shutdown();
}

int NativeTun::Shutdown() {
  closed_ = true;
  if (reader_) {
    {
      std::lock_guard<std::mutex> lock(reader_->mutex);
      reader_->stopping = true;
    }
    reader_->freed.notify_all();
    const uint64_t one = 1;
    ssize_t n;
    do {
      n = write(reader_->wakeFd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    // The counter cannot overflow (one write per shutdown), so this write cannot fail on a valid
    // eventfd; if it did, the thread would never wake: crash loudly rather than hang in join.
    if (n != static_cast<ssize_t>(sizeof(one))) std::abort();
    if (reader_->thread.joinable()) reader_->thread.join();
    {
      // The thread is gone: late batches are recycled without waking anyone (wakeFd closes below).
      std::lock_guard<std::mutex> lock(reader_->mutex);
      reader_->accumulating = false;
    }
    reader_->delivering = false;
    reader_->tsfn.Release();
    close(reader_->wakeFd);
    reader_->wakeFd = -1;
    reader_.reset();  // the ThreadSafeFunction's finalizer holds the last reference
  }
  int error = 0;
  if (fd_ >= 0) {
    if (close(fd_) != 0 && errno != EINTR) error = errno;  // EINTR: the descriptor is gone anyway
    fd_ = -1;
  }
  return error;
}

void NativeTun::RequireOpen(Napi::Env env) const {
  if (fd_ < 0 || closed_) throw Napi::Error::New(env, "the TUN device is not open");
}

// open(name, offload) -> the interface's actual name. "" lets the kernel pick tun%d. With offload,
// IFF_VNET_HDR and TUNSETOFFLOAD(CSUM | TSO4 | TSO6); a kernel that refuses TUNSETOFFLOAD gets the
// device reopened without them (offload off, the errno kept for info()).
Napi::Value NativeTun::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "open(name, offload?)");
  if (fd_ >= 0 || closed_) throw Napi::Error::New(env, "open called twice");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!ValidName(name)) throw Napi::RangeError::New(env, "invalid interface name");
  bool offload = info.Length() >= 2 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();

  int fd;
  struct ifreq ifr;
  for (;;) {
    do {
      fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) throw SystemError(env, errno, Syscall::kOpen);
    NameInto(&ifr, name);
    ifr.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0));
    const int error = Ioctl(fd, TUNSETIFF, &ifr);
    if (error != 0) {
      close(fd);
      throw SystemError(env, error, Syscall::kIoctl);
    }
    if (!offload) break;
    int r;
    do {
      r = ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6));
    } while (r != 0 && errno == EINTR);
    if (r == 0) break;
    offloadError_ = errno;
    offload = false;
    close(fd);  // a persistent name is not held: the interface goes with its last descriptor
  }
  fd_ = fd;
  offload_ = offload;
  name_.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  AddCleanupHook();
  return Napi::String::New(env, name_);
}

Napi::Value NativeTun::SetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  const uint32_t mtu = U32Arg(info[0], "mtu", 68, 65535);
  WithSocket(env, [&](int s) {
    struct ifreq ifr;
    NameInto(&ifr, name_);
    ifr.ifr_mtu = static_cast<int>(mtu);
    return Ioctl(s, SIOCSIFMTU, &ifr);
  });
  return env.Undefined();
}

// setAddress(address: u32, prefixLength: 1..32): SIOCSIFADDR then SIOCSIFNETMASK.
Napi::Value NativeTun::SetAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  const uint32_t address = U32Arg(info[0], "address", 0, 0xffffffffu);
  const uint32_t prefix = U32Arg(info[1], "prefixLength", 1, 32);
  const uint32_t mask = prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
  WithSocket(env, [&](int s) {
    struct ifreq ifr;
    NameInto(&ifr, name_);
    struct sockaddr_in sin = {};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(address);
    std::memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
    int error = Ioctl(s, SIOCSIFADDR, &ifr);
    if (error != 0) return error;
    sin.sin_addr.s_addr = htonl(mask);
    std::memcpy(&ifr.ifr_netmask, &sin, sizeof(sin));
    return Ioctl(s, SIOCSIFNETMASK, &ifr);
  });
  return env.Undefined();
}

Napi::Value NativeTun::SetUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(env, "setUp(boolean)");
  const bool up = info[0].As<Napi::Boolean>().Value();
  WithSocket(env, [&](int s) {
    struct ifreq ifr;
    NameInto(&ifr, name_);
    int error = Ioctl(s, SIOCGIFFLAGS, &ifr);
    if (error != 0) return error;
    if (up) {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    } else {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
    }
    return Ioctl(s, SIOCSIFFLAGS, &ifr);
  });
  return env.Undefined();
}

// info() -> { name, ifindex, flags, mtu }
Napi::Value NativeTun::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  int ifindex = 0;
  int flags = 0;
  int mtu = 0;
  WithSocket(env, [&](int s) {
    struct ifreq ifr;
    NameInto(&ifr, name_);
    int error = Ioctl(s, SIOCGIFINDEX, &ifr);
    if (error != 0) return error;
    ifindex = ifr.ifr_ifindex;
    error = Ioctl(s, SIOCGIFFLAGS, &ifr);
    if (error != 0) return error;
    flags = static_cast<unsigned short>(ifr.ifr_flags);
    error = Ioctl(s, SIOCGIFMTU, &ifr);
    if (error != 0) return error;
    mtu = ifr.ifr_mtu;
    return 0;
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", name_);
  out.Set("ifindex", ifindex);
  out.Set("flags", flags);
  out.Set("mtu", mtu);
  out.Set("offload", offload_);
  out.Set("offloadErrno", offloadError_);
  return out;
}

// start(onBatch) -> [[packets: Uint8Array, lengths: Uint32Array], ...] (kTunSlots pairs).
// onBatch(slot, count, bytes, errno, syscallId) is called on the JS thread for each batch.
Napi::Value NativeTun::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "start(onBatch)");
  if (reader_) throw Napi::Error::New(env, "start called twice");

  auto reader = std::make_shared<TunReader>();
  reader->fd = fd_;
  reader->offload = offload_;
  reader->wakeFd = eventfd(0, EFD_CLOEXEC);
  if (reader->wakeFd < 0) throw SystemError(env, errno, Syscall::kEventfd);
  reader->free.reserve(kTunSlots);
  Napi::Array slots = Napi::Array::New(env, kTunSlots);
  try {
    for (int i = 0; i < kTunSlots; i++) {
      BlockRef packetBlock = NewBlock(kTunBatchBytes, 64);
      BlockRef lengthBlock = NewBlock(kTunBatchPackets * sizeof(uint32_t), 64);
      if (!packetBlock || !lengthBlock) throw Napi::RangeError::New(env, "TUN batch buffers: out of memory");
      Napi::Uint8Array packets = Napi::Uint8Array::New(env, kTunBatchBytes, ExposeBlock(env, packetBlock), 0);
      Napi::Uint32Array lengths = Napi::Uint32Array::New(env, kTunBatchPackets, ExposeBlock(env, lengthBlock), 0);
      reader->packetBlocks[i] = packetBlock;
      reader->lengthBlocks[i] = lengthBlock;
      reader->data[i] = packetBlock->data;
      reader->lengths[i] = reinterpret_cast<uint32_t*>(lengthBlock->data);
      reader->batches[i] = TunBatch{reader.get(), i, 0, 0, 0, 0, 0, Syscall::kNone};
      reader->free.push_back(kTunSlots - 1 - i);
      Napi::Array pair = Napi::Array::New(env, 2);
      pair.Set(0u, packets);
      pair.Set(1u, lengths);
      slots.Set(static_cast<uint32_t>(i), pair);
    }
    // The finalizer owns one reference to the reader: queued batches may be delivered (and dropped)
    // after close, so the reader outlives the NativeTun if need be.
    std::unique_ptr<std::shared_ptr<TunReader>> keep(new std::shared_ptr<TunReader>(reader));
    reader->tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "lunlink-tun-batches", 0, 1, keep.get(),
                                                 [](Napi::Env, std::shared_ptr<TunReader>* kept) { delete kept; });
    keep.release();  // owned by the finalizer from here on
  } catch (...) {
    close(reader->wakeFd);
    throw;
  }
  reader_ = reader;
  // Re-register so that this hook runs before the ThreadSafeFunction's own teardown.
  RemoveCleanupHook();
  AddCleanupHook();
  try {
    reader_->thread = std::thread([r = reader_.get()] { r->Run(); });
  } catch (const std::exception&) {  // std::system_error (EAGAIN) or bad_alloc: never into N-API
    reader_->tsfn.Release();
    close(reader_->wakeFd);
    reader_.reset();
    throw Napi::Error::New(env, "could not start the TUN reader thread");
  }
  return slots;
}

bool NativeTun::WriteRaw(Napi::Env env, const struct iovec* iov, int iovcnt, size_t length) {
  for (;;) {
    const ssize_t n = writev(fd_, iov, iovcnt);
    if (n >= 0) return static_cast<size_t>(n) == length;  // a TUN write is all or nothing
    if (errno == EINTR) continue;
    if (IsPacketDrop(errno)) return false;
    throw SystemError(env, errno, Syscall::kWrite);
  }
}

// One packet, bare or vnet-framed (first byte's high nibble 0): offload on, a bare packet gets an
// all-zero header (complete, no GSO); offload off, a framed one is cut here (or its checksum
// completed) and written segment by segment: true if all were taken.
bool NativeTun::WriteOne(Napi::Env env, const uint8_t* data, size_t length) {
  static const uint8_t kZeroHdr[kVnetHdrBytes] = {};
  const bool framed = (data[0] >> 4) == 0;
  if (offload_ && !framed) {
    const struct iovec iov[2] = {{const_cast<uint8_t*>(kZeroHdr), kVnetHdrBytes}, {const_cast<uint8_t*>(data), length}};
    return WriteRaw(env, iov, 2, kVnetHdrBytes + length);
  }
  if (offload_ || !framed || length <= kVnetHdrBytes) {
    const struct iovec iov = {const_cast<uint8_t*>(data), length};
    return WriteRaw(env, &iov, 1, length);  // a malformed framed packet: the kernel refuses it (a drop)
  }
  if (segmentScratch_.empty()) {
    segmentScratch_.resize(kTunSegmentBytes);
    segmentLengths_.resize(kTunSegmentMax);
  }
  const VnetHdr h = ReadVnetHdr(data);
  const uint8_t* packet = data + kVnetHdrBytes;
  const size_t packetBytes = length - kVnetHdrBytes;
  int32_t count;
  if (h.gsoType == kVnetGsoNone) {
    std::memcpy(segmentScratch_.data(), packet, packetBytes);
    count = CompleteChecksum(segmentScratch_.data(), packetBytes, h) == GsoError::kOk ? 1 : -1;
    segmentLengths_[0] = static_cast<uint32_t>(packetBytes);
  } else {
    count = SegmentTcp(packet, packetBytes, h, segmentScratch_.data(), segmentScratch_.size(), segmentLengths_.data(), kTunSegmentMax);
  }
  if (count <= 0) return false;
  bool all = true;
  size_t offset = 0;
  for (int32_t i = 0; i < count; i++) {
    const struct iovec iov = {segmentScratch_.data() + offset, segmentLengths_[i]};
    all = WriteRaw(env, &iov, 1, segmentLengths_[i]) && all;
    offset += segmentLengths_[i];
  }
  return all;
}

// write(packet: Uint8Array) -> boolean (false: dropped)
Napi::Value NativeTun::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, "write(Uint8Array)");
  }
  Napi::Uint8Array packet = info[0].As<Napi::Uint8Array>();
  if (packet.ByteLength() == 0 || packet.ByteLength() > kTunMaxFramedBytes || packet.Data() == nullptr) {
    throw Napi::RangeError::New(env, "packet length must be 1..65545");
  }
  return Napi::Boolean::New(env, WriteOne(env, packet.Data(), packet.ByteLength()));
}

// writeBatch(buffer: Uint8Array, lengths: Uint32Array | Uint16Array, count, writtenBytes: Float64Array)
// -> packets written; writtenBytes[0] = their total length (the others were dropped).
// Every length is checked before the first write, so a bad table writes nothing.
Napi::Value NativeTun::WriteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[3].IsTypedArray() ||
      info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array || info[3].As<Napi::TypedArray>().ElementLength() < 1) {
    throw Napi::TypeError::New(env, "writeBatch(Uint8Array, Uint32Array | Uint16Array, count, Float64Array(1))");
  }
  Napi::TypedArray bufferArg = info[0].As<Napi::TypedArray>();
  Napi::TypedArray lengthsArg = info[1].As<Napi::TypedArray>();
  if (bufferArg.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(env, "buffer must be a Uint8Array");
  const napi_typedarray_type lengthsType = lengthsArg.TypedArrayType();
  if (lengthsType != napi_uint32_array && lengthsType != napi_uint16_array) {
    throw Napi::TypeError::New(env, "lengths must be a Uint32Array or a Uint16Array");
  }
  const uint32_t count = U32Arg(info[2], "count", 0, static_cast<uint32_t>(std::min<size_t>(lengthsArg.ElementLength(), 0xffffffffu)));
  Napi::Uint8Array buffer = info[0].As<Napi::Uint8Array>();
  const uint8_t* data = buffer.Data();
  const size_t capacity = buffer.ByteLength();
  auto lengthAt = [&](uint32_t i) -> size_t {
    if (lengthsType == napi_uint32_array) return lengthsArg.As<Napi::Uint32Array>()[i];
    return lengthsArg.As<Napi::Uint16Array>()[i];
  };
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    const size_t length = lengthAt(i);
    if (length == 0 || length > kTunMaxFramedBytes) throw Napi::RangeError::New(env, "lengths[" + std::to_string(i) + "] must be 1..65545");
    total += length;
    if (total > capacity) throw Napi::RangeError::New(env, "the lengths add up to more than the buffer holds");
  }
  uint32_t written = 0;
  size_t writtenBytes = 0;
  size_t offset = 0;
  for (uint32_t i = 0; i < count; i++) {
    const size_t length = lengthAt(i);
    if (WriteOne(env, data + offset, length)) {
      written++;
      writtenBytes += length;
    }
    offset += length;
  }
  info[3].As<Napi::Float64Array>()[0] = static_cast<double>(writtenBytes);
  return Napi::Number::New(env, written);
}

// close() -> undefined; idempotent. Throws a system error if close(2) itself failed.
// recycle(slot): JS hands back a slot it kept (onBatch returned true). A slot JS does not hold is a
// programmer error in lib/tun: RangeError.
Napi::Value NativeTun::RecycleSlot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "recycle(slot)");
  const double value = info[0].As<Napi::Number>().DoubleValue();
  if (!reader_ || !(value >= 0) || value >= kTunSlots || value != static_cast<double>(static_cast<int>(value))) {
    throw Napi::RangeError::New(env, "recycle: no such slot");
  }
  const int slot = static_cast<int>(value);
  if (!reader_->heldByJs[slot]) throw Napi::RangeError::New(env, "recycle: the slot is not held by JS");
  reader_->heldByJs[slot] = false;
  reader_->Recycle(slot);
  return env.Undefined();
}

Napi::Value NativeTun::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return env.Undefined();
  RemoveCleanupHook();
  const int error = Shutdown();
  if (error != 0) throw SystemError(env, error, Syscall::kClose);
  return env.Undefined();
}

}  // namespace lunlink
