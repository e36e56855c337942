// TUN offload packets (IFF_VNET_HDR, addon/gso.h). With offload on, a TUN read batch holds bare IP
// packets and "vnet-framed" TCP superpackets: a 10-byte struct virtio_net_hdr in front (its first
// byte's high nibble is 0, never an IP version), up to 64 KiB, TCP checksum partial. The Segmenter
// cuts one into complete MSS-sized segments (natively) for every consumer that is not a TUN with
// offload on: the UDP path, "data" listeners, a TUN without offload. Its buffers are reused: no
// allocation per packet; segments stay valid until the next call.
import { ErrorCode, LunlinkError } from "../errors.ts";
import { segmentTcpNative } from "../io/tun-handle.ts";

export const VNET_HDR_BYTES = 10;
/** The largest superpacket, header included (an IP packet's bound + the vnet header). */
export const MAX_FRAMED_BYTES = 65535 + VNET_HDR_BYTES;
/** Bounds of one cut: a superpacket of 64 KiB at an MSS as small as 64 bytes, headers repeated per segment. Mirrors kTunSegment* in addon/tun.h. */
export const SEGMENT_MAX = 1024;
export const SEGMENT_BYTES = 1 << 18;

/** Why addon/gso.cc refused a packet (its GsoError, negated in the result). */
export const GSO_ERRORS: Readonly<Record<number, string>> = {
  1: "shorter than a vnet header and an IP header",
  2: "a gso type other than none, TCPv4 or TCPv6",
  3: "gso_size 0",
  4: "hdr_len or the TCP header past the packet",
  5: "csum_start / csum_offset out of range (or a GSO packet without NEEDS_CSUM)",
  6: "the IP header does not match the gso type (version, protocol, header length)",
  7: "the segments do not fit the output",
};

/**
 * A vnet-framed TCP superpacket rather than a bare IPv4/IPv6 packet: a first byte whose high nibble
 * is 0 (never an IP version), gso_type TCPv4 or TCPv6 (ECN bit allowed), and an IP version after the
 * header. The TUN reader frames nothing else; any other payload is carried as it is.
 */
export function isFramed(bytes: Uint8Array, offset: number, length: number): boolean {
  if (length <= VNET_HDR_BYTES || bytes[offset]! >> 4 !== 0) return false;
  const type = bytes[offset + 1]! & 0x7f;
  const version = bytes[offset + VNET_HDR_BYTES]! >> 4;
  return (type === 1 && version === 4) || (type === 4 && version === 6);
}

/** The IP packet's offset within a payload: after the vnet header of a framed one. */
export function ipOffset(bytes: Uint8Array, offset: number, length: number): number {
  return isFramed(bytes, offset, length) ? offset + VNET_HDR_BYTES : offset;
}

export class Segmenter {
  readonly bytes = new Uint8Array(SEGMENT_BYTES);
  readonly lengths = new Uint32Array(SEGMENT_MAX);
  /** Packets cut, and segments they gave. */
  cut = 0;
  segments = 0;

  /** Cuts a vnet-framed packet into bytes/lengths; returns the segment count, or a negative GsoError (nothing usable). */
  trySegment(framed: Uint8Array): number {
    const count = segmentTcpNative(framed, this.bytes, this.lengths);
    if (count > 0) {
      this.cut++;
      this.segments += count;
    }
    return count;
  }

  /** trySegment, throwing ERR_LUNLINK_INVALID_ARGUMENT with the reason for a packet the checks refuse. */
  segment(framed: Uint8Array): number {
    const count = this.trySegment(framed);
    if (count > 0) return count;
    throw new LunlinkError(ErrorCode.InvalidArgument, `a vnet-framed packet of ${framed.length} bytes was refused: ${GSO_ERRORS[-count] ?? `error ${count}`}`);
  }
}
