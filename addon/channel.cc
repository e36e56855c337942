// Completion channel implementation; see channel.h for the invariants.
#include "channel.h"

namespace lunlink {

std::shared_ptr<Channel> Channel::Create(Napi::Env env, Napi::Function dispatch) {
  auto channel = std::make_shared<Channel>();
  channel->env_ = env;
  channel->tsfn_ = Napi::ThreadSafeFunction::New(env, dispatch, "lunlink-io-completions", 0, 1);
  // Deadline timers in JS keep the loop alive while I/O is pending; a parked thread must not.
  channel->tsfn_.Unref(env);
  return channel;
}

void Channel::Post(const Completion& completion) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!alive_) return;  // environment gone: the JS side no longer exists to hear about it
  pending_.push_back(completion);
  if (scheduled_) return;
  scheduled_ = true;
  Channel* self = this;
  napi_status status = tsfn_.NonBlockingCall(self, Drain);
  if (status != napi_ok) scheduled_ = false;  // closing: the next Post (if any) retries
}

void Channel::Drain(Napi::Env env, Napi::Function dispatch, Channel* channel) {
  if (env == nullptr || dispatch.IsEmpty()) return;
  {
    std::lock_guard<std::mutex> lock(channel->mutex_);
    channel->draining_.swap(channel->pending_);
    channel->scheduled_ = false;
  }
  std::vector<Completion>& batch = channel->draining_;
  if (batch.empty()) return;
  const size_t count = batch.size();
  const bool wasDispatching = channel->dispatching_;
  try {
    Napi::HandleScope scope(env);
    // Views over the channel's drain buffer (uring.cc Dispatch does the same); fresh arrays only for
    // a nested call, an oversized batch, or a buffer JS managed to detach.
    napi_value buffer = wasDispatching || count > kDrainBatch ? nullptr : channel->DrainBuffer(env);
    Napi::TypedArrayOf<double> requestIds, results;
    Napi::TypedArrayOf<int32_t> errors, syscalls;
    if (buffer != nullptr) {
      Napi::ArrayBuffer pooled(env, buffer);
      requestIds = Napi::Float64Array::New(env, count, pooled, 0);
      results = Napi::Float64Array::New(env, count, pooled, 8 * kDrainBatch);
      errors = Napi::Int32Array::New(env, count, pooled, 16 * kDrainBatch);
      syscalls = Napi::Int32Array::New(env, count, pooled, 20 * kDrainBatch);
    } else {
      requestIds = Napi::Float64Array::New(env, count);
      results = Napi::Float64Array::New(env, count);
      errors = Napi::Int32Array::New(env, count);
      syscalls = Napi::Int32Array::New(env, count);
    }
    for (size_t i = 0; i < count; i++) {
      requestIds[i] = batch[i].requestId;
      results[i] = static_cast<double>(batch[i].result);
      errors[i] = batch[i].error;
      syscalls[i] = static_cast<int32_t>(batch[i].syscall);
    }
    batch.clear();
    channel->dispatching_ = true;
    dispatch.Call({requestIds, results, errors, syscalls});
    channel->dispatching_ = wasDispatching;
  } catch (const Napi::Error& error) {
    channel->dispatching_ = wasDispatching;
    // Two ways to get here: the environment is shutting down and can no longer run JS (a completion
    // that raced process exit: nothing is waiting for it, drop it), or dispatch itself threw (a
    // lunlink bug): hand that exception back to JS so it surfaces as an uncaught exception.
    // An exception must never escape this callback: it would abort the process.
    batch.clear();
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && !pending && !error.IsEmpty()) {
      napi_throw(env, error.Value());  // fails harmlessly if the environment is terminating
    }
  }
}

// The drain buffer (JS thread), created at the first batch; nullptr once shut down or if creating it failed.
napi_value Channel::DrainBuffer(napi_env env) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!alive_) return nullptr;  // Shutdown deleted (or will never see) the reference
  }
  napi_value buffer = nullptr;
  if (drainBuffer_ != nullptr) {
    napi_get_reference_value(env, drainBuffer_, &buffer);
    void* data = nullptr;
    size_t bytes = 0;
    if (buffer != nullptr && napi_get_arraybuffer_info(env, buffer, &data, &bytes) == napi_ok && data != nullptr && bytes == kDrainBufferBytes) return buffer;
    napi_delete_reference(env, drainBuffer_);  // detached: make a new one
    drainBuffer_ = nullptr;
  }
  void* data = nullptr;
  if (napi_create_arraybuffer(env, kDrainBufferBytes, &data, &buffer) != napi_ok) return nullptr;
  if (napi_create_reference(env, buffer, 1, &drainBuffer_) != napi_ok) {
    drainBuffer_ = nullptr;
    return nullptr;
  }
  return buffer;
}

void Channel::Shutdown() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!alive_) return;
  alive_ = false;
  tsfn_.Release();
  if (drainBuffer_ != nullptr) {
    napi_delete_reference(env_, drainBuffer_);  // JS thread (the environment's cleanup hook)
    drainBuffer_ = nullptr;
  }
}

}  // namespace lunlink
