// UDP socket of the link's primary path: bind, the batching receive thread (recvmmsg), batched sends
// (sendmmsg, UDP GSO). Why the addon owns the socket instead of calling sendmmsg on the descriptor of
// a node:dgram socket: node exposes that descriptor only through a private field, libuv would keep
// polling and reading it from the event loop (racing a recvmmsg thread for the same datagrams), and
// receive batching needs a thread of ours anyway; so one owner, one protocol, like the TUN (tun.cc).
// Threads: the JS thread binds, sends and closes; one receive thread per started socket polls the
// socket and an eventfd (shutdown) and only touches its own slots, the socket and the
// ThreadSafeFunction. Invariants: a slot is owned by one side at a time (free list under the mutex);
// the thread is joined before either descriptor is closed; the ThreadSafeFunction is released once.
// Held heartbeats: the thread writes a held slot only after taking it back under the mutex (holding
// false), so drain() on the JS thread can take it whole while the thread sleeps in poll; nothing is
// dropped (a batch that is not all heartbeats, or more than heldMax, is posted as before).
// Syscall ids (channel.h): socket/bind/setsockopt report kSocket, recvmmsg kRead, sendmmsg kWrite.
#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "buffer.h"
#include "channel.h"
#include "thread-name.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace lunlink {

namespace {

// GSO limits (linux/udp.h UDP_MAX_SEGMENTS is 64 on older kernels, 128 on newer: take the lower)
// and the largest UDP payload one GSO send may carry.
constexpr uint32_t kGsoMaxSegments = 64;
constexpr size_t kGsoMaxBytes = 65000;

Napi::Error SystemError(Napi::Env env, int error, Syscall syscall) {
  Napi::Error e = Napi::Error::New(env, std::string("syscall failed: ") + std::strerror(error));
  e.Set("errno", Napi::Number::New(env, error));
  e.Set("syscallId", Napi::Number::New(env, static_cast<int32_t>(syscall)));
  return e;
}

uint32_t U32Arg(const Napi::Value& value, const char* name, uint32_t min, uint32_t max) {
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), std::string(name) + " must be a number");
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= min) || d > max || std::floor(d) != d) {
    throw Napi::RangeError::New(value.Env(), std::string(name) + " must be an integer in " + std::to_string(min) + ".." + std::to_string(max));
  }
  return static_cast<uint32_t>(d);
}

// A heartbeat-kind link message (docs/format.md "Link messages"; the header is cleartext when
// sealed too): version 1 (plain, 28 bytes) or 2/3 (sealed: + counter and tag, 52 bytes), kind 1.
// Forged ones are only held (bounded) and handed to JS like any other datagram.
constexpr uint32_t kHeartbeatBytes = 28;
constexpr uint32_t kSealedHeartbeatBytes = 28 + 8 + 16;
bool IsHeartbeat(const uint8_t* datagram, uint32_t length) {
  if (length != kHeartbeatBytes && length != kSealedHeartbeatBytes) return false;
  return datagram[0] >= 1 && datagram[0] <= 3 && datagram[1] == 1;
}

double MonotonicMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

void WakeOrDie(int fd) {
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = write(fd, &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
  // Cannot fail on a valid eventfd (the thread resets the counter on every wake-up): crash rather than hang.
  if (n != static_cast<ssize_t>(sizeof(one))) std::abort();
}

}  // namespace

struct UdpBatch {
  UdpReader* reader;
  int slot;
  uint32_t count;
  uint32_t bytes;
  int32_t error;  // errno that ended the receive thread (0: more batches follow)
  Syscall syscall;
  bool heartbeatsOnly;  // every datagram in the batch is heartbeat-kind
  double firstMs;       // arrival of its first datagram (CLOCK_MONOTONIC, ms)
};

struct UdpReader {
  int fd = -1;
  int wakeFd = -1;
  std::mutex mutex;
  std::condition_variable freed;
  bool stopping = false;      // guarded by mutex
  int inFlight = 0;           // guarded by mutex
  bool accumulating = false;  // guarded by mutex
  bool holding = false;       // guarded by mutex: heldSlot holds heartbeats only, not posted
  bool taken = false;         // guarded by mutex: drain() took heldSlot; the thread needs another slot
  int heldSlot = -1;          // guarded by mutex
  uint32_t heldMax = 0;       // set before the thread starts
  double holdMaxMs = 0;       // set before the thread starts
  std::vector<int> free;      // guarded by mutex; capacity kUdpSlots
  bool delivering = true;     // JS thread only
  bool heldByJs[kUdpSlots] = {};
  BlockRef dataBlocks[kUdpSlots];
  BlockRef tableBlocks[kUdpSlots];
  uint8_t* data[kUdpSlots] = {};
  uint32_t* table[kUdpSlots] = {};
  double* times[kUdpSlots] = {};
  BlockRef timeBlocks[kUdpSlots];
  UdpBatch batches[kUdpSlots] = {};
  // recvmmsg headers, reused by the thread for every call (no allocation per batch).
  struct mmsghdr msgs[kUdpBatchMessages] = {};
  struct iovec iovs[kUdpBatchMessages] = {};
  struct sockaddr_in from[kUdpBatchMessages] = {};
  Napi::ThreadSafeFunction tsfn;
  std::thread thread;

  void Run();
  int Acquire();
  void Drain(UdpBatch& batch);
  void Recycle(int slot);
  static void Deliver(Napi::Env env, Napi::Function onBatch, UdpBatch* batch);
};

// A free slot, emptied, for the thread (-1: stopping).
int UdpReader::Acquire() {
  std::unique_lock<std::mutex> lock(mutex);
  freed.wait(lock, [this] { return stopping || !free.empty(); });
  if (stopping) return -1;
  const int slot = free.back();
  free.pop_back();
  UdpBatch& fresh = batches[slot];
  fresh.count = 0;
  fresh.bytes = 0;
  fresh.error = 0;
  fresh.syscall = Syscall::kNone;
  fresh.heartbeatsOnly = true;
  fresh.firstMs = 0;
  return slot;
}

// Same batching policy as the TUN reader: post at once when JS is idle (latency), keep filling while
// JS is busy (throughput), post when full or when JS caught up. Heartbeats alone are held (above).
void UdpReader::Run() {
  NameThisThread("lunlink-udp");
  int slot = -1;
  bool held = false;  // this thread's view of `holding` for its slot (the poll timeout)
  for (;;) {
    if (slot < 0 && (slot = Acquire()) < 0) return;
    int timeoutMs = -1;
    if (held) timeoutMs = std::max(0, static_cast<int>(std::ceil(batches[slot].firstMs + holdMaxMs - MonotonicMs())));
    struct pollfd fds[2] = {{fd, POLLIN, 0}, {wakeFd, POLLIN, 0}};
    const int r = poll(fds, 2, timeoutMs);
    const int pollErrno = r < 0 ? errno : 0;
    if (held) {
      // Take the held slot back before touching it again; drain() may have taken it meanwhile.
      std::lock_guard<std::mutex> lock(mutex);
      held = false;
      holding = false;
      if (taken) {
        taken = false;
        slot = -1;
      }
    }
    if (slot < 0 && (slot = Acquire()) < 0) return;
    UdpBatch& batch = batches[slot];
    const bool timedOut = r == 0 && timeoutMs >= 0;
    if (r < 0 && pollErrno != EINTR) {  // EINTR: decide again below (a held batch is held again)
      batch.error = pollErrno;
      batch.syscall = Syscall::kPoll;
    } else if (r > 0) {
      if (fds[1].revents != 0) {
        uint64_t value;
        ssize_t n;
        do {
          n = read(wakeFd, &value, sizeof(value));
        } while (n < 0 && errno == EINTR);
        std::lock_guard<std::mutex> lock(mutex);
        if (stopping || n != static_cast<ssize_t>(sizeof(value))) return;
      }
      if (fds[0].revents != 0) Drain(batch);
    }
    const bool full = batch.count >= kUdpBatchMessages || kUdpBatchBytes - batch.bytes < kUdpMaxDatagramBytes;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (batch.error == 0 && !full && (batch.count == 0 || inFlight > 0)) {
        accumulating = batch.count > 0;
        continue;
      }
      if (batch.error == 0 && !full && !timedOut && batch.heartbeatsOnly && batch.count <= heldMax) {
        accumulating = false;
        holding = true;
        heldSlot = slot;
        held = true;
        continue;
      }
      accumulating = false;
      inFlight++;
    }
    const int posted = slot;
    slot = -1;
    if (tsfn.NonBlockingCall(&batches[posted], Deliver) != napi_ok) return;
    if (batches[posted].error != 0) return;
  }
}

// recvmmsg straight into the slot: each datagram gets kUdpMaxDatagramBytes of room after the packed
// end, then is moved down to pack the batch (destinations never pass sources: memmove is safe).
void UdpReader::Drain(UdpBatch& batch) {
  uint8_t* base = data[batch.slot];
  uint32_t* t = table[batch.slot];
  for (;;) {
    const uint32_t vlen = static_cast<uint32_t>(std::min<size_t>(kUdpBatchMessages - batch.count, (kUdpBatchBytes - batch.bytes) / kUdpMaxDatagramBytes));
    if (vlen == 0) return;
    const size_t start = batch.bytes;
    for (uint32_t j = 0; j < vlen; j++) {
      iovs[j] = {base + start + j * kUdpMaxDatagramBytes, kUdpMaxDatagramBytes};
      std::memset(&msgs[j], 0, sizeof(msgs[j]));
      msgs[j].msg_hdr.msg_name = &from[j];
      msgs[j].msg_hdr.msg_namelen = sizeof(from[j]);
      msgs[j].msg_hdr.msg_iov = &iovs[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
    }
    const int n = recvmmsg(fd, msgs, vlen, MSG_DONTWAIT, nullptr);
    const double arrivedMs = n > 0 ? MonotonicMs() : 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // Only a broken socket ends the thread. Anything else is news about the network (a queued ICMP
      // error, the underlay going down while it is cut): the kernel clears it as it reports it, so
      // the next call reads datagrams again. Ending here would lose the path for good after a cut.
      if (errno != EBADF && errno != ENOTSOCK && errno != EFAULT && errno != EINVAL && errno != ENOMEM) return;
      batch.error = errno;
      batch.syscall = Syscall::kRead;
      return;
    }
    for (int j = 0; j < n; j++) {
      const uint32_t length = msgs[j].msg_len;
      if ((msgs[j].msg_hdr.msg_flags & MSG_TRUNC) != 0 || length == 0) continue;  // cannot be a link message
      std::memmove(base + batch.bytes, base + start + static_cast<size_t>(j) * kUdpMaxDatagramBytes, length);
      t[kUdpTableWords * batch.count] = length;
      t[kUdpTableWords * batch.count + 1] = ntohl(from[j].sin_addr.s_addr);
      t[kUdpTableWords * batch.count + 2] = ntohs(from[j].sin_port);
      times[batch.slot][batch.count] = arrivedMs;
      if (batch.count == 0) batch.firstMs = arrivedMs;
      batch.heartbeatsOnly = batch.heartbeatsOnly && IsHeartbeat(base + batch.bytes, length);
      batch.count++;
      batch.bytes += length;
    }
    if (static_cast<uint32_t>(n) < vlen) return;  // drained
  }
}

void UdpReader::Recycle(int slot) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex);
    free.push_back(slot);
    inFlight--;
    wake = accumulating && inFlight == 0;
    if (wake) accumulating = false;
  }
  freed.notify_one();
  if (wake) WakeOrDie(wakeFd);
}

void UdpReader::Deliver(Napi::Env env, Napi::Function onBatch, UdpBatch* batch) {
  UdpReader* reader = batch->reader;
  if (env == nullptr || onBatch.IsEmpty() || !reader->delivering) {
    reader->Recycle(batch->slot);
    return;
  }
  try {
    Napi::HandleScope scope(env);
    Napi::Value keep = onBatch.Call({Napi::Number::New(env, batch->slot), Napi::Number::New(env, batch->count), Napi::Number::New(env, batch->bytes),
                                     Napi::Number::New(env, batch->error), Napi::Number::New(env, static_cast<int32_t>(batch->syscall))});
    if (keep.IsBoolean() && keep.As<Napi::Boolean>().Value() && batch->error == 0) {
      reader->heldByJs[batch->slot] = true;
    } else {
      reader->Recycle(batch->slot);
    }
  } catch (const Napi::Error& error) {
    reader->Recycle(batch->slot);
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && !pending && !error.IsEmpty()) napi_throw(env, error.Value());
  }
}

// ---- JS surface ----------------------------------------------------------------------------

Napi::Function NativeUdp::Define(Napi::Env env) {
  return DefineClass(env, "NativeUdp",
                     {
                         InstanceMethod<&NativeUdp::Bind>("bind"),
                         InstanceMethod<&NativeUdp::Start>("start"),
                         InstanceMethod<&NativeUdp::SendBatch>("sendBatch"),
                         InstanceMethod<&NativeUdp::Close>("close"),
                         InstanceMethod<&NativeUdp::RecycleSlot>("recycle"),
                         InstanceMethod<&NativeUdp::DrainHeld>("drain"),
                     });
}

NativeUdp::NativeUdp(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeUdp>(info), env_(info.Env()) {}

NativeUdp::~NativeUdp() {
  RemoveCleanupHook();
  Shutdown();
}

void NativeUdp::AddCleanupHook() {
  if (hooked_) return;
  if (napi_add_env_cleanup_hook(env_, Cleanup, this) != napi_ok) throw Napi::Error::New(env_, "napi_add_env_cleanup_hook failed");
  hooked_ = true;
}

void NativeUdp::RemoveCleanupHook() {
  if (!hooked_) return;
  hooked_ = false;
  napi_remove_env_cleanup_hook(env_, Cleanup, this);
}

void NativeUdp::Cleanup(void* arg) {
  auto* self = static_cast<NativeUdp*>(arg);
  self->hooked_ = false;
  self->Shutdown();
}

int NativeUdp::Shutdown() {
  closed_ = true;
  if (reader_) {
    {
      std::lock_guard<std::mutex> lock(reader_->mutex);
      reader_->stopping = true;
    }
    reader_->freed.notify_all();
    WakeOrDie(reader_->wakeFd);
    if (reader_->thread.joinable()) reader_->thread.join();
    {
      std::lock_guard<std::mutex> lock(reader_->mutex);
      reader_->accumulating = false;
      reader_->holding = false;  // held heartbeats of a closed socket are not delivered
    }
    reader_->delivering = false;
    reader_->tsfn.Release();
    close(reader_->wakeFd);
    reader_->wakeFd = -1;
    reader_.reset();
  }
  int error = 0;
  if (fd_ >= 0) {
    if (close(fd_) != 0 && errno != EINTR) error = errno;
    fd_ = -1;
  }
  return error;
}

void NativeUdp::RequireOpen(Napi::Env env) const {
  if (fd_ < 0 || closed_) throw Napi::Error::New(env, "the UDP socket is not open");
}

// bind(address: u32 host order, port, bufferBytes) -> the bound port. Asks for bufferBytes of
// receive and send buffer (the kernel caps it at rmem_max / wmem_max).
Napi::Value NativeUdp::Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ >= 0 || closed_) throw Napi::Error::New(env, "bind called twice");
  const uint32_t address = U32Arg(info[0], "address", 0, 0xffffffffu);
  const uint32_t port = U32Arg(info[1], "port", 0, 65535);
  const uint32_t bufferBytes = U32Arg(info[2], "bufferBytes", 0, 1u << 30);
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw SystemError(env, errno, Syscall::kSocket);
  const int size = static_cast<int>(bufferBytes);
  if (size > 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));  // best effort: keep what the kernel gives
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  struct sockaddr_in sin = {};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(address);
  sin.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sin), sizeof(sin)) != 0) {
    const int error = errno;
    close(fd);
    throw SystemError(env, error, Syscall::kSocket);
  }
  socklen_t length = sizeof(sin);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&sin), &length) != 0) {
    const int error = errno;
    close(fd);
    throw SystemError(env, error, Syscall::kSocket);
  }
  fd_ = fd;
  AddCleanupHook();
  return Napi::Number::New(env, ntohs(sin.sin_port));
}

// start(onBatch, heldMax, holdMaxMs) -> [[datagrams: Uint8Array, table: Uint32Array, arrivals:
// Float64Array], ...] (kUdpSlots triples); table holds kUdpTableWords words per datagram, arrivals its
// receive time (CLOCK_MONOTONIC, ms). onBatch(slot, count, bytes, errno, syscallId) on the JS thread.
// heldMax > 0: up to heldMax heartbeats wait for drain() (or holdMaxMs) instead of waking JS.
Napi::Value NativeUdp::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 3 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "start(onBatch, heldMax, holdMaxMs)");
  if (reader_) throw Napi::Error::New(env, "start called twice");
  const uint32_t heldMax = U32Arg(info[1], "heldMax", 0, kUdpHeldMax);
  const uint32_t holdMaxMs = U32Arg(info[2], "holdMaxMs", 1, 60000);
  auto reader = std::make_shared<UdpReader>();
  reader->heldMax = heldMax;
  reader->holdMaxMs = holdMaxMs;
  reader->fd = fd_;
  reader->wakeFd = eventfd(0, EFD_CLOEXEC);
  if (reader->wakeFd < 0) throw SystemError(env, errno, Syscall::kEventfd);
  reader->free.reserve(kUdpSlots);
  Napi::Array slots = Napi::Array::New(env, kUdpSlots);
  try {
    for (int i = 0; i < kUdpSlots; i++) {
      BlockRef dataBlock = NewBlock(kUdpBatchBytes, 64);
      BlockRef tableBlock = NewBlock(kUdpBatchMessages * kUdpTableWords * sizeof(uint32_t), 64);
      BlockRef timeBlock = NewBlock(kUdpBatchMessages * sizeof(double), 64);
      if (!dataBlock || !tableBlock || !timeBlock) throw Napi::RangeError::New(env, "UDP batch buffers: out of memory");
      Napi::Uint8Array datagrams = Napi::Uint8Array::New(env, kUdpBatchBytes, ExposeBlock(env, dataBlock), 0);
      Napi::Uint32Array table = Napi::Uint32Array::New(env, kUdpBatchMessages * kUdpTableWords, ExposeBlock(env, tableBlock), 0);
      Napi::Float64Array arrivals = Napi::Float64Array::New(env, kUdpBatchMessages, ExposeBlock(env, timeBlock), 0);
      reader->dataBlocks[i] = dataBlock;
      reader->tableBlocks[i] = tableBlock;
      reader->data[i] = dataBlock->data;
      reader->table[i] = reinterpret_cast<uint32_t*>(tableBlock->data);
      reader->timeBlocks[i] = timeBlock;
      reader->times[i] = reinterpret_cast<double*>(timeBlock->data);
      reader->batches[i] = UdpBatch{reader.get(), i, 0, 0, 0, Syscall::kNone, true, 0};
      reader->free.push_back(kUdpSlots - 1 - i);
      Napi::Array pair = Napi::Array::New(env, 3);
      pair.Set(0u, datagrams);
      pair.Set(1u, table);
      pair.Set(2u, arrivals);
      slots.Set(static_cast<uint32_t>(i), pair);
    }
    std::unique_ptr<std::shared_ptr<UdpReader>> keep(new std::shared_ptr<UdpReader>(reader));
    reader->tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "lunlink-udp-batches", 0, 1, keep.get(),
                                                 [](Napi::Env, std::shared_ptr<UdpReader>* kept) { delete kept; });
    keep.release();
  } catch (...) {
    close(reader->wakeFd);
    throw;
  }
  reader_ = reader;
  RemoveCleanupHook();
  AddCleanupHook();
  try {
    reader_->thread = std::thread([r = reader_.get()] { r->Run(); });
  } catch (const std::exception&) {
    reader_->tsfn.Release();
    close(reader_->wakeFd);
    reader_.reset();
    throw Napi::Error::New(env, "could not start the UDP receive thread");
  }
  return slots;
}

// sendBatch(buffer: Uint8Array, lengths: Uint32Array, count, address: u32, port, gso: boolean)
// -> datagrams the kernel took. Datagrams lie back to back in buffer. A datagram the kernel refuses
// (no buffer, no route while the underlay is cut, filtered) is skipped and counted by the caller;
// nothing here throws for a network condition. With gso, runs of equal-sized datagrams go as one
// message with UDP_SEGMENT (the kernel or NIC cuts them); a kernel that refuses it turns gso off.
Napi::Value NativeUdp::SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 6 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !info[5].IsBoolean()) {
    throw Napi::TypeError::New(env, "sendBatch(Uint8Array, Uint32Array, count, address, port, gso)");
  }
  Napi::Uint8Array buffer = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array lengths = info[1].As<Napi::Uint32Array>();
  const uint32_t count = U32Arg(info[2], "count", 0, static_cast<uint32_t>(std::min<size_t>(lengths.ElementLength(), kUdpBatchMessages)));
  const uint32_t address = U32Arg(info[3], "address", 0, 0xffffffffu);
  const uint32_t port = U32Arg(info[4], "port", 1, 65535);
  const bool gso = info[5].As<Napi::Boolean>().Value() && gso_;
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (lengths[i] == 0 || lengths[i] > 65507) throw Napi::RangeError::New(env, "lengths[" + std::to_string(i) + "] must be 1..65507");
    total += lengths[i];
  }
  if (total > buffer.ByteLength()) throw Napi::RangeError::New(env, "the lengths add up to more than the buffer holds");
  struct sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(address);
  to.sin_port = htons(static_cast<uint16_t>(port));

  struct mmsghdr msgs[kUdpBatchMessages];
  struct iovec iovs[kUdpBatchMessages];
  alignas(struct cmsghdr) char control[kUdpBatchMessages][CMSG_SPACE(sizeof(uint16_t))];
  uint32_t datagramsOf[kUdpBatchMessages];  // datagrams each message carries
  uint32_t firstOf[kUdpBatchMessages];      // index of its first datagram
  uint32_t messages = 0;
  size_t offset = 0;
  uint8_t* data = buffer.Data();
  for (uint32_t i = 0; i < count;) {
    const uint32_t size = lengths[i];
    uint32_t run = 1;
    if (gso) {
      // Equal sizes; the last of a run may be shorter (GSO's rule); bounded in segments and bytes.
      size_t bytes = size;
      while (i + run < count && run < kGsoMaxSegments && bytes + lengths[i + run] <= kGsoMaxBytes && lengths[i + run] <= size) {
        bytes += lengths[i + run];
        const bool shorter = lengths[i + run] < size;
        run++;
        if (shorter) break;
      }
    }
    size_t bytes = 0;
    for (uint32_t k = 0; k < run; k++) bytes += lengths[i + k];
    iovs[messages] = {data + offset, bytes};
    std::memset(&msgs[messages], 0, sizeof(msgs[messages]));
    msgs[messages].msg_hdr.msg_name = &to;
    msgs[messages].msg_hdr.msg_namelen = sizeof(to);
    msgs[messages].msg_hdr.msg_iov = &iovs[messages];
    msgs[messages].msg_hdr.msg_iovlen = 1;
    if (run > 1) {
      std::memset(control[messages], 0, sizeof(control[messages]));  // the cmsg's padding goes to the kernel too
      msgs[messages].msg_hdr.msg_control = control[messages];
      msgs[messages].msg_hdr.msg_controllen = sizeof(control[messages]);
      struct cmsghdr* cm = CMSG_FIRSTHDR(&msgs[messages].msg_hdr);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const uint16_t segment = static_cast<uint16_t>(size);
      std::memcpy(CMSG_DATA(cm), &segment, sizeof(segment));
    }
    datagramsOf[messages] = run;
    firstOf[messages] = i;
    messages++;
    offset += bytes;
    i += run;
  }
  uint32_t sent = 0;
  for (uint32_t m = 0; m < messages;) {
    const int n = sendmmsg(fd_, msgs + m, messages - m, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if ((errno == EINVAL || errno == EIO || errno == ENOPROTOOPT) && datagramsOf[m] > 1 && gso_) {
        gso_ = false;  // this kernel or route refuses UDP_SEGMENT: this run goes one by one, later batches without GSO
        const uint8_t* at = static_cast<const uint8_t*>(iovs[m].iov_base);
        for (uint32_t k = 0; k < datagramsOf[m]; k++) {
          const uint32_t length = lengths[firstOf[m] + k];
          ssize_t r;
          do {
            r = sendto(fd_, at, length, 0, reinterpret_cast<struct sockaddr*>(&to), sizeof(to));
          } while (r < 0 && errno == EINTR);
          if (r == static_cast<ssize_t>(length)) sent++;
          at += length;
        }
        m++;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;  // full: the rest is dropped
      m++;  // this datagram (run) cannot go (no route, filtered, refused): skip it
      continue;
    }
    for (int k = 0; k < n; k++) sent += datagramsOf[m + k];
    m += static_cast<uint32_t>(n);
  }
  return Napi::Number::New(env, sent);
}

Napi::Value NativeUdp::RecycleSlot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "recycle(slot)");
  const double value = info[0].As<Napi::Number>().DoubleValue();
  if (!reader_ || !(value >= 0) || value >= kUdpSlots || value != static_cast<double>(static_cast<int>(value))) {
    throw Napi::RangeError::New(env, "recycle: no such slot");
  }
  const int slot = static_cast<int>(value);
  if (!reader_->heldByJs[slot]) throw Napi::RangeError::New(env, "recycle: the slot is not held by JS");
  reader_->heldByJs[slot] = false;
  reader_->Recycle(slot);
  return env.Undefined();
}

// drain() -> [slot, count] of the held heartbeats, now JS's (hand the slot back with recycle), or
// undefined if none are held. Never waits: the thread holds the mutex only briefly.
Napi::Value NativeUdp::DrainHeld(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!reader_ || closed_) return env.Undefined();
  int slot;
  uint32_t count;
  {
    std::lock_guard<std::mutex> lock(reader_->mutex);
    if (!reader_->holding) return env.Undefined();
    reader_->holding = false;
    reader_->taken = true;
    slot = reader_->heldSlot;
    count = reader_->batches[slot].count;
    reader_->inFlight++;
  }
  reader_->heldByJs[slot] = true;
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, slot));
  out.Set(1u, Napi::Number::New(env, count));
  return out;
}

Napi::Value NativeUdp::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return env.Undefined();
  RemoveCleanupHook();
  const int error = Shutdown();
  if (error != 0) throw SystemError(env, error, Syscall::kClose);
  return env.Undefined();
}

}  // namespace lunlink
