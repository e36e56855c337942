// Per-environment addon state (N-API instance data): the completion channel and the pools that
// must be closed quietly if the environment goes away with volumes still open.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "channel.h"
#include "pool.h"

namespace lunlink {

struct AddonState {
  std::shared_ptr<Channel> channel;
  std::vector<std::weak_ptr<Pool>> pools;
};

AddonState* GetState(Napi::Env env);

}  // namespace lunlink
