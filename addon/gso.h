// TUN offload packets (IFF_VNET_HDR): a struct virtio_net_hdr in front of every packet. Pure
// functions, no syscalls: the TCP segmenter (one GSO superpacket -> MSS-sized complete segments, as
// the kernel's own GSO would cut them) and checksum completion of a NEEDS_CSUM packet. Used by the
// TUN reader thread, TUN writes to a device without offload, and lib/link (segmentTcp export).
// Bad input is never trusted: every offset is checked against the packet, a GsoError says which.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace lunlink {

// The layout of struct virtio_net_hdr (linux/virtio_net.h), little-endian (TUN default on x86/arm).
constexpr size_t kVnetHdrBytes = 10;
constexpr uint8_t kVnetFlagNeedsCsum = 1;
constexpr uint8_t kVnetGsoNone = 0;
constexpr uint8_t kVnetGsoTcpV4 = 1;
constexpr uint8_t kVnetGsoTcpV6 = 4;
constexpr uint8_t kVnetGsoEcn = 0x80;

struct VnetHdr {
  uint8_t flags;
  uint8_t gsoType;
  uint16_t hdrLen;
  uint16_t gsoSize;
  uint16_t csumStart;
  uint16_t csumOffset;
};

VnetHdr ReadVnetHdr(const uint8_t* p);
void WriteVnetHdr(uint8_t* p, const VnetHdr& h);

// Why a packet was refused; mirrored by GSO_ERRORS in lib/io/native.ts (negative results).
enum class GsoError : int32_t {
  kOk = 0,
  kShort = 1,          // shorter than the vnet header + an IP header
  kGsoType = 2,        // a gso type other than none, TCPv4, TCPv6 (ECN bit allowed)
  kGsoSize = 3,        // gso_size 0
  kHdrLen = 4,         // hdr_len past the packet, or the TCP header past the packet
  kCsum = 5,           // csum_start / csum_offset out of range, or not NEEDS_CSUM for a GSO packet
  kIp = 6,             // IP version, protocol, header length do not match the gso type
  kRoom = 7,           // the segments do not fit the output buffer or the length table
};

// Completes the partial checksum of a NEEDS_CSUM packet in place (`packet` after the vnet header):
// the ones' complement sum from csum_start to the end, folded, stored at csum_start + csum_offset.
GsoError CompleteChecksum(uint8_t* packet, size_t length, const VnetHdr& h);

// Splits one TCP GSO superpacket (`packet` after the vnet header, `length` bytes) into complete
// segments back to back in `out` (capacity `outBytes`), lengths in `lengths` (at most `maxSegments`).
// Per segment: IPv4 total length, id (+i), header checksum / IPv6 payload length; TCP seq (+i *
// gso_size), FIN and PSH only on the last, CWR only on the first; full TCP checksum.
// Returns the number of segments, or a GsoError as a negative number.
int32_t SegmentTcp(const uint8_t* packet, size_t length, const VnetHdr& h, uint8_t* out, size_t outBytes, uint32_t* lengths,
                   uint32_t maxSegments);

// The segment count SegmentTcp would produce and the bytes it needs, without writing (0 segments: an error).
int32_t SegmentBounds(const uint8_t* packet, size_t length, const VnetHdr& h, size_t* needBytes);

// JS: segmentTcp(input: Uint8Array (vnet header + packet), out: Uint8Array, lengths: Uint32Array) ->
// segments (>= 1) or -GsoError. A non-GSO input is copied as one packet, its checksum completed if asked.
Napi::Value SegmentTcpJs(const Napi::CallbackInfo& info);

}  // namespace lunlink
