// Addon entry point. Exports are private to lib/io, lib/tun and lib/link: `init(dispatch)` wires the
// completion channel, `NativeVolume`, `NativeTun`, `alignedBuffer`,
// `addressAlignment`, `isNativeOwned`, `aeadSeal`/`aeadOpen` (sealed UDP datagrams), `segmentTcp` (TUN offload, gso.h).
// Main thread only: a worker's environment can be torn down while pool or TUN threads still run
// addon code for it (a parked thread returns minutes later), so loading in a worker throws an error
// with code ERR_LUNLINK_WORKER_UNSUPPORTED (lib/io/native.ts refuses before that, with a LunlinkError).
#include <napi.h>
#include <uv.h>

#include "aead.h"
#include "buffer.h"
#include "channel.h"
#include "gso.h"
#include "notify.h"
#include "state.h"
#include "tun.h"
#include "udp.h"
#include "volume.h"

namespace lunlink {

AddonState* GetState(Napi::Env env) { return env.GetInstanceData<AddonState>(); }

namespace {

void Teardown(void* arg) {
  auto* state = static_cast<AddonState*>(arg);
  // Registered after the ThreadSafeFunction was created, so it runs before Node deletes it
  // (cleanup hooks run last-in, first-out): no thread can reach it afterwards.
  if (state->channel) state->channel->Shutdown();
  for (auto& weak : state->pools) {
    if (auto pool = weak.lock()) pool->Abandon();
  }
  AeadTeardown(state);
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState* state = GetState(env);
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "init(dispatch)");
  if (state->channel) throw Napi::Error::New(env, "lunlink addon already initialised");
  state->channel = Channel::Create(env, info[0].As<Napi::Function>());
  napi_status status = napi_add_env_cleanup_hook(env, Teardown, state);
  if (status != napi_ok) throw Napi::Error::New(env, "napi_add_env_cleanup_hook failed");
  return env.Undefined();
}

bool OnMainThread(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  return napi_get_uv_event_loop(env, &loop) == napi_ok && loop == uv_default_loop();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  if (!OnMainThread(env)) {
    Napi::Error error = Napi::Error::New(env, "the lunlink addon runs on the main thread only, not in a worker thread");
    error.Set("code", Napi::String::New(env, "ERR_LUNLINK_WORKER_UNSUPPORTED"));
    throw error;
  }
  env.SetInstanceData(new AddonState());
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("NativeVolume", NativeVolume::Define(env));
  exports.Set("NativeTun", NativeTun::Define(env));
  exports.Set("NativeUdp", NativeUdp::Define(env));
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer, "alignedBuffer"));
  exports.Set("addressAlignment", Napi::Function::New(env, AddressAlignment, "addressAlignment"));
  exports.Set("isNativeOwned", Napi::Function::New(env, IsNativeOwned, "isNativeOwned"));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
  exports.Set("aeadSeal", Napi::Function::New(env, AeadSeal, "aeadSeal"));
  exports.Set("aeadOpen", Napi::Function::New(env, AeadOpen, "aeadOpen"));
  exports.Set("aeadSealSegments", Napi::Function::New(env, AeadSealSegments, "aeadSealSegments"));
  exports.Set("segmentTcp", Napi::Function::New(env, SegmentTcpJs, "segmentTcp"));
  exports.Set("aeadOpenSegments", Napi::Function::New(env, AeadOpenSegments, "aeadOpenSegments"));
  return exports;
}

}  // namespace

}  // namespace lunlink

static Napi::Object InitLunlink(Napi::Env env, Napi::Object exports) { return lunlink::Module(env, exports); }

NODE_API_MODULE(lunlink, InitLunlink)
