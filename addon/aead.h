// ChaCha20-Poly1305 (RFC 8439) seal/open for sealed UDP datagrams and ring records; see aead.cc.
#pragma once

#include <napi.h>

namespace lunlink {

Napi::Value AeadSeal(const Napi::CallbackInfo& info);
Napi::Value AeadOpen(const Napi::CallbackInfo& info);
// In place over [start, end) ranges of one buffer (records: the payload around block stamps).
Napi::Value AeadSealSegments(const Napi::CallbackInfo& info);
Napi::Value AeadOpenSegments(const Napi::CallbackInfo& info);
// Frees the environment's cipher contexts (environment teardown).
void AeadTeardown(void* contexts);

}  // namespace lunlink
