// io_uring engine implementation; see uring.h for the threading model and invariants.
#include "uring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "state.h"
#include "thread-name.h"

namespace lunlink {

namespace {

constexpr uint64_t kCancelTag = ~uint64_t{0};  // user_data of IORING_OP_ASYNC_CANCEL SQEs

int SysSetup(unsigned entries, struct io_uring_params* params) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, params));
}
int SysEnter(int fd, unsigned toSubmit, unsigned minComplete, unsigned flags) {
  return static_cast<int>(syscall(__NR_io_uring_enter, fd, toSubmit, minComplete, flags, nullptr, 0));
}
int SysRegister(int fd, unsigned opcode, void* arg, unsigned count) {
  return static_cast<int>(syscall(__NR_io_uring_register, fd, opcode, arg, count));
}

unsigned LoadAcquire(const unsigned* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void StoreRelease(unsigned* p, unsigned v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

// A ring whose SQEs the kernel may still own and that cannot be drained: its mappings and blocks
// stay alive until the process exits. Bounded by the rings ever abandoned that way (none, normally).
void KeepForever(std::shared_ptr<Ring> ring) {
  static std::mutex* mutex = new std::mutex();
  static auto* kept = new std::vector<std::shared_ptr<Ring>>();
  std::lock_guard<std::mutex> lock(*mutex);
  kept->push_back(std::move(ring));
}

uint64_t UserData(uint32_t slot, uint32_t generation) { return (uint64_t{generation} << 32) | slot; }

Syscall SyscallOf(Op op) {
  switch (op) {
    case Op::kWrite:
      return Syscall::kPwrite;
    case Op::kFlush:
      return Syscall::kFdatasync;
    default:
      return Syscall::kPread;
  }
}

}  // namespace

std::shared_ptr<Ring> Ring::Create(Napi::Env env, std::shared_ptr<Pool> pool, std::shared_ptr<Channel> channel, int maxInFlight, RingFailure* failure) {
  std::shared_ptr<Ring> ring(new Ring());
  ring->maxInFlight_ = static_cast<size_t>(maxInFlight);
  ring->env_ = env;
  ring->pool_ = std::move(pool);
  ring->channel_ = std::move(channel);
  if (!ring->Setup(failure)) return nullptr;  // ~Ring unmaps what was mapped
  return ring;
}

bool Ring::Setup(RingFailure* failure) {
  struct io_uring_params params;
  std::memset(&params, 0, sizeof(params));
  // Deferred task work (6.1+): completions wait for this thread's next io_uring_enter instead of
  // interrupting it with a task-work signal; an eventfd wakes the event loop. Older kernels: the
  // ring's descriptor itself is polled.
  const char* mode = getenv("LUNLINK_URING_TASKRUN");  // "signal": measure the older mode (bench)
  if (mode == nullptr || std::strcmp(mode, "signal") != 0) {
    // TASKRUN_FLAG: the kernel raises IORING_SQ_TASKRUN while deferred work waits (Reap reads it).
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    ringFd_ = SysSetup(kRingEntries, &params);
    if (ringFd_ >= 0) deferTaskrun_ = true;
  }
  if (ringFd_ < 0) {
    std::memset(&params, 0, sizeof(params));
    ringFd_ = SysSetup(kRingEntries, &params);
  }
  if (ringFd_ < 0) {
    failure->error = errno;
    failure->syscall = Syscall::kIoUringSetup;
    return false;
  }
  if (!(params.features & IORING_FEAT_SINGLE_MMAP) || !(params.features & IORING_FEAT_NODROP)) {
    failure->error = ENOSYS;
    failure->syscall = Syscall::kIoUringSetup;
    failure->detail = "kernel lacks IORING_FEAT_SINGLE_MMAP or IORING_FEAT_NODROP (older than 5.5)";
    return false;
  }
  // The ops this engine issues must all be supported (IORING_REGISTER_PROBE, 5.6+).
  const size_t probeBytes = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  std::vector<uint8_t> probeMemory(probeBytes, 0);
  auto* probe = reinterpret_cast<struct io_uring_probe*>(probeMemory.data());
  if (SysRegister(ringFd_, IORING_REGISTER_PROBE, probe, 256) < 0) {
    failure->error = errno;
    failure->syscall = Syscall::kIoUringRegister;
    failure->detail = "IORING_REGISTER_PROBE";
    return false;
  }
  for (int op : {IORING_OP_READ, IORING_OP_WRITE, IORING_OP_FSYNC, IORING_OP_ASYNC_CANCEL}) {
    if (op > probe->last_op || !(probe->ops[op].flags & IO_URING_OP_SUPPORTED)) {
      failure->error = ENOSYS;
      failure->syscall = Syscall::kIoUringRegister;
      failure->detail = "io_uring op " + std::to_string(op) + " not supported";
      return false;
    }
  }
  const size_t sqBytes = params.sq_off.array + params.sq_entries * sizeof(unsigned);
  const size_t cqBytes = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
  ringsBytes_ = std::max(sqBytes, cqBytes);
  void* rings = mmap(nullptr, ringsBytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd_, IORING_OFF_SQ_RING);
  if (rings == MAP_FAILED) {
    failure->error = errno;
    failure->syscall = Syscall::kMmap;
    return false;
  }
  rings_ = rings;
  sqesBytes_ = params.sq_entries * sizeof(struct io_uring_sqe);
  void* sqes = mmap(nullptr, sqesBytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd_, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) {
    failure->error = errno;
    failure->syscall = Syscall::kMmap;
    return false;
  }
  sqesMap_ = sqes;
  auto* base = static_cast<uint8_t*>(rings_);
  sqHead_ = reinterpret_cast<unsigned*>(base + params.sq_off.head);
  sqTail_ = reinterpret_cast<unsigned*>(base + params.sq_off.tail);
  sqMask_ = *reinterpret_cast<unsigned*>(base + params.sq_off.ring_mask);
  sqEntries_ = *reinterpret_cast<unsigned*>(base + params.sq_off.ring_entries);
  sqFlags_ = reinterpret_cast<unsigned*>(base + params.sq_off.flags);
  sqArray_ = reinterpret_cast<unsigned*>(base + params.sq_off.array);
  sqes_ = static_cast<struct io_uring_sqe*>(sqesMap_);
  cqHead_ = reinterpret_cast<unsigned*>(base + params.cq_off.head);
  cqTail_ = reinterpret_cast<unsigned*>(base + params.cq_off.tail);
  cqMask_ = *reinterpret_cast<unsigned*>(base + params.cq_off.ring_mask);
  cqes_ = reinterpret_cast<struct io_uring_cqe*>(base + params.cq_off.cqes);
  localSqTail_ = *sqTail_;
  if (params.cq_entries < kMaxKernelOwned) {
    failure->error = EINVAL;
    failure->syscall = Syscall::kIoUringSetup;
    failure->detail = "CQ smaller than asked";
    return false;
  }

  if (deferTaskrun_) {
    eventFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (eventFd_ < 0) {
      failure->error = errno;
      failure->syscall = Syscall::kEventfd;
      return false;
    }
    if (SysRegister(ringFd_, IORING_REGISTER_EVENTFD, &eventFd_, 1) < 0) {
      failure->error = errno;
      failure->syscall = Syscall::kIoUringRegister;
      failure->detail = "IORING_REGISTER_EVENTFD";
      return false;
    }
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env_, &loop) != napi_ok || loop == nullptr) {
    failure->error = EINVAL;
    failure->detail = "no event loop";
    return false;
  }
  poll_ = new uv_poll_t;
  int r = uv_poll_init(loop, poll_, deferTaskrun_ ? eventFd_ : ringFd_);
  if (r != 0) {
    delete poll_;
    poll_ = nullptr;
    failure->error = -r;
    failure->syscall = Syscall::kPoll;
    return false;
  }
  prepare_ = new uv_prepare_t;
  check_ = new uv_check_t;
  uv_prepare_init(loop, prepare_);
  uv_check_init(loop, check_);
  poll_->data = this;
  prepare_->data = this;
  check_->data = this;
  // Neither handle keeps the process alive: live requests hold a ref'd JS deadline timer, and a
  // request parked past its deadline must not (as for the thread engine's parked threads).
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
  uv_unref(reinterpret_cast<uv_handle_t*>(check_));
  uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* handle, int, int) {
    if (handle->data != nullptr) static_cast<Ring*>(handle->data)->Reap();
  });
  return true;
}

Ring::~Ring() {
  // Only reached with no SQE in the kernel (Abandon parks a ring on a thread until then).
  Unmap();
}

void Ring::Unmap() {
  if (sqesMap_ != nullptr) munmap(sqesMap_, sqesBytes_);
  if (rings_ != nullptr) munmap(rings_, ringsBytes_);
  sqesMap_ = nullptr;
  rings_ = nullptr;
  if (ringFd_ >= 0) close(ringFd_);
  ringFd_ = -1;
  if (eventFd_ >= 0) close(eventFd_);
  eventFd_ = -1;
}

void Ring::StopHandles() {
  // JS thread (close, abandon): after this no batch is dispatched, and the ring itself may be
  // destroyed on another thread, where no napi call may run.
  handlesStopped_ = true;
  DeleteDispatchRefs();
  // The handles are freed by their close callbacks, whenever the loop runs them; they no longer
  // point at this ring once closing starts.
  auto closeHandle = [](uv_handle_t* handle) {
    handle->data = nullptr;
    uv_close(handle, [](uv_handle_t* h) {
      if (h->type == UV_POLL) delete reinterpret_cast<uv_poll_t*>(h);
      else if (h->type == UV_CHECK) delete reinterpret_cast<uv_check_t*>(h);
      else delete reinterpret_cast<uv_prepare_t*>(h);
    });
  };
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    closeHandle(reinterpret_cast<uv_handle_t*>(poll_));
    poll_ = nullptr;
  }
  StopFlushHooks();
  if (prepare_ != nullptr) {
    closeHandle(reinterpret_cast<uv_handle_t*>(prepare_));
    prepare_ = nullptr;
  }
  if (check_ != nullptr) {
    closeHandle(reinterpret_cast<uv_handle_t*>(check_));
    check_ = nullptr;
  }
}

uint32_t Ring::AllocateSlot() {
  uint32_t slot;
  if (!freeSlots_.empty()) {
    slot = freeSlots_.back();
    freeSlots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Request& request = slots_[slot];
  request.used = true;
  request.generation++;
  request.doneBytes = 0;
  request.retries = 0;
  request.submittedOnce = false;
  request.cancelAsked = false;
  used_++;
  return slot;
}

Submitted Ring::Submit(Job job) {
  if (closing_ || abandoned_) return Submitted::kClosing;
  if (used_ >= kMaxQueuedJobs) return Submitted::kQueueFull;
  const size_t bytes = job.block ? job.length : 0;
  if (bytes > kMaxPinnedBytes - pinnedBytes_) return Submitted::kPinnedFull;
  pinnedBytes_ += bytes;
  const uint32_t slot = AllocateSlot();
  slots_[slot].job = std::move(job);
  pending_.push_back(slot);
  StartFlushHooks();
  return Submitted::kAccepted;
}

// Requests of this turn go to the kernel together, at the end of the loop phase that made them:
// the check phase (after I/O callbacks) or the prepare phase (before the loop sleeps), whichever
// comes first; completions' follow-up requests go in right after their batch (Reap).
void Ring::StartFlushHooks() {
  if (flushHooksActive_ || prepare_ == nullptr) return;
  uv_prepare_start(prepare_, [](uv_prepare_t* handle) {
    if (handle->data != nullptr) static_cast<Ring*>(handle->data)->Flush();
  });
  uv_check_start(check_, [](uv_check_t* handle) {
    if (handle->data != nullptr) static_cast<Ring*>(handle->data)->Flush();
  });
  flushHooksActive_ = true;
}

void Ring::StopFlushHooks() {
  if (!flushHooksActive_) return;
  uv_prepare_stop(prepare_);
  uv_check_stop(check_);
  flushHooksActive_ = false;
}

bool Ring::FindSlot(double requestId, uint32_t* slot) const {
  for (uint32_t i = 0; i < slots_.size(); i++) {
    if (slots_[i].used && slots_[i].job.requestId == requestId) {
      *slot = i;
      return true;
    }
  }
  return false;
}

Ring::Cancelled Ring::Cancel(double requestId) {
  if (abandoned_) return Cancelled::kNotHere;
  uint32_t slot;
  if (!FindSlot(requestId, &slot)) return Cancelled::kNotHere;  // done, or not a ring request
  Request& request = slots_[slot];
  if (!request.submittedOnce) {
    // Never reached the kernel: forget it, it will not run nor complete.
    auto it = std::find(pending_.begin(), pending_.end(), slot);
    if (it != pending_.end()) {
      pending_.erase(it);
      pinnedBytes_ -= request.job.block ? request.job.length : 0;
      request.job = Job{};
      request.used = false;
      freeSlots_.push_back(slot);
      used_--;
      return Cancelled::kRemoved;
    }
  }
  if (!request.cancelAsked) {
    // In the kernel: ask it to cancel (a bio in flight usually cannot be); the CQE still comes, and
    // the memory stays referenced until then.
    request.cancelAsked = true;
    pendingCancels_.push_back(UserData(slot, request.generation));
    StartFlushHooks();
  }
  return Cancelled::kInKernel;
}

// Writes pending requests into the SQ and submits them with one io_uring_enter. Requests that fail
// to submit complete in a JS call of their own, or through the channel when JS is the caller
// (close): never a JS call inside a JS call.
void Ring::Flush(bool calledFromJs) {
  if (abandoned_ || rings_ == nullptr) return;
  std::vector<Completion>& failed = batch_;
  const unsigned head = LoadAcquire(sqHead_);
  // Cancels first (they never wait for depth); requests while fewer than maxInFlight_ are in the
  // kernel: the rest wait here, where a deadline or close can still withdraw them.
  while (localSqTail_ - head < sqEntries_ && kernelOwned_ < kMaxKernelOwned &&
         (!pendingCancels_.empty() || (!pending_.empty() && requestsInKernel_ < maxInFlight_))) {
    const bool cancel = !pendingCancels_.empty();
    const unsigned index = localSqTail_ & sqMask_;
    struct io_uring_sqe* sqe = &sqes_[index];
    std::memset(sqe, 0, sizeof(*sqe));
    if (cancel) {
      sqe->opcode = IORING_OP_ASYNC_CANCEL;
      sqe->fd = -1;
      sqe->addr = pendingCancels_.front();
      sqe->user_data = kCancelTag;
      pendingCancels_.pop_front();
    } else {
      const uint32_t slot = pending_.front();
      pending_.pop_front();
      requestsInKernel_++;
      Request& request = slots_[slot];
      if (fd_ < 0) fd_ = pool_->fd();  // fixed from open until close; the ring stops before close
      request.submittedOnce = true;
      sqe->fd = fd_;
      sqe->user_data = UserData(slot, request.generation);
      if (request.job.op == Op::kFlush) {
        sqe->opcode = IORING_OP_FSYNC;
        sqe->fsync_flags = IORING_FSYNC_DATASYNC;
      } else {
        sqe->opcode = request.job.op == Op::kWrite ? IORING_OP_WRITE : IORING_OP_READ;
        sqe->addr = reinterpret_cast<uint64_t>(request.job.data + request.doneBytes);
        sqe->len = static_cast<uint32_t>(request.job.length - request.doneBytes);
        sqe->off = static_cast<uint64_t>(request.job.offset) + request.doneBytes;
      }
    }
    sqArray_[index] = index;
    localSqTail_++;
    kernelOwned_++;
  }
  StoreRelease(sqTail_, localSqTail_);
  // Bounded: each round either consumes SQEs or stops.
  for (int round = 0; round < 8; round++) {
    const unsigned unconsumed = localSqTail_ - LoadAcquire(sqHead_);
    if (unconsumed == 0) break;
    const int r = SysEnter(ringFd_, unconsumed, 0, 0);
    if (r >= 0) continue;
    const int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EBUSY) break;  // kernel short of memory or CQ backlogged: retry next turn
    // Anything else (EBADF, EFAULT, EINVAL...): the unconsumed SQEs will never be read; take them
    // back (nothing else reads the SQ: no SQPOLL) and fail their requests.
    const unsigned consumedHead = LoadAcquire(sqHead_);
    for (unsigned at = consumedHead; at != localSqTail_; at++) {
      const uint64_t userData = sqes_[at & sqMask_].user_data;
      kernelOwned_--;
      if (userData == kCancelTag) continue;
      requestsInKernel_--;
      Finish(static_cast<uint32_t>(userData & 0xffffffffu), error, Syscall::kIoUringEnter, failed);
    }
    localSqTail_ = consumedHead;
    StoreRelease(sqTail_, localSqTail_);
    break;
  }
  const bool backlog = localSqTail_ != LoadAcquire(sqHead_);
  if (pending_.empty() && pendingCancels_.empty() && !backlog) StopFlushHooks();
  if (!failed.empty() && calledFromJs) {
    for (const Completion& completion : failed) channel_->Post(completion);
    failed.clear();
  }
  if (!failed.empty()) Dispatch(failed);
  if (!calledFromJs) FinishCloseIfDrained();
}

// Releases a request's slot (its memory reference goes now: the kernel has returned it) and queues
// its completion.
void Ring::Finish(uint32_t slot, int error, Syscall syscall, std::vector<Completion>& batch) {
  Request& request = slots_[slot];
  batch.push_back({request.job.requestId, static_cast<int64_t>(request.doneBytes), error, error != 0 ? syscall : Syscall::kNone});
  pinnedBytes_ -= request.job.block ? request.job.length : 0;
  request.job = Job{};
  request.used = false;
  freeSlots_.push_back(slot);
  used_--;
}

void Ring::ReapInto(std::vector<Completion>* batch) {
  unsigned head = *cqHead_;
  const unsigned tail = LoadAcquire(cqTail_);
  while (head != tail) {
    const struct io_uring_cqe cqe = cqes_[head & cqMask_];
    head++;
    kernelOwned_--;
    if (cqe.user_data == kCancelTag) continue;  // the cancelled request's own CQE reports the outcome
    requestsInKernel_--;
    const uint32_t slot = static_cast<uint32_t>(cqe.user_data & 0xffffffffu);
    Request& request = slots_[slot];
    const Syscall syscall = SyscallOf(request.job.op);
    if (batch == nullptr) {
      // Abandoned: nobody listens; only drop the memory, now that the kernel is done with it.
      request.job = Job{};
      request.used = false;
      continue;
    }
    const int res = cqe.res;
    if ((res == -EINTR || res == -EAGAIN) && request.retries < kMaxRetries && !request.cancelAsked) {
      request.retries++;
      pending_.push_back(slot);
      continue;
    }
    if (res < 0) {
      Finish(slot, -res, syscall, *batch);
      continue;
    }
    if (request.job.op == Op::kFlush) {
      Finish(slot, 0, syscall, *batch);
      continue;
    }
    request.doneBytes += static_cast<size_t>(res);
    if (res > 0 && request.doneBytes < request.job.length && !request.cancelAsked && !abandoned_) {
      pending_.push_back(slot);  // short transfer: the rest goes in again
      continue;
    }
    Finish(slot, 0, syscall, *batch);  // complete, or short (end of file or device: JS says so)
  }
  StoreRelease(cqHead_, head);
}

// uv_poll: CQEs are ready. One JS call per batch; requests it makes go in at once.
void Ring::Reap() {
  if (abandoned_ || rings_ == nullptr) return;
  if (deferTaskrun_) {
    // Run the deferred task work (it posts the CQEs), then reset the eventfd (level-triggered poll).
    // In this order the reset also swallows the signal the kernel sends for the CQEs this very call
    // posted, which would otherwise wake the loop once more per batch for nothing (measured: a
    // second epoll wake-up, eventfd read and io_uring_enter per request at QD1). No wake-up is
    // lost: work queued after the GETEVENTS raises IORING_SQ_TASKRUN before it signals the eventfd,
    // so a signal this read swallowed shows as the flag, and the work is run here.
    bool workLeft = true;
    for (int round = 0; round < kMaxReapRounds && workLeft; round++) {
      SysEnter(ringFd_, 0, 0, IORING_ENTER_GETEVENTS);
      uint64_t count;
      while (read(eventFd_, &count, sizeof(count)) < 0 && errno == EINTR) {
      }
      workLeft = (LoadAcquire(sqFlags_) & IORING_SQ_TASKRUN) != 0;
    }
    if (workLeft) {
      // Still arriving after the bound: leave the eventfd readable so the loop comes back here.
      const uint64_t one = 1;
      while (write(eventFd_, &one, sizeof(one)) < 0 && errno == EINTR) {
      }
    }
  } else if (LoadAcquire(sqFlags_) & IORING_SQ_CQ_OVERFLOW) {
    SysEnter(ringFd_, 0, 0, IORING_ENTER_GETEVENTS);  // flush overflowed CQEs
  }
  std::vector<Completion>& batch = batch_;
  ReapInto(&batch);
  if (!batch.empty()) Dispatch(batch);
  if (abandoned_ || rings_ == nullptr) return;  // JS closed or dropped the volume meanwhile
  if (!pending_.empty() || !pendingCancels_.empty()) Flush();
  FinishCloseIfDrained();
}

void Ring::Dispatch(std::vector<Completion>& batch) {
  AddonState* state = GetState(Napi::Env(env_));
  if (state == nullptr || state->dispatch.IsEmpty() || state->tornDown) {
    batch.clear();
    return;
  }
  const size_t count = batch.size();
  std::vector<Completion> local;
  local.swap(batch);  // JS may re-enter (submit, cancel, close) while it runs
  napi_env env = env_;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  {
    // The four arrays are this ring's persistent views over its dispatch buffer, passed with the
    // batch's count (no allocation per batch: four backing stores per batch were ~5% of the CPU
    // per 4 KiB request, and the four typed arrays still made per batch showed in the QD1 profile,
    // NewJSTypedArray and napi_create_typedarray); fresh arrays of the batch's length only for a
    // nested call, an oversized batch, or a buffer JS managed to detach.
    napi_value buffer = DispatchBuffer();
    const bool pooled = buffer != nullptr && !dispatching_ && count <= kMaxKernelOwned;
    napi_value argv[5];
    size_t argc = 4;
    double* requestIds;
    double* results;
    int32_t* errors;
    int32_t* syscalls;
    if (pooled) {
      void* data = nullptr;
      napi_get_arraybuffer_info(env, buffer, &data, nullptr);
      auto* bytes = static_cast<uint8_t*>(data);
      requestIds = reinterpret_cast<double*>(bytes + kDispatchViewOffsets[0]);
      results = reinterpret_cast<double*>(bytes + kDispatchViewOffsets[1]);
      errors = reinterpret_cast<int32_t*>(bytes + kDispatchViewOffsets[2]);
      syscalls = reinterpret_cast<int32_t*>(bytes + kDispatchViewOffsets[3]);
      for (int i = 0; i < 4; i++) napi_get_reference_value(env, dispatchViews_[i], &argv[i]);
      napi_create_uint32(env, static_cast<uint32_t>(count), &argv[4]);
      argc = 5;
    } else {
      Napi::Env napiEnv(env);
      auto ids = Napi::Float64Array::New(napiEnv, count);
      auto res = Napi::Float64Array::New(napiEnv, count);
      auto errs = Napi::Int32Array::New(napiEnv, count);
      auto calls = Napi::Int32Array::New(napiEnv, count);
      requestIds = ids.Data();
      results = res.Data();
      errors = errs.Data();
      syscalls = calls.Data();
      argv[0] = ids;
      argv[1] = res;
      argv[2] = errs;
      argv[3] = calls;
    }
    for (size_t i = 0; i < count; i++) {
      requestIds[i] = local[i].requestId;
      results[i] = static_cast<double>(local[i].result);
      errors[i] = local[i].error;
      syscalls[i] = static_cast<int32_t>(local[i].syscall);
    }
    napi_value global;
    napi_get_global(env, &global);
    napi_value result;
    // MakeCallback runs the microtasks and nextTicks the handlers queue, as for any I/O callback.
    const bool wasDispatching = dispatching_;
    dispatching_ = true;
    napi_status status = napi_make_callback(env, state->ringContext, global, state->dispatch.Value(), argc, argv, &result);
    dispatching_ = wasDispatching;
    if (status == napi_pending_exception) {
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
  local.clear();
  if (batch.empty()) batch.swap(local);  // keep the warm vector
}

// This ring's dispatch buffer and its four views (JS thread), created at the first batch; nullptr
// once the handles stopped or if a view cannot be made. A buffer JS detached is replaced.
napi_value Ring::DispatchBuffer() {
  if (handlesStopped_) return nullptr;
  napi_value buffer = nullptr;
  if (dispatchBuffer_ != nullptr) {
    napi_get_reference_value(env_, dispatchBuffer_, &buffer);
    void* data = nullptr;
    size_t bytes = 0;
    if (buffer != nullptr && napi_get_arraybuffer_info(env_, buffer, &data, &bytes) == napi_ok && data != nullptr && bytes == kDispatchBufferBytes) return buffer;
    DeleteDispatchRefs();  // detached: make a new one
  }
  void* data = nullptr;
  if (napi_create_arraybuffer(env_, kDispatchBufferBytes, &data, &buffer) != napi_ok) return nullptr;
  if (napi_create_reference(env_, buffer, 1, &dispatchBuffer_) != napi_ok) {
    dispatchBuffer_ = nullptr;
    return nullptr;
  }
  const napi_typedarray_type types[4] = {napi_float64_array, napi_float64_array, napi_int32_array, napi_int32_array};
  for (int i = 0; i < 4; i++) {
    napi_value view;
    if (napi_create_typedarray(env_, types[i], kMaxKernelOwned, buffer, kDispatchViewOffsets[i], &view) != napi_ok ||
        napi_create_reference(env_, view, 1, &dispatchViews_[i]) != napi_ok) {
      dispatchViews_[i] = nullptr;
      DeleteDispatchRefs();
      return nullptr;
    }
  }
  return buffer;
}

void Ring::DeleteDispatchRefs() {
  if (dispatchBuffer_ != nullptr) napi_delete_reference(env_, dispatchBuffer_);
  dispatchBuffer_ = nullptr;
  for (napi_ref& view : dispatchViews_) {
    if (view != nullptr) napi_delete_reference(env_, view);
    view = nullptr;
  }
}

void Ring::FinishCloseIfDrained() {
  if (!closing_ || closeForwarded_ || abandoned_) return;
  if (kernelOwned_ != 0 || !pending_.empty() || !pendingCancels_.empty()) return;
  closeForwarded_ = true;
  StopHandles();
  Unmap();  // no SQE in the kernel: safe
  pool_->Close(closeRequestId_);
}

bool Ring::Close(double requestId) {
  if (closing_ || abandoned_) return false;
  // Requests accepted before close go to the kernel now and run, as a running thread job would;
  // only those the ring has no room for are cancelled.
  Flush(true);
  closing_ = true;
  closeRequestId_ = requestId;
  // Requests that never reached the kernel do not run: ECANCELED, ahead of the close completion.
  std::deque<uint32_t> keep;
  for (const uint32_t slot : pending_) {
    Request& request = slots_[slot];
    if (request.submittedOnce) {
      keep.push_back(slot);  // a resubmission of a started request finishes
      continue;
    }
    channel_->Post({request.job.requestId, 0, ECANCELED, Syscall::kNone});
    pinnedBytes_ -= request.job.block ? request.job.length : 0;
    request.job = Job{};
    request.used = false;
    freeSlots_.push_back(slot);
    used_--;
  }
  pending_.swap(keep);
  if (pending_.empty() && pendingCancels_.empty() && kernelOwned_ == 0) {
    // Nothing in flight: close at once (the pool posts the completion after the ECANCELED ones).
    closeForwarded_ = true;
    StopHandles();
    Unmap();
    pool_->Close(requestId);
  }
  return true;
}

void Ring::Abandon() {
  if (abandoned_) return;
  abandoned_ = true;
  StopHandles();
  if (closeForwarded_ || rings_ == nullptr) {
    pool_->Abandon();
    return;
  }
  // SQEs written but not consumed: take them back so the drain waits only for what the kernel has.
  const unsigned consumedHead = LoadAcquire(sqHead_);
  kernelOwned_ -= localSqTail_ - consumedHead;
  localSqTail_ = consumedHead;
  StoreRelease(sqTail_, localSqTail_);
  pending_.clear();
  pendingCancels_.clear();
  for (Request& request : slots_) {
    if (request.used && !request.submittedOnce) request.job = Job{};
  }
  if (kernelOwned_ == 0) {
    Unmap();
    pool_->Abandon();
    return;
  }
  if (deferTaskrun_) {
    // Only this (the submitting) thread may run the ring's deferred work, and the environment is
    // going away: keep the ring and the memory its requests own until the process exits.
    KeepForever(shared_from_this());
    pool_->Abandon();
    return;
  }
  try {
    std::thread([self = shared_from_this()] { self->Drain(); }).detach();
  } catch (const std::exception&) {
    // No thread: keep the ring and its memory mapped forever rather than free what the kernel owns.
    KeepForever(shared_from_this());
    pool_->Abandon();
  }
}

// Parked-ring thread: waits for every SQE the kernel still owns, then unmaps and closes.
void Ring::Drain() {
  NameThisThread("lunlink-drain");  // an abandoned ring waiting for its last CQEs
  while (kernelOwned_ > 0) {
    const int r = SysEnter(ringFd_, 0, 1, IORING_ENTER_GETEVENTS);
    if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) break;  // the ring is unusable: keep the memory
    ReapInto(nullptr);
  }
  if (kernelOwned_ == 0) {
    slots_.clear();
    Unmap();
  } else {
    KeepForever(shared_from_this());  // never freed: the kernel may still write into its blocks
  }
  pool_->Abandon();
}

size_t Ring::queued() const { return used_; }

}  // namespace lunlink
