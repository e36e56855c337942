// NativeTun: one TUN interface (IFF_TUN | IFF_NO_PI, non-blocking descriptor); see tun.cc.
// Receive: a dedicated reader thread drains every ready packet per wake-up into one of kTunSlots
// reused batch buffers (packets back to back + a length table; native-owned memory, see buffer.h) and
// hands it to JS through its own ThreadSafeFunction; a slot is reused only after JS handed it back.
// Send: non-blocking write() per packet on the JS thread (a TUN write never waits for a device).
#pragma once

#include <napi.h>

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
constexpr size_t kTunMaxPacketBytes = 65536;     // a read always offers this much room (MTU <= 65535)

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
  std::shared_ptr<TunReader> reader_;
};

}  // namespace lunlink
