// ChaCha20-Poly1305 (RFC 8439) seal/open for sealed UDP datagrams; see aead.cc.
#pragma once

#include <napi.h>

namespace lunlink {

Napi::Value AeadSeal(const Napi::CallbackInfo& info);
Napi::Value AeadOpen(const Napi::CallbackInfo& info);
// Frees the environment's cipher contexts (environment teardown).
void AeadTeardown(void* contexts);

}  // namespace lunlink
