// Native-owned aligned buffers; see buffer.h for the ownership rule. JS sees a Block through an
// external ArrayBuffer, which Node itself will not transfer (and which nobody may key: buffer.h).
// A registry keyed by the block's address lets the addon recognise its own
// memory in a view it is handed; anything else is refused, and lib/io bounces foreign buffers
// through a Block of its own.
#include "buffer.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace lunlink {

namespace {

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Bounded by the live blocks JS can see: an entry goes when its ArrayBuffer is finalized.
std::mutex registryMutex;
std::unordered_map<const uint8_t*, std::weak_ptr<Block>>& Registry() {
  static auto* registry = new std::unordered_map<const uint8_t*, std::weak_ptr<Block>>();  // never destroyed: threads may outlive statics
  return *registry;
}

void Finalize(napi_env env, void* data, void* hint) {
  auto* ref = static_cast<BlockRef*>(hint);
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    auto& registry = Registry();
    auto it = registry.find(static_cast<const uint8_t*>(data));
    if (it != registry.end() && it->second.lock() == *ref) registry.erase(it);
  }
  int64_t adjusted = 0;
  napi_adjust_external_memory(env, -static_cast<int64_t>((*ref)->size), &adjusted);
  delete ref;  // the JS side's reference; jobs may still hold theirs
}

}  // namespace

Block::~Block() { std::free(data); }

BlockRef NewBlock(size_t bytes, size_t alignment) {
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* memory = nullptr;
  if (posix_memalign(&memory, alignment, rounded) != 0) return nullptr;
  std::memset(memory, 0, rounded);
  auto block = std::make_shared<Block>();
  block->data = static_cast<uint8_t*>(memory);
  block->size = bytes;
  return block;
}

Napi::ArrayBuffer ExposeBlock(Napi::Env env, const BlockRef& block) {
  auto* ref = new BlockRef(block);
  napi_value value;
  napi_status status = napi_create_external_arraybuffer(env, block->data, block->size, Finalize, ref, &value);
  if (status != napi_ok) {
    delete ref;
    NAPI_THROW_IF_FAILED(env, status, Napi::ArrayBuffer());
  }
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    Registry()[block->data] = block;
  }
  int64_t adjusted = 0;
  napi_adjust_external_memory(env, static_cast<int64_t>(block->size), &adjusted);
  return Napi::ArrayBuffer(env, value);
}

BlockView BlockOf(const Napi::TypedArray& view) {
  BlockView out;
  Napi::ArrayBuffer buffer = view.ArrayBuffer();
  const auto* base = static_cast<const uint8_t*>(buffer.Data());
  if (base == nullptr) return out;  // detached
  BlockRef block;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    auto& registry = Registry();
    auto it = registry.find(base);
    if (it == registry.end()) return out;
    block = it->second.lock();
  }
  const size_t offset = view.ByteOffset();
  const size_t length = view.ByteLength();
  if (!block || offset > block->size || length > block->size - offset) return BlockView{};
  out.block = std::move(block);
  out.data = out.block->data + offset;
  out.length = length;
  return out;
}

Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "alignedBuffer(length, alignment)");
  }
  const double length = info[0].As<Napi::Number>().DoubleValue();
  const double alignmentArg = info[1].As<Napi::Number>().DoubleValue();
  if (!(length >= 1) || length > static_cast<double>(kMaxBufferBytes) || length != static_cast<double>(static_cast<size_t>(length))) {
    throw Napi::RangeError::New(env, "length must be an integer in 1..2^30");
  }
  if (!(alignmentArg >= 1) || alignmentArg > kMaxAlignment || !IsPowerOfTwo(static_cast<uint32_t>(alignmentArg)) ||
      alignmentArg != static_cast<double>(static_cast<uint32_t>(alignmentArg))) {
    throw Napi::RangeError::New(env, "alignment must be a power of two in 1..2^20");
  }
  const size_t bytes = static_cast<size_t>(length);
  BlockRef block = NewBlock(bytes, static_cast<size_t>(alignmentArg));
  if (!block) throw Napi::RangeError::New(env, "alignedBuffer: out of memory");
  Napi::ArrayBuffer backing = ExposeBlock(env, block);
  return Napi::Uint8Array::New(env, bytes, backing, 0);
}

Napi::Value AddressAlignment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "addressAlignment(Uint8Array)");
  Napi::TypedArray typed = info[0].As<Napi::TypedArray>();
  const uintptr_t address = reinterpret_cast<uintptr_t>(static_cast<uint8_t*>(typed.ArrayBuffer().Data()) + typed.ByteOffset());
  // The largest power of two (capped at 1 MiB) that divides the address.
  uint32_t alignment = 1;
  while (alignment < kMaxAlignment && address % (static_cast<uintptr_t>(alignment) * 2) == 0) alignment *= 2;
  return Napi::Number::New(env, alignment);
}

// isNativeOwned(view): true if the view's memory is a live Block (I/O on it needs no bounce copy).
Napi::Value IsNativeOwned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "isNativeOwned(Uint8Array)");
  return Napi::Boolean::New(env, BlockOf(info[0].As<Napi::TypedArray>()).block != nullptr);
}

}  // namespace lunlink
