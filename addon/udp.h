// NativeUdp: one IPv4 UDP socket the addon owns (non-blocking), for the link's primary path; see udp.cc.
// Receive: a dedicated thread drains every ready datagram per wake-up with recvmmsg into one of
// kUdpSlots reused native-owned batch buffers (datagrams back to back + a table of length, source
// address, source port) and hands the batch to JS with one ThreadSafeFunction call; a slot is reused
// only after JS handed it back (the TUN reader's protocol, tun.cc). Each datagram's arrival time
// (CLOCK_MONOTONIC, ms) is kept beside it. Held heartbeats (start's heldMax > 0): a batch of nothing
// but heartbeat-kind link messages (at most heldMax) stays in its slot without waking JS until a
// datagram of another kind arrives (it goes with them, in order), JS takes it with drain() (the
// link's clock does before every liveness decision), or it was held holdMaxMs.
// Send: sendmmsg of a whole batch on the JS thread (a UDP send never waits: EAGAIN is a drop), with
// UDP GSO (UDP_SEGMENT) for runs of equal-sized datagrams where the kernel supports it.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace lunlink {

// Bounds; mirrored by UDP_BATCH_* in lib/io/udp.ts.
constexpr int kUdpSlots = 4;                   // receive batches in flight between the thread and JS
constexpr uint32_t kUdpBatchMessages = 256;    // datagrams per receive batch and per sendBatch call
constexpr size_t kUdpBatchBytes = 2u << 20;    // bytes per receive batch buffer
constexpr size_t kUdpMaxDatagramBytes = 65536; // a receive always offers this much room per datagram
constexpr uint32_t kUdpTableWords = 3;         // per datagram: length, source IPv4 (host order), source port
constexpr uint32_t kUdpHeldMax = 64;           // bound of start's heldMax: heartbeats held without waking JS

struct UdpReader;

class NativeUdp : public Napi::ObjectWrap<NativeUdp> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeUdp(const Napi::CallbackInfo& info);
  ~NativeUdp() override;

 private:
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value SendBatch(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value RecycleSlot(const Napi::CallbackInfo& info);
  Napi::Value DrainHeld(const Napi::CallbackInfo& info);

  void RequireOpen(Napi::Env env) const;
  int Shutdown();
  void AddCleanupHook();
  void RemoveCleanupHook();
  static void Cleanup(void* arg);

  napi_env env_;
  int fd_ = -1;
  bool closed_ = false;
  bool hooked_ = false;
  bool gso_ = true;  // cleared for good after the kernel refuses UDP_SEGMENT
  std::shared_ptr<UdpReader> reader_;
};

}  // namespace lunlink
