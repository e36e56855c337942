// Aligned buffer allocation and address alignment queries; see buffer.cc.
#pragma once

#include <napi.h>

namespace lunlink {

Napi::Value AlignedBuffer(const Napi::CallbackInfo& info);
Napi::Value AddressAlignment(const Napi::CallbackInfo& info);

}  // namespace lunlink
