// Per-volume I/O thread pool: lunlink's own threads, never the libuv pool that fs, dns and crypto
// share, so a device that hangs parks only its own volume's threads.
// Bounds: at most `maxThreads` threads (spawned lazily when queued jobs outnumber idle threads), at
// most kMaxQueuedJobs jobs and kMaxPinnedBytes bytes of job memory queued or running (parked ones
// included). Invariants: a job touches only the Block it holds a reference to; a job that has not
// started can be cancelled (deadline, close) and then never runs; the file descriptor is closed
// exactly once, by the last thread to leave after close was requested and every running job returned.
#pragma once

#include <napi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "buffer.h"
#include "channel.h"

namespace lunlink {

enum class Op : int32_t { kOpen = 0, kRead = 1, kWrite = 2, kFlush = 3, kWatch = 4 };

// A watch re-reads one range until its first `compareBytes` differ from `baseline` or the timeout
// passes: waiting for the peer's next record happens here, in a timed wait of the pool (watchWake_), instead of
// on JS timers (~1 ms granularity). The sleep between reads backs off here too, so an idle follower
// costs native re-reads and no JS turn: it starts at `sleepNs`, is kept for kWatchRereads times its
// length, then grows by kWatchGrowth, up to `maxSleepNs` (lib/poll/adaptive-wait.ts
// paceAfter() runs the same schedule to know where a wait left off).
// With `untilSeq` >= 0 the watch waits for a ring stamp instead (docs/format.md: u32 `stampMagic` at
// byte 0, u64 seq at byte 8, little-endian): it completes once the range starts with a stamp of that
// magic and a seq of at least untilSeq (the record the reader expects, or a newer one that lapped it),
// so a follower that just passed a record watches the next slot without a read of its own first.
// The sleep is a wait on the pool's watch condition variable: WakeWatches() (or close) cuts it short.
struct WatchRequest {
  std::vector<uint8_t> baseline;
  int64_t untilSeq = -1;  // < 0: compare with the baseline
  uint32_t stampMagic = 0;
  int64_t sleepNs;
  int64_t maxSleepNs;  // >= sleepNs; equal: a constant pace
  int64_t timeoutNs;
  uint64_t wakeGeneration = 0;  // the pool's wake generation when it was queued (set by Submit)
};

// The watch back-off schedule; mirrored by WATCH_REREADS and SLEEP_GROWTH in lib/poll/adaptive-wait.ts.
constexpr int64_t kWatchRereads = 4;
constexpr int64_t kWatchGrowth = 8;

struct OpenRequest {
  std::string path;
  bool direct = true;
  bool dsync = false;
  bool exclusive = false;
  bool readOnly = false;
};

struct Geometry {
  bool valid = false;
  bool isBlockDevice = false;
  uint64_t sizeBytes = 0;
  uint32_t logicalBlockSize = 0;
  uint32_t physicalBlockSize = 0;
  uint32_t memoryAlignment = 0;
  bool dioAlignReported = false;  // statx STATX_DIOALIGN answered (files)
  uint64_t fsMagic = 0;           // statfs f_type of the file system holding a file
  uint32_t deviceMajor = 0;       // st_rdev for block devices, st_dev for files
  uint32_t deviceMinor = 0;
};

struct Job {
  Op op = Op::kFlush;
  double requestId = 0;
  int64_t offset = 0;
  BlockRef block;            // the memory of a read/write/watch; released when the job is destroyed
  uint8_t* data = nullptr;   // inside block
  size_t length = 0;
  std::shared_ptr<OpenRequest> open;    // only for Op::kOpen
  std::shared_ptr<WatchRequest> watch;  // only for Op::kWatch
};

// Why Submit refused a job; mirrored by SUBMIT_REFUSALS in lib/io/native.ts.
enum class Submitted : int32_t { kAccepted = 0, kClosing = 1, kQueueFull = 2, kPinnedFull = 3, kNoThread = 4 };

constexpr size_t kMaxQueuedJobs = 65536;
// Job memory (queued, running or parked) per volume: a stalled device cannot make one volume pin
// unbounded memory through retries.
constexpr size_t kMaxPinnedBytes = size_t{1} << 30;
// After a job, one thread per pool polls the queue this long before sleeping on the condition
// variable: back-to-back requests (queue depth 1) then skip a futex wake-up. Measured in bench raw.
constexpr int64_t kSpinNs = 50'000;
// Spins that found no work in a row before the pool stops spinning: an idle volume (a request every
// few ms) then pays no spin per request. It spins again once a request comes within kSpinNs of the
// previous completion (back-to-back requests are back).
constexpr int kMaxSpinMisses = 8;
constexpr int kMaxThreads = 64;

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  Pool(std::shared_ptr<Channel> channel, int maxThreads);

  Submitted Submit(Job job);
  // Removes a job that has not started; true if it was queued (it will never run nor complete).
  bool Cancel(double requestId);
  // Requests close: queued jobs complete at once with ECANCELED, running ones finish; `requestId`
  // completes once the descriptor is closed. False if the pool was already closing.
  bool Close(double requestId);
  // Environment teardown or GC without close: close quietly, post nothing.
  void Abandon();
  // Wakes every watch queued or running now: each re-reads at once and then ends (changed, or
  // unchanged with result 0), so its caller starts the next one at the pace it wants now (a follower
  // leaving its standby pace, lib/poll/poller.ts). Watches queued later are not affected.
  void WakeWatches();

  Geometry geometry();
  int fd();  // -1 before open completed and after close
  bool closing();
  size_t queued();

 private:
  void Run();
  void Execute(Job& job, Completion& done);
  void ExecuteOpen(Job& job, Completion& done);
  void ExecuteWatch(Job& job, Completion& done, int fd);
  bool Transfer(Job& job, Completion& done, int fd);
  // False if no thread could be created (EAGAIN: the process is out of threads or memory).
  bool SpawnLocked();
  void CloseDescriptor(std::unique_lock<std::mutex>& lock);
  bool SpinForWork(std::unique_lock<std::mutex>& lock);

  std::shared_ptr<Channel> channel_;
  const int maxThreads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable watchWake_;  // a watch's sleep between re-reads; WakeWatches and close notify it
  uint64_t wakeGeneration_ = 0;        // raised by WakeWatches (under mutex_)
  std::deque<Job> jobs_;
  int threads_ = 0;
  int idle_ = 0;
  int running_ = 0;
  size_t pinnedBytes_ = 0;  // job memory queued or running
  bool spinning_ = false;
  int spinMisses_ = 0;                 // consecutive spins that found nothing
  std::chrono::steady_clock::time_point lastPost_{};  // when the last job's completion was posted
  std::atomic<bool> stopping_{false};  // closing_, readable by a watch loop without the mutex
  std::atomic<size_t> pendingJobs_{0};  // jobs_.size(), readable without the mutex while spinning
  bool closing_ = false;
  bool closed_ = false;
  bool silent_ = false;
  double closeRequestId_ = 0;
  int fd_ = -1;
  Geometry geometry_;
};

}  // namespace lunlink
