// TCP segmentation and checksum completion for TUN offload packets (see gso.h). Checksums are summed
// over native-endian words and stored with memcpy: a ones' complement sum is the same in either byte
// order once stored the way it was read, so no per-word byte swap is needed.
#include "gso.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace lunlink {

namespace {

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpCwr = 0x80;
constexpr uint8_t kIpProtoTcp = 6;
constexpr size_t kIpv6HdrBytes = 40;
constexpr size_t kTcpCsumOffset = 16;

uint64_t Sum(const uint8_t* p, size_t n, uint64_t acc) {
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    acc += (w & 0xffffffffu) + (w >> 32);
    p += 8;
    n -= 8;
  }
  while (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    const uint8_t last[2] = {p[0], 0};
    uint16_t w;
    std::memcpy(&w, last, 2);
    acc += w;
  }
  return acc;
}

uint16_t Fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

void StoreChecksum(uint8_t* at, uint64_t acc) {
  const uint16_t c = static_cast<uint16_t>(~Fold(acc));
  std::memcpy(at, &c, 2);
}

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t Be32(const uint8_t* p) { return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]; }
void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// The checked geometry of a TCP GSO packet.
struct TcpGeometry {
  bool v4;
  size_t ipBytes;      // = csum_start
  size_t headerBytes;  // IP + TCP headers
  size_t payloadBytes;
  uint32_t segments;
};

GsoError CheckTcp(const uint8_t* p, size_t length, const VnetHdr& h, TcpGeometry* g) {
  const uint8_t type = h.gsoType & static_cast<uint8_t>(~kVnetGsoEcn);
  if (type != kVnetGsoTcpV4 && type != kVnetGsoTcpV6) return GsoError::kGsoType;
  if (h.gsoSize == 0) return GsoError::kGsoSize;
  if (h.hdrLen > length) return GsoError::kHdrLen;
  if ((h.flags & kVnetFlagNeedsCsum) == 0 || h.csumOffset != kTcpCsumOffset || size_t{h.csumStart} + kTcpCsumOffset + 2 > length) {
    return GsoError::kCsum;
  }
  if (length < 20) return GsoError::kShort;
  g->v4 = type == kVnetGsoTcpV4;
  if (g->v4) {
    if ((p[0] >> 4) != 4 || static_cast<size_t>(p[0] & 0x0fu) * 4 != h.csumStart || (p[0] & 0x0fu) < 5 || p[9] != kIpProtoTcp) return GsoError::kIp;
  } else {
    if ((p[0] >> 4) != 6 || h.csumStart != kIpv6HdrBytes || p[6] != kIpProtoTcp) return GsoError::kIp;
  }
  g->ipBytes = h.csumStart;
  const size_t tcpBytes = static_cast<size_t>(p[g->ipBytes + 12] >> 4) * 4;
  if (tcpBytes < 20) return GsoError::kHdrLen;
  g->headerBytes = g->ipBytes + tcpBytes;
  if (g->headerBytes > length) return GsoError::kHdrLen;
  g->payloadBytes = length - g->headerBytes;
  g->segments = g->payloadBytes == 0 ? 1 : static_cast<uint32_t>((g->payloadBytes + h.gsoSize - 1) / h.gsoSize);
  return GsoError::kOk;
}

}  // namespace

VnetHdr ReadVnetHdr(const uint8_t* p) {
  VnetHdr h;
  h.flags = p[0];
  h.gsoType = p[1];
  h.hdrLen = static_cast<uint16_t>(p[2] | (p[3] << 8));
  h.gsoSize = static_cast<uint16_t>(p[4] | (p[5] << 8));
  h.csumStart = static_cast<uint16_t>(p[6] | (p[7] << 8));
  h.csumOffset = static_cast<uint16_t>(p[8] | (p[9] << 8));
  return h;
}

void WriteVnetHdr(uint8_t* p, const VnetHdr& h) {
  p[0] = h.flags;
  p[1] = h.gsoType;
  p[2] = static_cast<uint8_t>(h.hdrLen);
  p[3] = static_cast<uint8_t>(h.hdrLen >> 8);
  p[4] = static_cast<uint8_t>(h.gsoSize);
  p[5] = static_cast<uint8_t>(h.gsoSize >> 8);
  p[6] = static_cast<uint8_t>(h.csumStart);
  p[7] = static_cast<uint8_t>(h.csumStart >> 8);
  p[8] = static_cast<uint8_t>(h.csumOffset);
  p[9] = static_cast<uint8_t>(h.csumOffset >> 8);
}

GsoError CompleteChecksum(uint8_t* packet, size_t length, const VnetHdr& h) {
  if ((h.flags & kVnetFlagNeedsCsum) == 0) return GsoError::kOk;
  if (size_t{h.csumStart} + h.csumOffset + 2 > length) return GsoError::kCsum;
  StoreChecksum(packet + h.csumStart + h.csumOffset, Sum(packet + h.csumStart, length - h.csumStart, 0));
  return GsoError::kOk;
}

int32_t SegmentBounds(const uint8_t* packet, size_t length, const VnetHdr& h, size_t* needBytes) {
  TcpGeometry g;
  const GsoError e = CheckTcp(packet, length, h, &g);
  if (e != GsoError::kOk) return -static_cast<int32_t>(e);
  *needBytes = size_t{g.segments} * g.headerBytes + g.payloadBytes;
  return static_cast<int32_t>(g.segments);
}

int32_t SegmentTcp(const uint8_t* packet, size_t length, const VnetHdr& h, uint8_t* out, size_t outBytes, uint32_t* lengths,
                   uint32_t maxSegments) {
  TcpGeometry g;
  const GsoError e = CheckTcp(packet, length, h, &g);
  if (e != GsoError::kOk) return -static_cast<int32_t>(e);
  if (g.segments > maxSegments || size_t{g.segments} * g.headerBytes + g.payloadBytes > outBytes) return -static_cast<int32_t>(GsoError::kRoom);

  const size_t ip = g.ipBytes;
  const size_t tcpBytes = g.headerBytes - ip;
  const uint16_t firstId = g.v4 ? Be16(packet + 4) : 0;
  const uint32_t firstSeq = Be32(packet + ip + 4);
  const uint8_t tcpFlags = packet[ip + 13];
  // The pseudo-header's addresses, summed once: IPv4 src+dst at 12..20, IPv6 at 8..40.
  const uint64_t addressSum = g.v4 ? Sum(packet + 12, 8, 0) : Sum(packet + 8, 32, 0);
  const uint64_t protoSum = htons(kIpProtoTcp);

  size_t at = 0;
  size_t from = g.headerBytes;
  for (uint32_t i = 0; i < g.segments; i++) {
    const size_t segPayload = i + 1 == g.segments ? length - from : h.gsoSize;
    const size_t segBytes = g.headerBytes + segPayload;
    uint8_t* s = out + at;
    std::memcpy(s, packet, g.headerBytes);
    std::memcpy(s + g.headerBytes, packet + from, segPayload);
    if (g.v4) {
      PutBe16(s + 2, static_cast<uint16_t>(segBytes));
      PutBe16(s + 4, static_cast<uint16_t>(firstId + i));
      s[10] = 0;
      s[11] = 0;
      StoreChecksum(s + 10, Sum(s, ip, 0));
    } else {
      PutBe16(s + 4, static_cast<uint16_t>(segBytes - kIpv6HdrBytes));
    }
    uint8_t* t = s + ip;
    PutBe32(t + 4, firstSeq + static_cast<uint32_t>(i * h.gsoSize));
    uint8_t flags = tcpFlags;
    if (i + 1 != g.segments) flags = static_cast<uint8_t>(flags & ~(kTcpFin | kTcpPsh));
    if (i != 0) flags = static_cast<uint8_t>(flags & ~kTcpCwr);
    t[13] = flags;
    t[16] = 0;
    t[17] = 0;
    const size_t tcpLength = tcpBytes + segPayload;
    const uint64_t pseudo = addressSum + protoSum + htons(static_cast<uint16_t>(tcpLength));
    StoreChecksum(t + 16, Sum(t, tcpLength, pseudo));
    lengths[i] = static_cast<uint32_t>(segBytes);
    at += segBytes;
    from += segPayload;
  }
  return static_cast<int32_t>(g.segments);
}

Napi::Value SegmentTcpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "segmentTcp(Uint8Array, Uint8Array, Uint32Array)");
  }
  Napi::Uint8Array input = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array out = info[1].As<Napi::Uint8Array>();
  Napi::Uint32Array lengths = info[2].As<Napi::Uint32Array>();
  const size_t length = input.ByteLength();
  if (length < kVnetHdrBytes + 1) return Napi::Number::New(env, -static_cast<int32_t>(GsoError::kShort));
  // Work on a private copy: the input may alias the output, and checksum completion writes.
  const VnetHdr h = ReadVnetHdr(input.Data());
  const uint8_t* packet = input.Data() + kVnetHdrBytes;
  const size_t packetBytes = length - kVnetHdrBytes;
  if (out.Data() < packet + packetBytes && packet < out.Data() + out.ByteLength()) throw Napi::RangeError::New(env, "segmentTcp: out overlaps input");
  if (h.gsoType == kVnetGsoNone) {
    if (lengths.ElementLength() < 1 || out.ByteLength() < packetBytes) return Napi::Number::New(env, -static_cast<int32_t>(GsoError::kRoom));
    std::memcpy(out.Data(), packet, packetBytes);
    const GsoError e = CompleteChecksum(out.Data(), packetBytes, h);
    if (e != GsoError::kOk) return Napi::Number::New(env, -static_cast<int32_t>(e));
    lengths[0] = static_cast<uint32_t>(packetBytes);
    return Napi::Number::New(env, 1);
  }
  const size_t maxSegments = std::min<size_t>(lengths.ElementLength(), 0xffffffffu);
  return Napi::Number::New(env, SegmentTcp(packet, packetBytes, h, out.Data(), out.ByteLength(), lengths.Data(), static_cast<uint32_t>(maxSegments)));
}

}  // namespace lunlink
