// Native-owned I/O memory. Every byte an I/O thread or the kernel touches lives in a Block: an
// aligned allocation shared (std::shared_ptr) between the JS view that exposes it and every job that
// uses it, and freed only when the last of them lets go. JS can detach or drop its view at any time
// (transfer, GC); a job's reference keeps the memory alive until the thread returns, however late.
// Never mark a Block's ArrayBuffer with worker_threads.markAsUntransferable: Node refuses to transfer
// external ArrayBuffers by itself (20 copies them, 22+ throws DataCloneError), and on Node 24 the call
// also sets a V8 detach key, which Node's teardown hook for external buffers (an unkeyed Detach, then
// Check) cannot pass: every process holding such a buffer at exit aborts with "FATAL ERROR:
// v8::FromJust Maybe value is Nothing" in Environment::RunCleanup (test/unit/node-versions.test.ts).
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace lunlink {

struct Block {
  uint8_t* data = nullptr;
  size_t size = 0;
  Block() = default;
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  ~Block();
};

using BlockRef = std::shared_ptr<Block>;

constexpr uint32_t kMaxAlignment = 1u << 20;  // 1 MiB: no device asks for more
constexpr size_t kMaxBufferBytes = 1u << 30;  // 1 GiB per buffer

// A zeroed Block of `bytes` whose address is a multiple of `alignment` (a power of two); nullptr if
// memory is exhausted.
BlockRef NewBlock(size_t bytes, size_t alignment);

// An external ArrayBuffer over the whole block, registered so that BlockOf finds it. The buffer's
// finalizer drops the JS side's reference.
Napi::ArrayBuffer ExposeBlock(Napi::Env env, const BlockRef& block);

// The range a Uint8Array covers inside a native-owned block: the block (nullptr if the view's
// memory is not native-owned, e.g. a plain ArrayBuffer, or detached) and the view's bytes in it.
struct BlockView {
  BlockRef block;
  uint8_t* data = nullptr;
  size_t length = 0;
};
BlockView BlockOf(const Napi::TypedArray& view);

Napi::Value AlignedBuffer(const Napi::CallbackInfo& info);
Napi::Value AddressAlignment(const Napi::CallbackInfo& info);
Napi::Value IsNativeOwned(const Napi::CallbackInfo& info);

}  // namespace lunlink
