// Per-environment addon state (N-API instance data): the completion channel and the pools that
// must be closed quietly if the environment goes away with volumes still open.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "channel.h"
#include "pool.h"

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX

namespace lunlink {

struct AddonState {
  // aead.cc's reused cipher contexts (created on first use, freed at environment teardown).
  evp_cipher_ctx_st* sealContext = nullptr;
  evp_cipher_ctx_st* openContext = nullptr;
  std::shared_ptr<Channel> channel;
  std::vector<std::weak_ptr<Pool>> pools;
};

AddonState* GetState(Napi::Env env);

}  // namespace lunlink
