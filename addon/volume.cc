// NativeVolume: the JS-facing handle of one open volume. Arguments are validated here again
// (lib/io validates first and names the wrong value); every method only queues work for the
// volume's own pool and returns at once, so no syscall ever runs on the JS thread. Submitting
// methods return a Submitted code (0: accepted).
#include "volume.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "state.h"

namespace lunlink {

namespace {

int64_t OffsetArg(const Napi::Value& value) {
  if (value.IsBigInt()) {
    bool lossless = false;
    int64_t offset = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless || offset < 0) throw Napi::RangeError::New(value.Env(), "offset out of range");
    return offset;
  }
  if (value.IsNumber()) {
    double d = value.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d) {
      throw Napi::RangeError::New(value.Env(), "offset must be a non-negative safe integer");
    }
    return static_cast<int64_t>(d);
  }
  throw Napi::TypeError::New(value.Env(), "offset must be a number or bigint");
}

double RequestIdArg(const Napi::Value& value) {
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), "requestId must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

bool BoolOption(const Napi::Object& options, const char* name, bool fallback) {
  Napi::Value v = options.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw Napi::TypeError::New(options.Env(), std::string(name) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// Environment teardown for rings: registered once, after Init's hook, so it runs first (hooks run
// last-in, first-out): rings stop their handles and park until the kernel returns their SQEs.
void RingTeardown(void* arg) {
  auto* state = static_cast<AddonState*>(arg);
  state->tornDown = true;
  for (auto& weak : state->rings) {
    if (auto ring = weak.lock()) ring->Abandon();
  }
}

// Submission outcome for JS: 0 accepted, else the Submitted refusal (lib/io/native.ts names them).
Napi::Value SubmitResult(Napi::Env env, Submitted submitted) { return Napi::Number::New(env, static_cast<int32_t>(submitted)); }

}  // namespace

Napi::Function NativeVolume::Define(Napi::Env env) {
  return DefineClass(env, "NativeVolume",
                     {
                         InstanceMethod<&NativeVolume::Open>("open"),
                         InstanceMethod<&NativeVolume::Read>("read"),
                         InstanceMethod<&NativeVolume::Write>("write"),
                         InstanceMethod<&NativeVolume::Flush>("flush"),
                         InstanceMethod<&NativeVolume::Watch>("watch"),
                         InstanceMethod<&NativeVolume::Cancel>("cancel"),
                         InstanceMethod<&NativeVolume::Close>("close"),
                         InstanceMethod<&NativeVolume::WakeWatches>("wakeWatches"),
                         InstanceMethod<&NativeVolume::GetGeometry>("geometry"),
                         InstanceMethod<&NativeVolume::Pending>("pending"),
                         InstanceMethod<&NativeVolume::Engine>("engine"),
                         InstanceMethod<&NativeVolume::EngineFailure>("engineFailure"),
                     });
}

NativeVolume::NativeVolume(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeVolume>(info) {
  Napi::Env env = info.Env();
  AddonState* state = GetState(env);
  if (state == nullptr || !state->channel) throw Napi::Error::New(env, "lunlink addon not initialised");
  int maxThreads = 4;
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "maxThreads must be a number");
    maxThreads = info[0].As<Napi::Number>().Int32Value();
  }
  if (maxThreads < 1 || maxThreads > kMaxThreads) {
    throw Napi::RangeError::New(env, "maxThreads must be 1.." + std::to_string(kMaxThreads));
  }
  pool_ = std::make_shared<Pool>(state->channel, maxThreads);
  // Forget pools that are gone, so the registry stays bounded by the number of live volumes.
  auto& pools = state->pools;
  for (size_t i = 0; i < pools.size();) {
    if (pools[i].expired()) {
      pools[i] = pools.back();
      pools.pop_back();
    } else {
      i++;
    }
  }
  pools.push_back(pool_);
  // new NativeVolume(maxThreads, engine, dispatch): engine "io_uring" sets up a ring, or records why
  // it could not (lib/io falls back or refuses); dispatch is the function completions go to.
  if (info.Length() > 1 && info[1].IsString() && info[1].As<Napi::String>().Utf8Value() == "io_uring") {
    if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "NativeVolume(maxThreads, \"io_uring\", dispatch)");
    if (state->dispatch.IsEmpty()) {
      state->dispatch = Napi::Persistent(info[2].As<Napi::Function>());
      napi_value name = Napi::String::New(env, "lunlink-io-uring");
      if (napi_async_init(env, nullptr, name, &state->ringContext) != napi_ok) throw Napi::Error::New(env, "napi_async_init failed");
      if (napi_add_env_cleanup_hook(env, RingTeardown, state) != napi_ok) throw Napi::Error::New(env, "napi_add_env_cleanup_hook failed");
    }
    ring_ = Ring::Create(env, pool_, state->channel, maxThreads, &ringFailure_);
    if (ring_) {
      auto& rings = state->rings;
      for (size_t i = 0; i < rings.size();) {
        if (rings[i].expired()) {
          rings[i] = rings.back();
          rings.pop_back();
        } else {
          i++;
        }
      }
      rings.push_back(ring_);
    }
  }
}

NativeVolume::~NativeVolume() {
  // Garbage-collected without close(): close the descriptor quietly on the pool's thread (after the
  // ring, if any, has every CQE back).
  if (ring_) ring_->Abandon();
  else if (pool_) pool_->Abandon();
}

Napi::Value NativeVolume::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsObject()) {
    throw Napi::TypeError::New(env, "open(requestId, path, options)");
  }
  auto request = std::make_shared<OpenRequest>();
  request->path = info[1].As<Napi::String>().Utf8Value();
  if (request->path.empty() || request->path.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(env, "path must be a non-empty string without NUL");
  }
  Napi::Object options = info[2].As<Napi::Object>();
  request->direct = BoolOption(options, "direct", true);
  request->dsync = BoolOption(options, "dsync", false);
  request->exclusive = BoolOption(options, "exclusive", false);
  request->readOnly = BoolOption(options, "readOnly", false);
  Job job{Op::kOpen, RequestIdArg(info[0]), 0, nullptr, nullptr, 0, request, nullptr};
  return SubmitResult(env, pool_->Submit(std::move(job)));
}

// The native-owned memory a read/write/watch will use. Only memory the addon allocated (a Block)
// is accepted: lib/io bounces any other buffer through one, so no thread ever touches an
// ArrayBuffer that JS could detach, transfer or free.
BlockView NativeVolume::JobMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, "buffer must be a Uint8Array");
  }
  Napi::Uint8Array buffer = info[2].As<Napi::Uint8Array>();
  if (buffer.ByteLength() == 0 || buffer.Data() == nullptr) throw Napi::RangeError::New(env, "buffer is empty or detached");
  BlockView view = BlockOf(buffer);
  if (!view.block) throw Napi::TypeError::New(env, "buffer is not native-owned (allocate it with alignedBuffer)");
  return view;
}

Napi::Value NativeVolume::Transfer(const Napi::CallbackInfo& info, Op op) {
  Napi::Env env = info.Env();
  BlockView view = JobMemory(info);
  const int64_t offset = OffsetArg(info[1]);
  if (static_cast<uint64_t>(offset) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - view.length) {
    throw Napi::RangeError::New(env, "offset + length overflows");
  }
  Job job{op, RequestIdArg(info[0]), offset, std::move(view.block), view.data, view.length, nullptr, nullptr};
  return SubmitResult(env, ring_ ? ring_->Submit(std::move(job)) : pool_->Submit(std::move(job)));
}

Napi::Value NativeVolume::Read(const Napi::CallbackInfo& info) { return Transfer(info, Op::kRead); }

Napi::Value NativeVolume::Write(const Napi::CallbackInfo& info) { return Transfer(info, Op::kWrite); }

// watch(requestId, offset, buffer, compareBytes, sleepUs, timeoutUs[, maxSleepUs[, stampMagic, untilSeq]]):
// the buffer's first compareBytes are the baseline; completes when the range read differs there, or
// at the timeout. The sleep between reads backs off from sleepUs to maxSleepUs (default sleepUs:
// constant). With stampMagic and untilSeq (a BigInt) it completes instead when the range starts with
// a stamp of that magic and a seq >= untilSeq (WatchRequest): no baseline read is needed.
Napi::Value NativeVolume::Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[2].IsTypedArray() || !info[3].IsNumber() || !info[4].IsNumber() || !info[5].IsNumber()) {
    throw Napi::TypeError::New(env, "watch(requestId, offset, Uint8Array, compareBytes, sleepUs, timeoutUs)");
  }
  BlockView view = JobMemory(info);
  const double compareBytes = info[3].As<Napi::Number>().DoubleValue();
  const double sleepUs = info[4].As<Napi::Number>().DoubleValue();
  const double timeoutUs = info[5].As<Napi::Number>().DoubleValue();
  if (!(compareBytes >= 1) || compareBytes > static_cast<double>(view.length) || std::floor(compareBytes) != compareBytes) {
    throw Napi::RangeError::New(env, "compareBytes must be an integer in 1..buffer length");
  }
  if (!(sleepUs >= 0) || sleepUs > 1e6) throw Napi::RangeError::New(env, "sleepUs must be in 0..1000000");
  if (!(timeoutUs >= 0) || timeoutUs > 6e7) throw Napi::RangeError::New(env, "timeoutUs must be in 0..60000000");
  double maxSleepUs = sleepUs;
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    if (!info[6].IsNumber()) throw Napi::TypeError::New(env, "maxSleepUs must be a number");
    maxSleepUs = info[6].As<Napi::Number>().DoubleValue();
    if (!(maxSleepUs >= sleepUs) || maxSleepUs > 1e6) throw Napi::RangeError::New(env, "maxSleepUs must be in sleepUs..1000000");
  }
  int64_t untilSeq = -1;
  uint32_t stampMagic = 0;
  if (info.Length() > 8 && !info[8].IsUndefined()) {
    if (!info[7].IsNumber() || !info[8].IsBigInt()) throw Napi::TypeError::New(env, "stampMagic must be a number and untilSeq a BigInt");
    const double magic = info[7].As<Napi::Number>().DoubleValue();
    if (!(magic >= 0) || magic > 4294967295.0 || std::floor(magic) != magic) throw Napi::RangeError::New(env, "stampMagic must be a u32");
    bool lossless = false;
    untilSeq = info[8].As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless || untilSeq < 0) throw Napi::RangeError::New(env, "untilSeq must be in 0..2^63-1");
    if (view.length < 16) throw Napi::RangeError::New(env, "a stamp watch needs at least 16 bytes");
    stampMagic = static_cast<uint32_t>(magic);
  }
  const int64_t offset = OffsetArg(info[1]);
  auto watch = std::make_shared<WatchRequest>();
  watch->untilSeq = untilSeq;
  watch->stampMagic = stampMagic;
  watch->baseline.assign(view.data, view.data + static_cast<size_t>(compareBytes));
  watch->sleepNs = static_cast<int64_t>(sleepUs * 1000);
  watch->maxSleepNs = static_cast<int64_t>(maxSleepUs * 1000);
  watch->timeoutNs = static_cast<int64_t>(timeoutUs * 1000);
  Job job{Op::kWatch, RequestIdArg(info[0]), offset, std::move(view.block), view.data, view.length, nullptr, watch};
  return SubmitResult(env, pool_->Submit(std::move(job)));
}

Napi::Value NativeVolume::Flush(const Napi::CallbackInfo& info) {
  Job job{Op::kFlush, RequestIdArg(info[0]), 0, nullptr, nullptr, 0, nullptr, nullptr};
  return SubmitResult(info.Env(), ring_ ? ring_->Submit(std::move(job)) : pool_->Submit(std::move(job)));
}

// cancel(requestId) -> true if the request had not started: it is removed and will never run nor
// complete. False: it is running (perhaps parked in the kernel) or already done.
// With io_uring, a request in the kernel cannot be withdrawn: an async cancel is sent, its CQE still
// comes (false, like a running thread job).
Napi::Value NativeVolume::Cancel(const Napi::CallbackInfo& info) {
  const double requestId = RequestIdArg(info[0]);
  if (ring_) {
    const Ring::Cancelled outcome = ring_->Cancel(requestId);
    if (outcome != Ring::Cancelled::kNotHere) return Napi::Boolean::New(info.Env(), outcome == Ring::Cancelled::kRemoved);
  }
  return Napi::Boolean::New(info.Env(), pool_->Cancel(requestId));  // open and watch run on the pool
}

Napi::Value NativeVolume::Close(const Napi::CallbackInfo& info) {
  const double requestId = RequestIdArg(info[0]);
  return Napi::Boolean::New(info.Env(), ring_ ? ring_->Close(requestId) : pool_->Close(requestId));
}

// wakeWatches(): every watch queued or running now re-reads at once and ends (Pool::WakeWatches).
// Watches always run on the pool, whatever the engine.
Napi::Value NativeVolume::WakeWatches(const Napi::CallbackInfo& info) {
  pool_->WakeWatches();
  return info.Env().Undefined();
}

Napi::Value NativeVolume::Engine(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), ring_ ? "io_uring" : "threads");
}

// null, or {errno, syscallId, detail} of the step that kept io_uring from being used.
Napi::Value NativeVolume::EngineFailure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ring_ || ringFailure_.error == 0) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("errno", ringFailure_.error);
  out.Set("syscallId", static_cast<int32_t>(ringFailure_.syscall));
  out.Set("detail", ringFailure_.detail);
  return out;
}

Napi::Value NativeVolume::GetGeometry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Geometry g = pool_->geometry();
  if (!g.valid) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("isBlockDevice", g.isBlockDevice);
  out.Set("sizeBytes", Napi::BigInt::New(env, g.sizeBytes));
  out.Set("logicalBlockSize", g.logicalBlockSize);
  out.Set("physicalBlockSize", g.physicalBlockSize);
  out.Set("memoryAlignment", g.memoryAlignment);
  out.Set("dioAlignReported", g.dioAlignReported);
  out.Set("fsMagic", Napi::Number::New(env, static_cast<double>(g.fsMagic)));
  out.Set("deviceMajor", g.deviceMajor);
  out.Set("deviceMinor", g.deviceMinor);
  return out;
}

Napi::Value NativeVolume::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(pool_->queued() + (ring_ ? ring_->queued() : 0)));
}

}  // namespace lunlink
