// NativeTun: one TUN interface (IFF_TUN | IFF_NO_PI, non-blocking descriptor); see tun.cc.
// Receive: a dedicated reader thread drains every ready packet per wake-up into one of kTunSlots
// reused batch buffers (packets back to back + a length table; native-owned memory, see buffer.h) and
// hands it to JS through its own ThreadSafeFunction; a slot is reused only after JS handed it back.
// Send: non-blocking write() per packet on the JS thread (a TUN write never waits for a device).
// Offload (open(name, true)): IFF_VNET_HDR + TUNSETOFFLOAD(CSUM | TSO4 | TSO6). The reader then gets
// TCP superpackets: they reach JS "vnet-framed" (the 10-byte virtio_net_hdr in front; its first byte's
// high nibble is 0, never an IP version), every other packet bare with its checksum completed. A
// write takes either form: bare packets get an all-zero header, framed ones go as they are (or are
// segmented here when the device has offload off).
#pragma once

#include <napi.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lunlink {

// Bounds of the receive path; mirrored by TUN_BATCH_* in lib/tun/tun.ts.
constexpr int kTunSlots = 4;                     // batches in flight between the thread and JS
constexpr uint32_t kTunBatchPackets = 256;       // packets per batch at most
constexpr size_t kTunBatchBytes = 1u << 20;      // bytes per batch buffer
constexpr size_t kTunMaxPacketBytes = 65536;     // a packet's bound (MTU <= 65535; a GSO superpacket < 64 KiB)
constexpr size_t kTunReadRoomBytes = kTunMaxPacketBytes + 10;  // a read always offers this much room (+ the vnet header)
// Offload (IFF_VNET_HDR): writes to a device without it cut a superpacket into this scratch first.
constexpr size_t kTunSegmentBytes = 1u << 18;
constexpr uint32_t kTunSegmentMax = 1024;
constexpr size_t kTunMaxFramedBytes = 65535 + 10;  // a write: an IP packet, or one with its vnet header

struct TunReader;

class NativeTun : public Napi::ObjectWrap<NativeTun> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeTun(const Napi::CallbackInfo& info);
  ~NativeTun() override;

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value SetMtu(const Napi::CallbackInfo& info);
  Napi::Value SetAddress(const Napi::CallbackInfo& info);
  Napi::Value SetUp(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value WriteBatch(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value RecycleSlot(const Napi::CallbackInfo& info);

  void RequireOpen(Napi::Env env) const;
  // Writes one packet; true if the kernel took it, false if it was dropped. Throws on fd errors.
  bool WriteOne(Napi::Env env, const uint8_t* data, size_t length);
  bool WriteRaw(Napi::Env env, const struct iovec* iov, int iovcnt, size_t length);
  // Stops the reader thread, releases the ThreadSafeFunction and closes both descriptors, once.
  // Returns the errno of close(tun fd), 0 if none.
  int Shutdown();
  void AddCleanupHook();
  void RemoveCleanupHook();
  static void Cleanup(void* arg);

  napi_env env_;
  int fd_ = -1;
  bool closed_ = false;
  bool hooked_ = false;
  std::string name_;
  bool offload_ = false;
  int offloadError_ = 0;  // errno of a refused TUNSETOFFLOAD (offload then off)
  std::vector<uint8_t> segmentScratch_;
  std::vector<uint32_t> segmentLengths_;
  std::shared_ptr<TunReader> reader_;
};

}  // namespace lunlink
