// ChaCha20-Poly1305 (RFC 8439) seal/open of one datagram, through the OpenSSL that Node itself links
// (its libcrypto symbols and headers), with one cipher context per environment reused for every
// call. Why not node:crypto: it builds a cipher object per call, which costs ~3.7 us of a ~7 us seal
// of a 1400-byte datagram here (bench seal); this is the same algorithm without that. CPU work
// only, no I/O: it runs on the JS thread. Inputs are validated here as well as in JS; a failed open
// zeroes its output so no unauthenticated plaintext ever leaves it.
#include "aead.h"

#include <openssl/evp.h>

#include <climits>
#include <cstring>

#include "state.h"

namespace lunlink {

namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kMaxBytes = 1 << 20;  // a datagram or ring frame is far smaller
constexpr size_t kMaxRecordBytes = size_t{64} << 20;  // MAX_RECORD_BLOCKS x MAX_BLOCK_BYTES (lib/format/layout.ts)

struct Bytes {
  uint8_t* data;
  size_t length;
};

Bytes Arg(const Napi::CallbackInfo& info, size_t i, const char* name, size_t maxBytes = kMaxBytes) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Uint8Array");
  }
  Napi::Uint8Array a = info[i].As<Napi::Uint8Array>();
  if (a.ByteLength() > maxBytes) throw Napi::RangeError::New(info.Env(), std::string(name) + " is larger than " + std::to_string(maxBytes >> 20) + " MiB");
  return Bytes{a.Data(), a.ByteLength()};
}

// The context is bound to the cipher once, at creation; each call then only sets key and nonce
// (passing the cipher on every call makes OpenSSL 3 fetch its implementation every time).
EVP_CIPHER_CTX* Context(Napi::Env env, bool seal) {
  AddonState* state = GetState(env);
  EVP_CIPHER_CTX*& ctx = seal ? state->sealContext : state->openContext;
  if (ctx != nullptr) return ctx;
  EVP_CIPHER_CTX* fresh = EVP_CIPHER_CTX_new();
  if (fresh == nullptr) throw Napi::Error::New(env, "EVP_CIPHER_CTX_new failed (out of memory)");
  const int bound = seal ? EVP_EncryptInit_ex(fresh, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr)
                         : EVP_DecryptInit_ex(fresh, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr);
  if (bound != 1) {
    EVP_CIPHER_CTX_free(fresh);
    throw Napi::Error::New(env, "ChaCha20-Poly1305 is not available in this Node's OpenSSL");
  }
  ctx = fresh;
  return ctx;
}

bool Disjoint(const Bytes& a, const Bytes& b) { return a.data + a.length <= b.data || b.data + b.length <= a.data; }

}  // namespace

// aeadSeal(key, nonce, aad, plaintext, out): out (plaintext.length + 16 bytes) gets ciphertext then tag.
Napi::Value AeadSeal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes key = Arg(info, 0, "key"), nonce = Arg(info, 1, "nonce"), aad = Arg(info, 2, "aad"), plain = Arg(info, 3, "plaintext"), out = Arg(info, 4, "out");
  if (key.length != kKeyBytes || nonce.length != kNonceBytes) throw Napi::RangeError::New(env, "key must be 32 bytes and nonce 12");
  if (out.length != plain.length + kTagBytes) throw Napi::RangeError::New(env, "out must be plaintext.length + 16 bytes");
  if (!Disjoint(out, plain) || !Disjoint(out, aad)) throw Napi::RangeError::New(env, "out must not overlap the inputs");
  EVP_CIPHER_CTX* ctx = Context(env, true);
  int n = 0;
  int tail = 0;
  bool ok = EVP_EncryptInit_ex(ctx, nullptr, nullptr, key.data, nonce.data) == 1 &&
            (aad.length == 0 || EVP_EncryptUpdate(ctx, nullptr, &n, aad.data, static_cast<int>(aad.length)) == 1) &&
            (plain.length == 0 || EVP_EncryptUpdate(ctx, out.data, &n, plain.data, static_cast<int>(plain.length)) == 1) &&
            EVP_EncryptFinal_ex(ctx, out.data + (plain.length == 0 ? 0 : n), &tail) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes), out.data + plain.length) == 1;
  if (!ok) {
    std::memset(out.data, 0, out.length);
    throw Napi::Error::New(env, "ChaCha20-Poly1305 seal failed in OpenSSL");
  }
  return env.Undefined();
}

// aeadOpen(key, nonce, aad, ciphertext, tag, out): true and the plaintext in out (ciphertext.length
// bytes) if the tag verifies; false and out zeroed otherwise.
Napi::Value AeadOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes key = Arg(info, 0, "key"), nonce = Arg(info, 1, "nonce"), aad = Arg(info, 2, "aad"), cipher = Arg(info, 3, "ciphertext"), tag = Arg(info, 4, "tag"), out = Arg(info, 5, "out");
  if (key.length != kKeyBytes || nonce.length != kNonceBytes || tag.length != kTagBytes) throw Napi::RangeError::New(env, "key must be 32 bytes, nonce 12 and tag 16");
  if (out.length != cipher.length) throw Napi::RangeError::New(env, "out must be ciphertext.length bytes");
  if (!Disjoint(out, cipher) || !Disjoint(out, aad) || !Disjoint(out, tag)) throw Napi::RangeError::New(env, "out must not overlap the inputs");
  EVP_CIPHER_CTX* ctx = Context(env, false);
  uint8_t expected[kTagBytes];
  std::memcpy(expected, tag.data, kTagBytes);
  int n = 0;
  int tail = 0;
  const bool ready = EVP_DecryptInit_ex(ctx, nullptr, nullptr, key.data, nonce.data) == 1 &&
                     (aad.length == 0 || EVP_DecryptUpdate(ctx, nullptr, &n, aad.data, static_cast<int>(aad.length)) == 1) &&
                     (cipher.length == 0 || EVP_DecryptUpdate(ctx, out.data, &n, cipher.data, static_cast<int>(cipher.length)) == 1) &&
                     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes), expected) == 1;
  const bool verified = ready && EVP_DecryptFinal_ex(ctx, out.data + (cipher.length == 0 ? 0 : n), &tail) == 1;
  if (!verified && out.length > 0) std::memset(out.data, 0, out.length);  // an empty view has no data pointer
  return Napi::Boolean::New(env, verified);
}

namespace {

// The segments of an in-place call: `buffer` and a table of [start, end) pairs within it, in order,
// non-overlapping; `tag` outside every segment. Validated before any byte is touched.
struct Segments {
  uint8_t* base;
  const uint32_t* table;
  uint32_t count;
};

Segments SegmentArgs(const Napi::CallbackInfo& info, const Bytes& buffer, const Bytes& tag) {
  Napi::Env env = info.Env();
  if (info.Length() <= 5 || !info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "segments must be a Uint32Array");
  }
  if (!info[5].IsNumber()) throw Napi::TypeError::New(env, "count must be a number");
  Napi::Uint32Array table = info[4].As<Napi::Uint32Array>();
  const double count = info[5].As<Napi::Number>().DoubleValue();
  if (!(count >= 0) || count * 2 > static_cast<double>(table.ElementLength()) || count != static_cast<double>(static_cast<uint32_t>(count))) {
    throw Napi::RangeError::New(env, "count must be an integer in 0..segments.length / 2");
  }
  const uint32_t n = static_cast<uint32_t>(count);
  uint64_t previousEnd = 0;
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t start = table[2 * i], end = table[2 * i + 1];
    if (start < previousEnd || end < start || end > buffer.length) throw Napi::RangeError::New(env, "segments must be ordered, non-overlapping ranges within the buffer");
    const Bytes segment{buffer.data + start, end - start};
    if (segment.length > 0 && !Disjoint(segment, tag)) throw Napi::RangeError::New(env, "tag must not overlap a segment");
    previousEnd = end;
  }
  return Segments{buffer.data, table.Data(), n};
}

void ZeroSegments(const Segments& s) {
  for (uint32_t i = 0; i < s.count; i++) std::memset(s.base + s.table[2 * i], 0, s.table[2 * i + 1] - s.table[2 * i]);
}

}  // namespace

// aeadSealSegments(key, nonce, aad, buffer, segments, count, tag): the concatenation of the count
// [start, end) ranges of buffer is one plaintext, encrypted in place (ChaCha20 is a stream cipher:
// OpenSSL allows in == out); the 16-byte tag goes to tag. Records: the payload around block stamps.
Napi::Value AeadSealSegments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes key = Arg(info, 0, "key"), nonce = Arg(info, 1, "nonce"), aad = Arg(info, 2, "aad"), buffer = Arg(info, 3, "buffer", kMaxRecordBytes), tag = Arg(info, 6, "tag");
  if (key.length != kKeyBytes || nonce.length != kNonceBytes || tag.length != kTagBytes) throw Napi::RangeError::New(env, "key must be 32 bytes, nonce 12 and tag 16");
  const Segments s = SegmentArgs(info, buffer, tag);
  EVP_CIPHER_CTX* ctx = Context(env, true);
  int n = 0;
  bool ok = EVP_EncryptInit_ex(ctx, nullptr, nullptr, key.data, nonce.data) == 1 &&
            (aad.length == 0 || EVP_EncryptUpdate(ctx, nullptr, &n, aad.data, static_cast<int>(aad.length)) == 1);
  for (uint32_t i = 0; ok && i < s.count; i++) {
    uint8_t* at = s.base + s.table[2 * i];
    const int length = static_cast<int>(s.table[2 * i + 1] - s.table[2 * i]);
    ok = length == 0 || EVP_EncryptUpdate(ctx, at, &n, at, length) == 1;
  }
  uint8_t none[1];
  int tail = 0;
  ok = ok && EVP_EncryptFinal_ex(ctx, none, &tail) == 1 && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes), tag.data) == 1;
  if (!ok) {
    ZeroSegments(s);
    std::memset(tag.data, 0, tag.length);
    throw Napi::Error::New(env, "ChaCha20-Poly1305 seal failed in OpenSSL");
  }
  return env.Undefined();
}

// aeadOpenSegments(key, nonce, aad, buffer, segments, count, tag): verifies and decrypts the ranges
// in place; true if the tag verifies, false and every range zeroed otherwise.
Napi::Value AeadOpenSegments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes key = Arg(info, 0, "key"), nonce = Arg(info, 1, "nonce"), aad = Arg(info, 2, "aad"), buffer = Arg(info, 3, "buffer", kMaxRecordBytes), tag = Arg(info, 6, "tag");
  if (key.length != kKeyBytes || nonce.length != kNonceBytes || tag.length != kTagBytes) throw Napi::RangeError::New(env, "key must be 32 bytes, nonce 12 and tag 16");
  const Segments s = SegmentArgs(info, buffer, tag);
  EVP_CIPHER_CTX* ctx = Context(env, false);
  uint8_t expected[kTagBytes];
  std::memcpy(expected, tag.data, kTagBytes);
  int n = 0;
  bool ok = EVP_DecryptInit_ex(ctx, nullptr, nullptr, key.data, nonce.data) == 1 &&
            (aad.length == 0 || EVP_DecryptUpdate(ctx, nullptr, &n, aad.data, static_cast<int>(aad.length)) == 1);
  for (uint32_t i = 0; ok && i < s.count; i++) {
    uint8_t* at = s.base + s.table[2 * i];
    const int length = static_cast<int>(s.table[2 * i + 1] - s.table[2 * i]);
    ok = length == 0 || EVP_DecryptUpdate(ctx, at, &n, at, length) == 1;
  }
  uint8_t none[1];
  int tail = 0;
  const bool verified = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes), expected) == 1 && EVP_DecryptFinal_ex(ctx, none, &tail) == 1;
  if (!verified) ZeroSegments(s);
  return Napi::Boolean::New(env, verified);
}

void AeadTeardown(void* arg) {
  auto* state = static_cast<AddonState*>(arg);
  EVP_CIPHER_CTX_free(state->sealContext);
  EVP_CIPHER_CTX_free(state->openContext);
  state->sealContext = nullptr;
  state->openContext = nullptr;
}

}  // namespace lunlink
