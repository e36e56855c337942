// I/O thread pool implementation; see pool.h for bounds and invariants.
#include "pool.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <chrono>
#include <thread>

#include "device.h"
#include "thread-name.h"

namespace lunlink {

Pool::Pool(std::shared_ptr<Channel> channel, int maxThreads)
    : channel_(std::move(channel)), maxThreads_(maxThreads) {}

Submitted Pool::Submit(Job job) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closing_) return Submitted::kClosing;
  if (jobs_.size() >= kMaxQueuedJobs) return Submitted::kQueueFull;
  const size_t bytes = job.block ? job.length : 0;
  if (bytes > kMaxPinnedBytes - pinnedBytes_) return Submitted::kPinnedFull;
  // Queued jobs, this one included, must not outnumber the threads free to take them: a thread that
  // was woken but has not yet taken its job still counts in idle_, so compare with the queue rather
  // than test idle_ == 0 (which serialized back-to-back submissions behind a long watch).
  if (jobs_.size() + 1 > static_cast<size_t>(idle_) && threads_ < maxThreads_) {
    if (!SpawnLocked() && threads_ == 0) return Submitted::kNoThread;  // no thread would ever run it
  }
  pinnedBytes_ += bytes;
  if (job.watch) job.watch->wakeGeneration = wakeGeneration_;
  // A request right after a completion: back-to-back traffic, for which spinning pays.
  if (spinMisses_ > 0 && std::chrono::steady_clock::now() - lastPost_ < std::chrono::nanoseconds(kSpinNs)) spinMisses_ = 0;
  jobs_.push_back(std::move(job));
  pendingJobs_.store(jobs_.size(), std::memory_order_release);
  wake_.notify_one();
  return Submitted::kAccepted;
}

bool Pool::Cancel(double requestId) {
  Job removed;  // its memory is released after the lock
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find_if(jobs_.begin(), jobs_.end(), [requestId](const Job& job) { return job.requestId == requestId; });
    if (it == jobs_.end()) return false;  // running, parked or done
    removed = std::move(*it);
    jobs_.erase(it);
    pinnedBytes_ -= removed.block ? removed.length : 0;
    pendingJobs_.store(jobs_.size(), std::memory_order_release);
  }
  return true;
}

bool Pool::Close(double requestId) {
  std::deque<Job> cancelled;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (closing_) return false;
    closing_ = true;
    stopping_.store(true, std::memory_order_release);
    closeRequestId_ = requestId;
    cancelled.swap(jobs_);
    pendingJobs_.store(0, std::memory_order_release);
    // Queued work never runs after close: each request hears ECANCELED, before the close completes
    // (posted under the lock, ahead of any thread's close completion; the channel never calls back).
    for (const Job& job : cancelled) {
      pinnedBytes_ -= job.block ? job.length : 0;
      channel_->Post({job.requestId, 0, ECANCELED, Syscall::kNone});
    }
    if (threads_ == 0 && !SpawnLocked()) CloseDescriptor(lock);  // no thread to do it: close here
    wake_.notify_all();
    watchWake_.notify_all();
  }
  return true;
}

void Pool::Abandon() {
  std::deque<Job> dropped;
  std::unique_lock<std::mutex> lock(mutex_);
  silent_ = true;
  if (closing_) return;
  closing_ = true;
  stopping_.store(true, std::memory_order_release);
  dropped.swap(jobs_);
  pendingJobs_.store(0, std::memory_order_release);
  for (const Job& job : dropped) pinnedBytes_ -= job.block ? job.length : 0;
  if (threads_ == 0 && !SpawnLocked()) CloseDescriptor(lock);
  wake_.notify_all();
  watchWake_.notify_all();
}

void Pool::WakeWatches() {
  std::lock_guard<std::mutex> lock(mutex_);
  wakeGeneration_++;
  watchWake_.notify_all();
}

// With the lock held and no job running: closes the descriptor once and posts the close completion.
// Returns with the lock held.
void Pool::CloseDescriptor(std::unique_lock<std::mutex>& lock) {
  if (closed_) return;
  closed_ = true;
  const int fd = fd_;
  fd_ = -1;
  const bool silent = silent_;
  const double requestId = closeRequestId_;
  lock.unlock();
  int error = 0;
  if (fd >= 0 && close(fd) != 0 && errno != EINTR) error = errno;  // EINTR: fd is gone anyway
  if (!silent) channel_->Post({requestId, 0, error, error ? Syscall::kClose : Syscall::kNone});
  lock.lock();
}

Geometry Pool::geometry() {
  std::lock_guard<std::mutex> lock(mutex_);
  return geometry_;
}

int Pool::fd() {
  std::lock_guard<std::mutex> lock(mutex_);
  return fd_;
}

bool Pool::closing() {
  std::lock_guard<std::mutex> lock(mutex_);
  return closing_;
}

size_t Pool::queued() {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size() + static_cast<size_t>(running_);
}

bool Pool::SpawnLocked() {
  // The thread owns a reference to the pool and the channel, so a thread parked on a hung
  // device keeps them alive and can finish whenever the device answers.
  try {
    std::thread([self = shared_from_this()] { self->Run(); }).detach();
  } catch (const std::exception&) {
    return false;  // std::system_error (EAGAIN) or bad_alloc: never let it reach N-API
  }
  threads_++;  // the new thread waits for mutex_, which the caller holds
  return true;
}

void Pool::Run() {
  NameThisThread("lunlink-io");  // I/O requests and watches of one volume (thread engine)
  std::unique_lock<std::mutex> lock(mutex_);
  // False after a watch that timed out unchanged: JS is idle (its next request comes after its own
  // periodic work, not within kSpinNs), so spinning would only burn CPU on an idle follower.
  bool spin = true;
  for (;;) {
    idle_++;
    if (spin && spinMisses_ < kMaxSpinMisses && jobs_.empty() && !closing_ && !spinning_) {
      spinMisses_ = SpinForWork(lock) ? 0 : spinMisses_ + 1;
    }
    wake_.wait(lock, [this] { return !jobs_.empty() || closing_; });
    idle_--;
    if (jobs_.empty()) {
      // Closing and nothing queued: the last one out closes the descriptor.
      if (running_ == 0) CloseDescriptor(lock);
      if (running_ == 0 || closed_) {
        threads_--;
        wake_.notify_all();
        return;
      }
      // Another thread is still inside a job; wait for it to finish and close.
      idle_++;
      wake_.wait(lock, [this] { return running_ == 0 || closed_; });
      idle_--;
      continue;
    }
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    pendingJobs_.store(jobs_.size(), std::memory_order_release);
    running_++;
    lock.unlock();
    Completion done{job.requestId, 0, 0, Syscall::kNone};
    Execute(job, done);
    spin = !(job.op == Op::kWatch && done.error == 0 && done.result == 0);
    channel_->Post(done);
    const size_t bytes = job.block ? job.length : 0;
    job = Job{};  // drop the job's memory outside the lock
    lock.lock();
    lastPost_ = std::chrono::steady_clock::now();
    running_--;
    pinnedBytes_ -= bytes;
    if (closing_) wake_.notify_all();
  }
}

// Polls for new work for up to kSpinNs without the mutex. Only one thread per pool spins, so
// queue depth N does not burn N cores. Returns with the lock held either way.
bool Pool::SpinForWork(std::unique_lock<std::mutex>& lock) {
  spinning_ = true;
  lock.unlock();
  const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(kSpinNs);
  bool found = false;
  while (!found && std::chrono::steady_clock::now() < until) {
    for (int i = 0; i < 64 && !found; i++) {
      found = pendingJobs_.load(std::memory_order_acquire) > 0;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }
  lock.lock();
  spinning_ = false;
  return found;
}

// Runs one syscall to completion: EINTR is retried, short transfers are continued, and a
// transfer that stops early (end of file, device shrank) is reported with the bytes done.
void Pool::Execute(Job& job, Completion& done) {
  if (job.op == Op::kOpen) {
    ExecuteOpen(job, done);
    return;
  }
  int fd;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fd = fd_;
  }
  if (fd < 0) {
    done.error = EBADF;
    done.syscall = job.op == Op::kFlush ? Syscall::kFdatasync : (job.op == Op::kWrite ? Syscall::kPwrite : Syscall::kPread);
    return;
  }
  if (job.op == Op::kFlush) {
    int r;
    do {
      r = fdatasync(fd);
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
      done.error = errno;
      done.syscall = Syscall::kFdatasync;
    }
    return;
  }
  if (job.op == Op::kWatch) {
    ExecuteWatch(job, done, fd);
    return;
  }
  Transfer(job, done, fd);
}

// One full pread/pwrite of the job's range; false (with done.error or a short done.result) if it
// did not complete.
bool Pool::Transfer(Job& job, Completion& done, int fd) {
  const bool reading = job.op != Op::kWrite;
  size_t doneBytes = 0;
  while (doneBytes < job.length) {
    ssize_t n;
    const off_t at = static_cast<off_t>(job.offset + static_cast<int64_t>(doneBytes));
    if (reading) {
      n = pread(fd, job.data + doneBytes, job.length - doneBytes, at);
    } else {
      n = pwrite(fd, job.data + doneBytes, job.length - doneBytes, at);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      done.error = errno;
      done.syscall = reading ? Syscall::kPread : Syscall::kPwrite;
      break;
    }
    if (n == 0) break;  // end of file or device: reported as a short transfer
    doneBytes += static_cast<size_t>(n);
  }
  done.result = static_cast<int64_t>(doneBytes);
  return done.error == 0 && doneBytes == job.length;
}

// The range starts with a stamp of the watched magic and a seq >= untilSeq (little-endian, as the ring writes it).
static bool StampReached(const uint8_t* data, size_t length, const WatchRequest& watch) {
  if (length < 16) return false;
  uint32_t magic = 0;
  uint64_t seq = 0;
  for (int i = 3; i >= 0; i--) magic = (magic << 8) | data[i];
  for (int i = 15; i >= 8; i--) seq = (seq << 8) | data[i];
  return magic == watch.stampMagic && seq >= static_cast<uint64_t>(watch.untilSeq);
}

// result: the bytes read (the range is in the buffer) if the range changed, 0 if the timeout passed,
// the volume is closing or WakeWatches() woke it, with the range unchanged. The sleep follows the
// WatchRequest schedule on watchWake_, so a wake or close ends it at once (a woken watch re-reads first:
// a record that landed meanwhile is reported); the last sleep is cut short at the timeout, so a wait
// ends within one read of it.
void Pool::ExecuteWatch(Job& job, Completion& done, int fd) {
  const WatchRequest& watch = *job.watch;
  const auto start = std::chrono::steady_clock::now();
  int64_t sleepNs = std::min(watch.sleepNs, watch.maxSleepNs);
  int64_t phaseEndNs = kWatchRereads * std::max<int64_t>(sleepNs, 1000);
  bool woken = false;
  for (;;) {
    if (!Transfer(job, done, fd)) return;
    if (watch.untilSeq >= 0 ? StampReached(job.data, job.length, watch) : std::memcmp(job.data, watch.baseline.data(), watch.baseline.size()) != 0) return;  // changed
    const int64_t elapsedNs = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
    if (woken || elapsedNs >= watch.timeoutNs || stopping_.load(std::memory_order_acquire)) {
      done.result = 0;
      return;
    }
    // Bounded: the sleep grows by kWatchGrowth per phase from >= 1 us to maxSleepNs (<= 1 s).
    while (sleepNs < watch.maxSleepNs && elapsedNs >= phaseEndNs) {
      sleepNs = std::min(watch.maxSleepNs, std::max<int64_t>(1000, sleepNs * kWatchGrowth));
      phaseEndNs += kWatchRereads * sleepNs;
    }
    const int64_t pauseNs = std::min(sleepNs, watch.timeoutNs - elapsedNs);
    std::unique_lock<std::mutex> lock(mutex_);
    // A wake since the watch was queued (even before this sleep began) is never lost: the generation is compared.
    woken = watchWake_.wait_for(lock, std::chrono::nanoseconds(pauseNs), [this, &watch] { return wakeGeneration_ != watch.wakeGeneration || closing_; });
  }
}

void Pool::ExecuteOpen(Job& job, Completion& done) {
  Geometry geometry;
  int fd = -1;
  Syscall failed = Syscall::kNone;
  int error = OpenVolume(*job.open, &fd, &geometry, &failed);
  if (error != 0) {
    done.error = error;
    done.syscall = failed;
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  fd_ = fd;
  geometry_ = geometry;
}

}  // namespace lunlink
