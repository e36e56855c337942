// Volume open and geometry. Block devices: BLKGETSIZE64, BLKSSZGET, BLKPBSZGET (fstat reports
// size 0 for them). Files: fstat size, statx STATX_DIOALIGN for the O_DIRECT alignment, fstatfs for
// the file system type (tmpfs is memory; ramfs refuses O_DIRECT with EINVAL at open).
// Done here rather than with the `ioctl` npm package: these three ioctls return integers of
// different widths into out-parameters, which that package's (int) argument cannot express, and the
// calls must run on lunlink's I/O thread anyway.
#include "device.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace lunlink {

namespace {

int Fail(int fd, Syscall syscall, Syscall* failed) {
  const int error = errno;
  if (fd >= 0) close(fd);
  *failed = syscall;
  return error;
}

}  // namespace

int OpenVolume(const OpenRequest& request, int* fdOut, Geometry* geometry, Syscall* failed) {
  int flags = O_CLOEXEC | O_NOCTTY | (request.readOnly ? O_RDONLY : O_RDWR);
  if (request.direct) flags |= O_DIRECT;
  if (request.dsync && !request.readOnly) flags |= O_DSYNC;

  // stat first so that O_EXCL is applied only to block devices (on a regular file without
  // O_CREAT its meaning is undefined) and a directory or FIFO is refused before open can block.
  struct stat st;
  if (stat(request.path.c_str(), &st) != 0) return Fail(-1, Syscall::kFstat, failed);
  const bool isBlock = S_ISBLK(st.st_mode);
  if (!isBlock && !S_ISREG(st.st_mode)) {
    *failed = Syscall::kOpen;
    return S_ISDIR(st.st_mode) ? EISDIR : ENOTBLK;
  }
  if (isBlock && request.exclusive) flags |= O_EXCL;

  int fd;
  do {
    fd = open(request.path.c_str(), flags);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Fail(-1, Syscall::kOpen, failed);

  // The path may have been replaced between stat and open: trust only the descriptor.
  if (fstat(fd, &st) != 0) return Fail(fd, Syscall::kFstat, failed);
  if (S_ISBLK(st.st_mode) != isBlock || (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))) {
    close(fd);
    *failed = Syscall::kOpen;
    return ENOTBLK;
  }

  geometry->isBlockDevice = isBlock;
  if (isBlock) {
    uint64_t size = 0;
    int logical = 0;
    unsigned int physical = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) return Fail(fd, Syscall::kIoctl, failed);
    if (ioctl(fd, BLKSSZGET, &logical) != 0) return Fail(fd, Syscall::kIoctl, failed);
    if (ioctl(fd, BLKPBSZGET, &physical) != 0) return Fail(fd, Syscall::kIoctl, failed);
    geometry->sizeBytes = size;
    geometry->logicalBlockSize = static_cast<uint32_t>(logical);
    geometry->physicalBlockSize = physical;
    geometry->memoryAlignment = static_cast<uint32_t>(logical);
    geometry->deviceMajor = major(st.st_rdev);
    geometry->deviceMinor = minor(st.st_rdev);
  } else {
    geometry->sizeBytes = static_cast<uint64_t>(st.st_size);
    geometry->physicalBlockSize = static_cast<uint32_t>(st.st_blksize);
    geometry->deviceMajor = major(st.st_dev);
    geometry->deviceMinor = minor(st.st_dev);
#ifdef STATX_DIOALIGN
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) != 0) return Fail(fd, Syscall::kStatx, failed);
    if ((stx.stx_mask & STATX_DIOALIGN) != 0 && stx.stx_dio_offset_align != 0) {
      geometry->dioAlignReported = true;
      geometry->logicalBlockSize = stx.stx_dio_offset_align;
      geometry->memoryAlignment = stx.stx_dio_mem_align;
    }
#endif
    if (!geometry->dioAlignReported) {
      // No alignment reported: the file system block size is always a safe O_DIRECT alignment.
      geometry->logicalBlockSize = static_cast<uint32_t>(st.st_blksize);
      geometry->memoryAlignment = static_cast<uint32_t>(st.st_blksize);
    }
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return Fail(fd, Syscall::kFstatfs, failed);
    geometry->fsMagic = static_cast<uint64_t>(fs.f_type);

    if (request.exclusive) {
      // OFD locks: owned by this open file description, so a second open in the same process
      // conflicts too, and they vanish with the descriptor (no stale lock after a crash).
      struct flock lock = {};
      lock.l_type = request.readOnly ? F_RDLCK : F_WRLCK;
      lock.l_whence = SEEK_SET;
      lock.l_start = 0;
      lock.l_len = 0;
      int r;
      do {
        r = fcntl(fd, F_OFD_SETLK, &lock);
      } while (r != 0 && errno == EINTR);
      if (r != 0) {
        if (errno == EAGAIN || errno == EACCES) errno = EBUSY;  // someone else holds it
        return Fail(fd, Syscall::kFcntl, failed);
      }
    }
  }
  geometry->valid = true;
  *fdOut = fd;
  return 0;
}

}  // namespace lunlink
