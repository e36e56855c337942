// Aligned I/O buffers: an ordinary (non-external) ArrayBuffer over-allocated by the alignment,
// returned as a Uint8Array view that starts on an aligned address. V8 never moves the backing
// store of an ArrayBuffer made this way, so the alignment holds for the buffer's life.
#include "buffer.h"

#include <cstdint>

namespace lunlink {

namespace {

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

constexpr uint32_t kMaxAlignment = 1u << 20;  // 1 MiB: no device asks for more
constexpr double kMaxBufferBytes = 1u << 30;  // 1 GiB per buffer

}  // namespace

Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "alignedBuffer(length, alignment)");
  }
  const double length = info[0].As<Napi::Number>().DoubleValue();
  const double alignmentArg = info[1].As<Napi::Number>().DoubleValue();
  if (!(length >= 1) || length > kMaxBufferBytes || length != static_cast<double>(static_cast<size_t>(length))) {
    throw Napi::RangeError::New(env, "length must be an integer in 1..2^30");
  }
  if (!(alignmentArg >= 1) || alignmentArg > kMaxAlignment || !IsPowerOfTwo(static_cast<uint32_t>(alignmentArg)) ||
      alignmentArg != static_cast<double>(static_cast<uint32_t>(alignmentArg))) {
    throw Napi::RangeError::New(env, "alignment must be a power of two in 1..2^20");
  }
  const size_t bytes = static_cast<size_t>(length);
  const size_t alignment = static_cast<size_t>(alignmentArg);
  Napi::ArrayBuffer backing = Napi::ArrayBuffer::New(env, bytes + alignment - 1);
  const uintptr_t base = reinterpret_cast<uintptr_t>(backing.Data());
  const size_t shift = (alignment - (base % alignment)) % alignment;
  return Napi::Uint8Array::New(env, bytes, backing, shift);
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

}  // namespace lunlink
