// sd_notify without libsystemd: one datagram on an AF_UNIX socket named by $NOTIFY_SOCKET (a path, or
// "@name" for the abstract namespace). Node cannot send unix datagrams, hence this function. The
// socket is non-blocking and new per call (as libsystemd's sd_notify): a notification is a few bytes
// to a local receiver, so a full receive queue is reported (EAGAIN), never waited for. Every failure
// throws an Error carrying `errno` and `syscall` (a name); lib/io/notify.ts maps it to a coded error.
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace lunlink {

namespace {

// A notification is a handful of KEY=VALUE lines; systemd reads at most a page-ish datagram.
constexpr size_t kMaxNotifyBytes = 4096;

Napi::Error NotifyError(Napi::Env env, int error, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + "() failed: " + std::strerror(error));
  e.Set("errno", Napi::Number::New(env, error));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

}  // namespace

// sdNotify(socket: string, message: string): void. Throws TypeError on bad arguments (checked in JS first).
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsString()) throw Napi::TypeError::New(env, "sdNotify(socket: string, message: string)");
  const std::string target = info[0].As<Napi::String>().Utf8Value();
  const std::string message = info[1].As<Napi::String>().Utf8Value();
  if (message.empty() || message.size() > kMaxNotifyBytes) throw Napi::RangeError::New(env, "sdNotify: message must be 1..4096 bytes");

  sockaddr_un address;
  std::memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  socklen_t addressLength = 0;
  if (target.size() >= 2 && target[0] == '@') {
    // Abstract namespace: a leading NUL, then the name; the length counts exactly the name (no terminator).
    const size_t nameBytes = target.size() - 1;
    if (nameBytes + 1 > sizeof(address.sun_path)) throw Napi::RangeError::New(env, "sdNotify: abstract socket name too long");
    std::memcpy(address.sun_path + 1, target.data() + 1, nameBytes);
    addressLength = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + nameBytes);
  } else if (target.size() >= 2 && target[0] == '/') {
    if (target.size() + 1 > sizeof(address.sun_path)) throw Napi::RangeError::New(env, "sdNotify: socket path too long");
    if (target.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "sdNotify: socket path contains NUL");
    std::memcpy(address.sun_path, target.data(), target.size());
    addressLength = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + target.size() + 1);
  } else {
    throw Napi::TypeError::New(env, "sdNotify: socket must be an absolute path or @abstract-name");
  }

  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw NotifyError(env, errno, "socket");
  ssize_t sent;
  do {
    sent = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address), addressLength);
  } while (sent < 0 && errno == EINTR);
  const int sendError = sent < 0 ? errno : (static_cast<size_t>(sent) != message.size() ? EMSGSIZE : 0);
  // close() may fail only with EINTR (the descriptor is gone anyway on Linux) or EIO (not for a socket).
  const int closeError = close(fd) != 0 && errno != EINTR ? errno : 0;
  if (sendError != 0) throw NotifyError(env, sendError, "sendto");
  if (closeError != 0) throw NotifyError(env, closeError, "close");
  return env.Undefined();
}

}  // namespace lunlink
