// The native TCP segmenter (addon/gso.cc) on hand-built IPv4 and IPv6 superpackets: every segment's
// IP and TCP checksums verified by an independent JS checksum, payloads concatenated back, seq and
// flags per segment; bad vnet headers give a coded error, never a crash.
import test from "ava";
import { randomBytes } from "node:crypto";

import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import { Segmenter, VNET_HDR_BYTES, isFramed } from "../../lib/tun/offload.ts";

const FIN = 0x01;
const PSH = 0x08;
const ACK = 0x10;
const CWR = 0x80;

/** The Internet checksum's ones' complement sum of bytes (big-endian words), folded, not inverted. */
function sum16(bytes: Uint8Array, initial = 0): number {
  let acc = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) acc += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2 === 1) acc += bytes[bytes.length - 1]! << 8;
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

interface Built {
  framed: Uint8Array;
  payload: Uint8Array;
  ipBytes: number;
  tcpBytes: number;
}

function vnet(flags: number, gsoType: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number): Uint8Array {
  const h = new Uint8Array(VNET_HDR_BYTES);
  const v = new DataView(h.buffer);
  v.setUint8(0, flags);
  v.setUint8(1, gsoType);
  v.setUint16(2, hdrLen, true);
  v.setUint16(4, gsoSize, true);
  v.setUint16(6, csumStart, true);
  v.setUint16(8, csumOffset, true);
  return h;
}

function pseudoSum(ip: Uint8Array, v4: boolean, tcpLength: number): number {
  const addresses = v4 ? ip.subarray(12, 20) : ip.subarray(8, 40);
  return sum16(addresses) + 6 + tcpLength;
}

/** A TCP superpacket (IPv4 with 12 bytes of TCP options, or IPv6), vnet-framed, checksum field = the folded pseudo-header sum (as the kernel leaves it). */
function build(v4: boolean, payloadBytes: number, gsoSize: number, flags: number, gsoType = v4 ? 1 : 4): Built {
  const ipBytes = v4 ? 20 : 40;
  const tcpBytes = v4 ? 32 : 20;
  const payload = randomBytes(payloadBytes);
  const packet = new Uint8Array(ipBytes + tcpBytes + payloadBytes);
  const v = new DataView(packet.buffer);
  if (v4) {
    v.setUint8(0, 0x45);
    v.setUint16(2, packet.length);
    v.setUint16(4, 0xfffe); // the id wraps inside the run
    v.setUint16(6, 0x4000);
    v.setUint8(8, 64);
    v.setUint8(9, 6);
    packet.set([198, 18, 0, 1, 198, 18, 0, 2], 12);
    v.setUint16(10, ~sum16(packet.subarray(0, 20)) & 0xffff);
  } else {
    v.setUint32(0, 0x60012345);
    v.setUint16(4, packet.length - 40);
    v.setUint8(6, 6);
    v.setUint8(7, 64);
    packet.set([0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1], 8);
    packet.set([0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 2], 24);
  }
  const t = ipBytes;
  v.setUint16(t, 40000);
  v.setUint16(t + 2, 5201);
  v.setUint32(t + 4, 0xfffff000); // seq wraps inside the run
  v.setUint32(t + 8, 777);
  v.setUint8(t + 12, (tcpBytes / 4) << 4);
  v.setUint8(t + 13, flags);
  v.setUint16(t + 14, 512);
  for (let i = t + 20; i < t + tcpBytes; i++) packet[i] = 1; // NOP options
  packet.set(payload, ipBytes + tcpBytes);
  v.setUint16(t + 16, sum16(new Uint8Array(0), pseudoSum(packet, v4, tcpBytes + payloadBytes)));
  const framed = new Uint8Array(VNET_HDR_BYTES + packet.length);
  framed.set(vnet(1, gsoType, ipBytes + tcpBytes, gsoSize, ipBytes, 16), 0);
  framed.set(packet, VNET_HDR_BYTES);
  return { framed, payload, ipBytes, tcpBytes };
}

function checkSegments(t: import("ava").ExecutionContext, v4: boolean, built: Built, gsoSize: number, flags: number): void {
  const segmenter = new Segmenter();
  const count = segmenter.segment(built.framed);
  const expected = Math.ceil(built.payload.length / gsoSize);
  t.is(count, expected);
  const joined: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const length = segmenter.lengths[i]!;
    const s = segmenter.bytes.subarray(offset, offset + length);
    offset += length;
    const v = new DataView(s.buffer, s.byteOffset, s.byteLength);
    const segPayload = length - built.ipBytes - built.tcpBytes;
    t.is(segPayload, i + 1 === count ? built.payload.length - gsoSize * (count - 1) : gsoSize);
    if (v4) {
      t.is(v.getUint16(2), length, `segment ${i} total length`);
      t.is(v.getUint16(4), (0xfffe + i) & 0xffff, `segment ${i} id`);
      t.is(sum16(s.subarray(0, 20)), 0xffff, `segment ${i} IPv4 header checksum`);
    } else {
      t.is(v.getUint16(4), length - 40, `segment ${i} payload length`);
    }
    const tcp = s.subarray(built.ipBytes);
    t.is(sum16(tcp, pseudoSum(s, v4, tcp.length)), 0xffff, `segment ${i} TCP checksum`);
    t.is(v.getUint32(built.ipBytes + 4), (0xfffff000 + i * gsoSize) >>> 0, `segment ${i} seq`);
    const f = v.getUint8(built.ipBytes + 13);
    const last = i + 1 === count;
    t.is(f & FIN, last ? flags & FIN : 0, `segment ${i} FIN`);
    t.is(f & PSH, last ? flags & PSH : 0, `segment ${i} PSH`);
    t.is(f & CWR, i === 0 ? flags & CWR : 0, `segment ${i} CWR`);
    t.is(f & ACK, ACK);
    joined.push(s.subarray(built.ipBytes + built.tcpBytes));
  }
  t.deepEqual(Buffer.concat(joined), Buffer.from(built.payload));
  t.is(segmenter.cut, 1);
  t.is(segmenter.segments, count);
}

test("an IPv4 superpacket is cut into complete segments at gso_size", (t) => {
  const flags = FIN | PSH | ACK | CWR;
  const built = build(true, 5000, 1360, flags);
  t.true(isFramed(built.framed, 0, built.framed.length));
  checkSegments(t, true, built, 1360, flags);
});

test("an IPv6 superpacket is cut into complete segments at gso_size", (t) => {
  const flags = PSH | ACK | CWR;
  const built = build(false, 64000, 1340, flags);
  checkSegments(t, false, built, 1340, flags);
});

test("a superpacket that is one segment keeps all its flags", (t) => {
  const flags = FIN | PSH | ACK | CWR;
  const built = build(true, 1000, 1360, flags);
  checkSegments(t, true, built, 1360, flags);
});

test("a NEEDS_CSUM packet without GSO gets its checksum completed", (t) => {
  const built = build(true, 999, 1360, PSH | ACK, 0);
  const segmenter = new Segmenter();
  t.is(segmenter.segment(built.framed), 1);
  const s = segmenter.bytes.subarray(0, segmenter.lengths[0]);
  t.deepEqual(Buffer.from(s.subarray(0, 16)), Buffer.from(built.framed.subarray(VNET_HDR_BYTES, VNET_HDR_BYTES + 16)));
  t.is(sum16(s.subarray(20), pseudoSum(s, true, s.length - 20)), 0xffff);
  t.false(isFramed(s, 0, s.length));
});

function withHeader(built: Built, header: Uint8Array): Uint8Array {
  const copy = built.framed.slice();
  copy.set(header, 0);
  return copy;
}

test("bad vnet headers give a coded error, not a crash", (t) => {
  const built = build(true, 5000, 1360, ACK);
  const length = built.framed.length - VNET_HDR_BYTES;
  const cases: [string, Uint8Array, number][] = [
    ["gso_size 0", withHeader(built, vnet(1, 1, 52, 0, 20, 16)), -3],
    ["hdr_len past the packet", withHeader(built, vnet(1, 1, length + 1, 1360, 20, 16)), -4],
    ["csum_offset out of range", withHeader(built, vnet(1, 1, 52, 1360, 20, length)), -5],
    ["csum_start out of range", withHeader(built, vnet(1, 1, 52, 1360, length, 16)), -5],
    ["a GSO packet without NEEDS_CSUM", withHeader(built, vnet(0, 1, 52, 1360, 20, 16)), -5],
    ["non-TCP gso type (UDP)", withHeader(built, vnet(1, 3, 52, 1360, 20, 16)), -2],
    ["non-TCP gso type (UDP L4)", withHeader(built, vnet(1, 5, 52, 1360, 20, 16)), -2],
    ["TCPv6 on an IPv4 packet", withHeader(built, vnet(1, 4, 52, 1360, 40, 16)), -6],
    ["csum_start not the IPv4 header length", withHeader(built, vnet(1, 1, 52, 1360, 24, 16)), -6],
    ["no-GSO csum_offset out of range", withHeader(built, vnet(1, 0, 0, 0, 20, length)), -5],
    ["shorter than a vnet header", built.framed.subarray(0, 5), -1],
  ];
  const segmenter = new Segmenter();
  for (const [what, framed, code] of cases) {
    t.is(segmenter.trySegment(framed), code, what);
    const error = t.throws(() => segmenter.segment(framed), { instanceOf: LunlinkError }, what);
    t.is(error?.code, ErrorCode.InvalidArgument, what);
  }
  // A TCP header length past the packet: data offset 15 words on a 40-byte packet.
  const tiny = build(true, 0, 1360, ACK);
  tiny.framed[VNET_HDR_BYTES + 20 + 12] = 0xf0;
  t.is(segmenter.trySegment(tiny.framed), -4);
  // Too many segments for the output: gso_size 1 on 5000 bytes.
  t.is(segmenter.trySegment(withHeader(built, vnet(1, 1, 52, 1, 20, 16))), -7);
  t.is(segmenter.cut, 0);
});
