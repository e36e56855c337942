// Completion channel implementation; see channel.h for the invariants.
#include "channel.h"

namespace lunlink {

std::shared_ptr<Channel> Channel::Create(Napi::Env env, Napi::Function dispatch) {
  auto channel = std::make_shared<Channel>();
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
  try {
    Napi::HandleScope scope(env);
    auto requestIds = Napi::Float64Array::New(env, count);
    auto results = Napi::Float64Array::New(env, count);
    auto errors = Napi::Int32Array::New(env, count);
    auto syscalls = Napi::Int32Array::New(env, count);
    for (size_t i = 0; i < count; i++) {
      requestIds[i] = batch[i].requestId;
      results[i] = static_cast<double>(batch[i].result);
      errors[i] = batch[i].error;
      syscalls[i] = static_cast<int32_t>(batch[i].syscall);
    }
    batch.clear();
    dispatch.Call({requestIds, results, errors, syscalls});
  } catch (const Napi::Error& error) {
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

void Channel::Shutdown() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!alive_) return;
  alive_ = false;
  tsfn_.Release();
}

}  // namespace lunlink
