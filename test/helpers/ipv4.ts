// Hand-built IPv4/UDP packets for TUN tests and the TUN bench: build with correct IP header and UDP
// checksums, and parse what the kernel routes into a TUN. Test code only (lunlink itself never
// looks inside the packets it carries).

export interface UdpPacket {
  version: number;
  headerBytes: number;
  totalLength: number;
  protocol: number;
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  ipChecksumOk: boolean;
  payload: Uint8Array;
}

export function ipv4ToBytes(address: string): Uint8Array {
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${address}`);
  return Uint8Array.from(parts);
}

/** A bare IPv4 packet (20-byte header, no options, no checksum) carrying `body`: what routing by destination reads. */
export function ipv4Packet(source: string, destination: string, body: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + body.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 255;
  p[8] = 64;
  p[9] = 17;
  p.set(ipv4ToBytes(source), 12);
  p.set(ipv4ToBytes(destination), 16);
  p.set(body, 20);
  return p;
}

function sum16(bytes: Uint8Array, start: number, end: number, initial: number): number {
  let sum = initial;
  for (let i = start; i < end; i += 2) sum += (bytes[i]! << 8) | (i + 1 < end ? bytes[i + 1]! : 0);
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Writes an IPv4/UDP packet into `out` at `offset`; returns its length. */
export function writeUdpPacket(out: Uint8Array, offset: number, source: string, destination: string, sourcePort: number, destinationPort: number, payload: Uint8Array, id = 0): number {
  const length = 20 + 8 + payload.length;
  const p = out.subarray(offset, offset + length);
  if (p.length !== length) throw new Error("packet does not fit");
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  p.fill(0, 0, 28);
  view.setUint8(0, 0x45); // version 4, 5 words of header
  view.setUint16(2, length);
  view.setUint16(4, id & 0xffff);
  view.setUint16(6, 0x4000); // don't fragment
  view.setUint8(8, 64); // TTL
  view.setUint8(9, 17); // UDP
  p.set(ipv4ToBytes(source), 12);
  p.set(ipv4ToBytes(destination), 16);
  view.setUint16(10, fold(sum16(p, 0, 20, 0)));
  view.setUint16(20, sourcePort);
  view.setUint16(22, destinationPort);
  view.setUint16(24, 8 + payload.length);
  p.set(payload, 28);
  // UDP checksum over the pseudo-header (addresses, protocol, UDP length) and the datagram.
  const pseudo = sum16(p, 12, 20, 17 + 8 + payload.length);
  const checksum = fold(sum16(p, 20, length, pseudo));
  view.setUint16(26, checksum === 0 ? 0xffff : checksum);
  return length;
}

export function buildUdpPacket(source: string, destination: string, sourcePort: number, destinationPort: number, payload: Uint8Array, id = 0): Uint8Array {
  const out = new Uint8Array(28 + payload.length);
  writeUdpPacket(out, 0, source, destination, sourcePort, destinationPort, payload, id);
  return out;
}

/** Parses an IPv4/UDP packet; undefined for anything else (IPv6, ICMP...). */
export function parseUdpPacket(packet: Uint8Array): UdpPacket | undefined {
  if (packet.length < 28 || packet[0]! >> 4 !== 4) return undefined;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const headerBytes = (packet[0]! & 0x0f) * 4;
  const protocol = packet[9]!;
  if (protocol !== 17 || packet.length < headerBytes + 8) return undefined;
  const totalLength = view.getUint16(2);
  const udpLength = view.getUint16(headerBytes + 4);
  return {
    version: packet[0]! >> 4,
    headerBytes,
    totalLength,
    protocol,
    source: Array.from(packet.subarray(12, 16)).join("."),
    destination: Array.from(packet.subarray(16, 20)).join("."),
    sourcePort: view.getUint16(headerBytes),
    destinationPort: view.getUint16(headerBytes + 2),
    ipChecksumOk: fold(sum16(packet, 0, headerBytes, 0)) === 0,
    payload: packet.slice(headerBytes + 8, headerBytes + udpLength),
  };
}
