// Completion channel: the one way I/O threads hand results back to JavaScript.
// Threads push completions under a mutex; the first push into an empty queue schedules one
// ThreadSafeFunction call, which drains the whole queue on the JS thread (completions are batched).
// Invariant: once the environment starts tearing down (`alive` false) no thread touches the
// ThreadSafeFunction again, so a thread parked on a stalled device can return at any later time safely.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace lunlink {

// Which syscall a completion's errno came from; mirrored by SYSCALL_NAMES in lib/io/native.ts.
enum class Syscall : int32_t {
  kNone = 0,
  kOpen = 1,
  kFstat = 2,
  kIoctl = 3,
  kStatx = 4,
  kFstatfs = 5,
  kFcntl = 6,
  kPread = 7,
  kPwrite = 8,
  kFdatasync = 9,
  kClose = 10,
  kRead = 11,
  kWrite = 12,
  kPoll = 13,
  kSocket = 14,
  kEventfd = 15,
  kIoUringSetup = 16,
  kIoUringEnter = 17,
  kIoUringRegister = 18,
  kMmap = 19,
};

struct Completion {
  double requestId;          // JS-assigned id, unique per environment
  int64_t result;            // bytes transferred, or 0
  int32_t error;             // errno, 0 on success
  Syscall syscall;           // the syscall that set `error`
};

class Channel {
 public:
  // Creates the channel for one environment; `dispatch` is called as
  // dispatch(requestIds: Float64Array, results: Float64Array, errors: Int32Array, syscalls: Int32Array).
  static std::shared_ptr<Channel> Create(Napi::Env env, Napi::Function dispatch);

  // Thread-safe. Never blocks on JS. Drops the completion if the environment is gone.
  void Post(const Completion& completion);

  // Environment teardown (JS thread): after this returns no thread calls into the ThreadSafeFunction.
  void Shutdown();

 private:
  static void Drain(Napi::Env env, Napi::Function dispatch, Channel* channel);

  std::mutex mutex_;
  bool alive_ = true;
  bool scheduled_ = false;
  std::vector<Completion> pending_;
  std::vector<Completion> draining_;  // reused on the JS thread: no allocation per batch once warm
  Napi::ThreadSafeFunction tsfn_;
  // JS thread only. Backing of the four arrays a batch is handed to JS in (ids and results f64,
  // errors and syscalls i32, kDrainBatch each): views over it instead of four new ArrayBuffers per
  // batch. Created at the first batch, deleted by Shutdown (never on an I/O thread).
  static constexpr size_t kDrainBatch = 256;
  static constexpr size_t kDrainBufferBytes = 24 * kDrainBatch;
  napi_env env_ = nullptr;
  napi_ref drainBuffer_ = nullptr;
  bool dispatching_ = false;
  napi_value DrainBuffer(napi_env env);
};

}  // namespace lunlink
