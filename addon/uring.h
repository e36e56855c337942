// io_uring engine for one volume's reads, writes and flushes (open and watch stay on the volume's
// Pool, which also owns the descriptor). Raw syscalls and <linux/io_uring.h>, no liburing.
// Threading: everything but the abandon drain runs on the JS thread. Requests made in one event-loop
// turn are written to the SQ and submitted by one io_uring_enter (a uv_check/uv_prepare at the end
// of the loop phase that made them, or right after a completion batch); completions are reaped when a uv_poll on the ring's
// descriptor fires and handed to JS in one call per batch (one wake-up, no thread hop).
// Invariants: a request's Block is referenced until its CQE is reaped (a cancelled or timed-out
// request included: a bio often cannot be cancelled); the rings are unmapped only when no SQE is
// owned by the kernel; at most kMaxKernelOwned SQEs (= CQ entries) are in the kernel at once, so the
// CQ never overflows; at most kMaxQueuedJobs requests and kMaxPinnedBytes bytes per volume.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "channel.h"
#include "pool.h"

struct io_uring_sqe;  // <linux/io_uring.h>, included by uring.cc only
struct io_uring_cqe;

namespace lunlink {

constexpr unsigned kRingEntries = 128;             // SQ entries; the kernel gives 2x CQ entries
constexpr unsigned kMaxKernelOwned = 2 * kRingEntries;
constexpr uint32_t kMaxRetries = 64;               // EINTR/EAGAIN resubmissions of one request
constexpr int kMaxReapRounds = 4;                  // GETEVENTS rounds per wake-up while work keeps arriving

// Why the engine is not io_uring: errno and syscall of the failed step, or error 0 if it was not asked.
struct RingFailure {
  int error = 0;
  Syscall syscall = Syscall::kNone;
  std::string detail;  // e.g. "IORING_OP_FSYNC not supported"
};

class Ring : public std::enable_shared_from_this<Ring> {
 public:
  // io_uring_setup + mmap + probe; nullptr (with *failure set) if io_uring cannot serve this volume.
  static std::shared_ptr<Ring> Create(Napi::Env env, std::shared_ptr<Pool> pool, std::shared_ptr<Channel> channel, int maxInFlight, RingFailure* failure);
  ~Ring();

  // Read, write or flush (JS thread). The descriptor is the pool's: only after open completed.
  Submitted Submit(Job job);
  // kRemoved: the request had not reached the kernel; it never runs nor completes. kInKernel: an
  // IORING_OP_ASYNC_CANCEL is sent and the request's own CQE still comes. kNotHere: not a live
  // ring request (done, or one of the pool's).
  enum class Cancelled { kNotHere, kRemoved, kInKernel };
  Cancelled Cancel(double requestId);
  // Unsubmitted requests complete with ECANCELED; once the kernel has returned every SQE the
  // pool closes the descriptor and `requestId` completes. False if already closing.
  bool Close(double requestId);
  // GC or environment teardown: post nothing; park the ring on a thread until its CQEs come.
  void Abandon();
  size_t queued() const;

 private:
  struct Request {
    Job job;
    size_t doneBytes = 0;
    uint32_t retries = 0;
    uint32_t generation = 0;
    bool used = false;
    bool submittedOnce = false;  // handed to the kernel at least once
    bool cancelAsked = false;
  };

  Ring() = default;
  bool Setup(RingFailure* failure);
  void Flush(bool calledFromJs = false);
  void Reap();
  void Dispatch(std::vector<Completion>& batch);
  napi_value DispatchBuffer();
  void DeleteDispatchRefs();
  void Finish(uint32_t slot, int error, Syscall syscall, std::vector<Completion>& batch);
  void FinishCloseIfDrained();
  void StopHandles();
  void StartFlushHooks();
  void StopFlushHooks();
  void Unmap();
  void Drain();  // abandon thread: waits for the kernel's CQEs, then unmaps
  void ReapInto(std::vector<Completion>* batch);
  uint32_t AllocateSlot();
  bool FindSlot(double requestId, uint32_t* slot) const;

  napi_env env_ = nullptr;
  std::shared_ptr<Pool> pool_;
  std::shared_ptr<Channel> channel_;
  int ringFd_ = -1;
  int eventFd_ = -1;  // registered with IORING_REGISTER_EVENTFD (deferred task work only)
  bool deferTaskrun_ = false;
  int fd_ = -1;  // the volume's descriptor (the pool's), cached at the first request
  // Mappings.
  void* rings_ = nullptr;
  size_t ringsBytes_ = 0;
  void* sqesMap_ = nullptr;
  size_t sqesBytes_ = 0;
  unsigned* sqHead_ = nullptr;
  unsigned* sqTail_ = nullptr;
  unsigned sqMask_ = 0;
  unsigned sqEntries_ = 0;
  unsigned* sqArray_ = nullptr;
  unsigned* sqFlags_ = nullptr;
  ::io_uring_sqe* sqes_ = nullptr;
  unsigned* cqHead_ = nullptr;
  unsigned* cqTail_ = nullptr;
  unsigned cqMask_ = 0;
  ::io_uring_cqe* cqes_ = nullptr;
  unsigned localSqTail_ = 0;
  // Requests.
  std::vector<Request> slots_;
  std::vector<uint32_t> freeSlots_;
  std::deque<uint32_t> pending_;          // request slots to write to the SQ at the next flush
  std::deque<uint64_t> pendingCancels_;   // user_data of requests to cancel (IORING_OP_ASYNC_CANCEL)
  size_t maxInFlight_ = 1;                // requests in the kernel at once (ioThreads: the queue depth)
  size_t requestsInKernel_ = 0;
  size_t used_ = 0;                 // requests in slots_
  size_t kernelOwned_ = 0;          // SQEs written and not yet reaped (cancels included)
  size_t pinnedBytes_ = 0;
  // Lifecycle.
  bool closing_ = false;
  bool closeForwarded_ = false;
  bool abandoned_ = false;
  double closeRequestId_ = 0;
  uv_poll_t* poll_ = nullptr;
  uv_prepare_t* prepare_ = nullptr;
  uv_check_t* check_ = nullptr;
  bool flushHooksActive_ = false;
  std::vector<Completion> batch_;  // reused per reap
  // Backing of the arrays a batch is handed to JS in: ids and results (f64), errors and syscalls
  // (i32), kMaxKernelOwned each (a reap returns at most that many).
  static constexpr size_t kDispatchBufferBytes = 24 * kMaxKernelOwned;
  // Where each of the four arrays starts in it (bytes): the views JS gets and the pointers a batch
  // is written through use these alike.
  static constexpr size_t kDispatchViewOffsets[4] = {0, 8 * kMaxKernelOwned, 16 * kMaxKernelOwned, 20 * kMaxKernelOwned};
  napi_ref dispatchBuffer_ = nullptr;
  // The four full-length typed arrays over it (ids, results, errors, syscalls), made with the
  // buffer and handed to JS with the batch's count: no typed array is created per batch.
  napi_ref dispatchViews_[4] = {nullptr, nullptr, nullptr, nullptr};
  bool dispatching_ = false;
  bool handlesStopped_ = false;
};

}  // namespace lunlink
