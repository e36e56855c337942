// Names the calling thread so `top -H`, /proc/PID/task/*/comm and `bench idle`'s per-thread table tell
// lunlink's threads apart from Node's own (all "node" otherwise). Cosmetic: pthread_setname_np fails
// only with ERANGE for a name over 15 characters, which the static_assert rules out at compile time.
#pragma once

#include <pthread.h>

#include <cstddef>

namespace lunlink {

template <size_t N>
inline void NameThisThread(const char (&name)[N]) {
  static_assert(N <= 16, "a thread name is at most 15 characters");
  static_cast<void>(pthread_setname_np(pthread_self(), name));
}

}  // namespace lunlink
