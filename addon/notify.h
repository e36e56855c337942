// sdNotify(socket, message): one systemd notification datagram (see notify.cc).
#pragma once

#include <napi.h>

namespace lunlink {

Napi::Value SdNotify(const Napi::CallbackInfo& info);

}  // namespace lunlink
