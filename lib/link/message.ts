// Link messages: the one encoding both paths carry. A UDP datagram is exactly one message; on
// storage a message is the payload of one ring frame (the ring adds its own checksums). The header
// names the sender (node id, session) so a receiver can drop strays and restarts' leftovers, and
// carries one sequence and one acknowledgement whose meaning depends on the kind:
//   heartbeat:  seq = heartbeat number on this path, ack = highest heartbeat number heard from the peer
//               on this path (the echo that detects one-way failures)
//   control:    seq = control sequence (reliable, in order), ack = cumulative control ack
//   controlAck: seq = 0, ack = cumulative control ack
//   data:       seq = link sequence (dedupe across paths); ack = on the primary, the highest seq the
//               sender put on storage alone (the receiver keeps order behind it, paths.ts), else 0
//   broadcast:  seq = the sender node's broadcast sequence (1, 2, ... per session, one numbering for
//               all its peers: the same message is one ring frame with destination 0, read by every
//               peer, and one UDP datagram per peer on the primary); ack = 0. The receiver dedupes it
//               per sender, apart from the pair's data sequence (docs/format.md, Link messages).
// Layout (little-endian): version u8 | kind u8 | path u8 | node u8 | session u64 | seq u64 | ack u64.
// The kind byte's high bit (FRAMED_KIND_BIT) marks a data message whose payload is a vnet-framed TCP
// superpacket (TUN offload, superpackets.ts); it is valid with kind data only. Payloads are never sniffed.
import { FrameType } from "../format/layout.ts";
import { LunlinkError, ErrorCode } from "../errors.ts";

export const LINK_VERSION = 1;
export const MESSAGE_HEADER_BYTES = 28;
/** UDP datagram bound; the storage path's bound is the ring's frame capacity. */
export const MAX_MESSAGE_BYTES = 65507;

/** Kind byte bit: the data message's payload is a vnet-framed TCP superpacket (never set on another kind). */
export const FRAMED_KIND_BIT = 0x80;

export const MessageKind = { Heartbeat: 1, Control: 2, ControlAck: 3, Data: 4, Broadcast: 5 } as const;
export type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];

/** On storage a message rides one ring frame of its class: heartbeat > control (acks too) > data. */
export const RING_FRAME_TYPE: Record<MessageKind, FrameType> = {
  [MessageKind.Heartbeat]: FrameType.Heartbeat,
  [MessageKind.Control]: FrameType.Control,
  [MessageKind.ControlAck]: FrameType.Control,
  [MessageKind.Data]: FrameType.Data,
  [MessageKind.Broadcast]: FrameType.Data,
};

export const PathId = { Primary: 0, Storage: 1 } as const;
export type PathId = (typeof PathId)[keyof typeof PathId];
export const PATH_NAMES = ["primary", "storage"] as const;

export interface MessageHeader {
  kind: MessageKind;
  path: PathId;
  node: number;
  session: bigint;
  seq: bigint;
  ack: bigint;
  /** Data only: the payload is a vnet-framed TCP superpacket (FRAMED_KIND_BIT). */
  framed?: boolean;
}

/** Writes a header at `offset` of `target` (which must have room for it plus the payload). */
export function encodeHeader(target: Uint8Array, offset: number, header: MessageHeader): void {
  const view = new DataView(target.buffer, target.byteOffset + offset, MESSAGE_HEADER_BYTES);
  view.setUint8(0, LINK_VERSION);
  if (header.framed === true && header.kind !== MessageKind.Data) throw new Error(`assertion failed: a framed message of kind ${header.kind}`);
  view.setUint8(1, header.framed === true ? header.kind | FRAMED_KIND_BIT : header.kind);
  view.setUint8(2, header.path);
  view.setUint8(3, header.node);
  view.setBigUint64(4, header.session, true);
  view.setBigUint64(12, header.seq, true);
  view.setBigUint64(20, header.ack, true);
}

/** One message in a fresh buffer: header then payload. */
export function encodeMessage(header: MessageHeader, payload?: Uint8Array): Buffer {
  const length = MESSAGE_HEADER_BYTES + (payload?.length ?? 0);
  if (length > MAX_MESSAGE_BYTES) throw new LunlinkError(ErrorCode.FrameTooLarge, `a link message of ${length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  const out = Buffer.allocUnsafe(length);
  encodeHeader(out, 0, header);
  if (payload !== undefined) out.set(payload, MESSAGE_HEADER_BYTES);
  return out;
}

export type DecodeResult = { ok: true; header: MessageHeader & { framed: boolean }; payloadOffset: number } | { ok: false; reason: "short" | "version" | "kind" | "path" };

/**
 * Reads the header of the message at bytes[offset, offset+length). Never throws on bad input: a
 * stray or damaged datagram is a counted drop, not an exception. The payload is the rest.
 */
export function decodeHeader(bytes: Uint8Array, offset: number, length: number): DecodeResult {
  if (length < MESSAGE_HEADER_BYTES || offset + length > bytes.length) return { ok: false, reason: "short" };
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, MESSAGE_HEADER_BYTES);
  if (view.getUint8(0) !== LINK_VERSION) return { ok: false, reason: "version" };
  const kindByte = view.getUint8(1);
  const framed = (kindByte & FRAMED_KIND_BIT) !== 0;
  const kind = kindByte & ~FRAMED_KIND_BIT;
  if (framed && kind !== MessageKind.Data) return { ok: false, reason: "kind" };
  if (kind < MessageKind.Heartbeat || kind > MessageKind.Broadcast) return { ok: false, reason: "kind" };
  const path = view.getUint8(2);
  if (path !== PathId.Primary && path !== PathId.Storage) return { ok: false, reason: "path" };
  return {
    ok: true,
    header: {
      kind: kind as MessageKind,
      path: path as PathId,
      node: view.getUint8(3),
      session: view.getBigUint64(4, true),
      seq: view.getBigUint64(12, true),
      ack: view.getBigUint64(20, true),
      framed,
    },
    payloadOffset: offset + MESSAGE_HEADER_BYTES,
  };
}
