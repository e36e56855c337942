// Opening a volume (block device or regular file) and reading its geometry.
// Runs on a pool thread: open() and the ioctls can block on a sick device.
#pragma once

#include "channel.h"
#include "pool.h"

namespace lunlink {

// Returns 0 and sets *fd and *geometry, or returns an errno and sets *failed to the syscall.
// On failure no descriptor is left open.
int OpenVolume(const OpenRequest& request, int* fd, Geometry* geometry, Syscall* failed);

}  // namespace lunlink
