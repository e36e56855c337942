// NativeVolume: JS handle of one open volume; see volume.cc.
#pragma once

#include <napi.h>

#include <memory>

#include "pool.h"
#include "uring.h"

namespace lunlink {

class NativeVolume : public Napi::ObjectWrap<NativeVolume> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeVolume(const Napi::CallbackInfo& info);
  ~NativeVolume() override;

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value WakeWatches(const Napi::CallbackInfo& info);
  Napi::Value GetGeometry(const Napi::CallbackInfo& info);
  Napi::Value Pending(const Napi::CallbackInfo& info);
  Napi::Value Engine(const Napi::CallbackInfo& info);
  Napi::Value EngineFailure(const Napi::CallbackInfo& info);
  Napi::Value Transfer(const Napi::CallbackInfo& info, Op op);
  static BlockView JobMemory(const Napi::CallbackInfo& info);

  std::shared_ptr<Pool> pool_;
  std::shared_ptr<Ring> ring_;  // reads, writes and flushes when the io_uring engine runs
  RingFailure ringFailure_;     // why io_uring was asked for and not used
};

}  // namespace lunlink
