// Per-environment addon state (N-API instance data): the completion channel and the pools that
// must be closed quietly if the environment goes away with volumes still open.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "channel.h"
#include "pool.h"
#include "uring.h"

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX

namespace lunlink {

struct AddonState {
  // aead.cc's reused cipher contexts (created on first use, freed at environment teardown).
  evp_cipher_ctx_st* sealContext = nullptr;
  evp_cipher_ctx_st* openContext = nullptr;
  std::shared_ptr<Channel> channel;
  std::vector<std::weak_ptr<Pool>> pools;
  // io_uring engine (uring.cc): completions are dispatched from a uv_poll callback, straight to the
  // same JS dispatch function the channel calls. Set when the first ring is created.
  Napi::FunctionReference dispatch;
  napi_async_context ringContext = nullptr;
  std::vector<std::weak_ptr<Ring>> rings;
  bool tornDown = false;  // set by the rings' cleanup hook: no JS call after it
};

AddonState* GetState(Napi::Env env);

}  // namespace lunlink
