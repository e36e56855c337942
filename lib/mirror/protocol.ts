// The remote mirror's wire protocol (sans-IO): messages <-> bytes. Every message is one frame:
//   0 magic u32 "LLMP" | 4 version u8 | 5 type u8 | 6 reserved u16 (0) | 8 bodyBytes u32
//  12 crc32c u32 over bytes 0..12 then the body | 16 body
// The length is bounded (MAX_BODY_BYTES) before any byte of the body is awaited, and nothing in a
// frame is acted on before its CRC passed. Integers are little-endian; u64 fields must fit in 2^53.
// Session: pusher Hello -> server Welcome (or Error); pusher SumsRequest -> server Sums (XXH3-128
// per block of the destination); pusher Write(seq) ... -> server Ack(seq) once every write up to seq
// is durable (fdatasync). Either side may send Error and close.
import { bodyCheck, crc32c, crc32cFrom } from "../format/checksum.ts";
import { readUuid, writeUuid } from "../format/uuid.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";

export const PROTOCOL_MAGIC = 0x504d4c4c; // "LLMP"
export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 16;
/** Most data bytes in one Write: a larger copy is split (a record's later blocks stay before its first). */
export const MAX_WRITE_BYTES = 1024 * 1024;
/** Most blocks one SumsRequest may ask for. */
export const MAX_SUMS_BLOCKS = 1024;
export const SUM_BYTES = 16;
export const MAX_ERROR_TEXT_BYTES = 4096;
const WRITE_HEAD_BYTES = 24;
export const MAX_BODY_BYTES = WRITE_HEAD_BYTES + MAX_WRITE_BYTES;
/** What a decoder may hold: one whole frame plus one socket read beyond it. */
export const MAX_BUFFERED_BYTES = 2 * (FRAME_HEADER_BYTES + MAX_BODY_BYTES);

export const MessageType = { Hello: 1, Welcome: 2, SumsRequest: 3, Sums: 4, Write: 5, Ack: 6, Error: 7 } as const;

// Write body: seq u64 | offsetBytes u64 | reserved u32 (0) | data. The reserved word once held a
// "sync" flag that no pusher ever set (the server acks whatever ends what has arrived, once durable);
// it was removed without a version bump because every version-1 pusher sent 0 there: both ends send
// 0 and refuse anything else, so old and new peers of version 1 still speak to each other.

export type Message =
  | { type: "hello"; volumeUuid: string; pairUuid: string; blockBytes: number; writerNode: number; volumeBlocks: number }
  | { type: "welcome"; destinationBytes: number; logicalBlockBytes: number }
  | { type: "sumsRequest"; requestId: number; firstBlock: number; blockCount: number }
  | { type: "sums"; requestId: number; firstBlock: number; blockCount: number; sums: Uint8Array }
  | { type: "write"; seq: number; offsetBytes: number; data: Uint8Array }
  | { type: "ack"; seq: number }
  | { type: "error"; code: string; message: string };

function bad(detail: string): LunlinkError {
  return new LunlinkError(ErrorCode.BadPeerMessage, `mirror peer sent a bad message: ${detail}`);
}

function assertU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new Error(`assertion failed: ${name} ${value} is not a u32`);
}

function assertU53(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`assertion failed: ${name} ${value} is not a non-negative safe integer`);
}

function bodyBytesOf(message: Message, text: { code: Uint8Array; message: Uint8Array } | undefined): number {
  switch (message.type) {
    case "hello":
      return 48;
    case "welcome":
    case "sumsRequest":
      return 16;
    case "sums":
      return 16 + message.sums.length;
    case "write":
      return WRITE_HEAD_BYTES + message.data.length;
    case "ack":
      return 8;
    case "error":
      return 4 + text!.code.length + text!.message.length;
  }
}

/** One frame for `message` (a fresh buffer: the socket keeps it until sent). */
export function encodeMessage(message: Message): Uint8Array {
  const encoder = new TextEncoder();
  const text = message.type === "error" ? { code: encoder.encode(message.code).subarray(0, 64), message: encoder.encode(message.message).subarray(0, MAX_ERROR_TEXT_BYTES) } : undefined;
  const bodyBytes = bodyBytesOf(message, text);
  if (bodyBytes > MAX_BODY_BYTES) throw new Error(`assertion failed: a ${message.type} body of ${bodyBytes} bytes exceeds ${MAX_BODY_BYTES}`);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + bodyBytes);
  const v = new DataView(frame.buffer);
  v.setUint32(0, PROTOCOL_MAGIC, true);
  v.setUint8(4, PROTOCOL_VERSION);
  v.setUint8(5, MessageType[typeName[message.type]]);
  v.setUint32(8, bodyBytes, true);
  const b = FRAME_HEADER_BYTES;
  switch (message.type) {
    case "hello":
      writeUuid(frame, b, message.volumeUuid);
      writeUuid(frame, b + 16, message.pairUuid);
      assertU32("blockBytes", message.blockBytes);
      assertU32("writerNode", message.writerNode);
      assertU53("volumeBlocks", message.volumeBlocks);
      v.setUint32(b + 32, message.blockBytes, true);
      v.setUint32(b + 36, message.writerNode, true);
      v.setBigUint64(b + 40, BigInt(message.volumeBlocks), true);
      break;
    case "welcome":
      assertU53("destinationBytes", message.destinationBytes);
      assertU32("logicalBlockBytes", message.logicalBlockBytes);
      v.setBigUint64(b, BigInt(message.destinationBytes), true);
      v.setUint32(b + 8, message.logicalBlockBytes, true);
      break;
    case "sumsRequest":
    case "sums":
      assertU32("requestId", message.requestId);
      assertU53("firstBlock", message.firstBlock);
      if (!Number.isInteger(message.blockCount) || message.blockCount < 1 || message.blockCount > MAX_SUMS_BLOCKS) throw new Error(`assertion failed: blockCount ${message.blockCount}`);
      v.setUint32(b, message.requestId, true);
      v.setUint32(b + 4, message.blockCount, true);
      v.setBigUint64(b + 8, BigInt(message.firstBlock), true);
      if (message.type === "sums") {
        if (message.sums.length !== message.blockCount * SUM_BYTES) throw new Error("assertion failed: sums length is not blockCount * 16");
        frame.set(message.sums, b + 16);
      }
      break;
    case "write":
      assertU53("seq", message.seq);
      assertU53("offsetBytes", message.offsetBytes);
      if (message.data.length === 0) throw new Error("assertion failed: an empty write");
      v.setBigUint64(b, BigInt(message.seq), true);
      v.setBigUint64(b + 8, BigInt(message.offsetBytes), true);
      // b + 16: the reserved word stays 0 (the frame is zeroed).
      frame.set(message.data, b + WRITE_HEAD_BYTES);
      break;
    case "ack":
      assertU53("seq", message.seq);
      v.setBigUint64(b, BigInt(message.seq), true);
      break;
    case "error":
      v.setUint32(b, text!.code.length, true);
      frame.set(text!.code, b + 4);
      frame.set(text!.message, b + 4 + text!.code.length);
      break;
  }
  v.setUint32(12, crc32cFrom(crc32c(frame, 0, 12), frame.subarray(FRAME_HEADER_BYTES)), true);
  return frame;
}

const typeName = { hello: "Hello", welcome: "Welcome", sumsRequest: "SumsRequest", sums: "Sums", write: "Write", ack: "Ack", error: "Error" } as const;

function u53(v: DataView, at: number, name: string): number {
  const value = v.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${name} ${value} is beyond 2^53`);
  return Number(value);
}

/** Decodes a body whose frame CRC already passed. `frame` is owned by the message (a copy). */
function decodeBody(type: number, frame: Uint8Array): Message {
  const body = frame.subarray(FRAME_HEADER_BYTES);
  const v = new DataView(frame.buffer, frame.byteOffset + FRAME_HEADER_BYTES, body.length);
  const need = (bytes: number, exact = true): void => {
    if (exact ? body.length !== bytes : body.length < bytes) throw bad(`type ${type} with a ${body.length}-byte body (expected ${exact ? "" : "at least "}${bytes})`);
  };
  switch (type) {
    case MessageType.Hello:
      need(48);
      return { type: "hello", volumeUuid: readUuid(body, 0), pairUuid: readUuid(body, 16), blockBytes: v.getUint32(32, true), writerNode: v.getUint32(36, true), volumeBlocks: u53(v, 40, "volumeBlocks") };
    case MessageType.Welcome:
      need(16);
      return { type: "welcome", destinationBytes: u53(v, 0, "destinationBytes"), logicalBlockBytes: v.getUint32(8, true) };
    case MessageType.SumsRequest:
    case MessageType.Sums: {
      need(16, type === MessageType.Sums ? false : true);
      const requestId = v.getUint32(0, true);
      const blockCount = v.getUint32(4, true);
      const firstBlock = u53(v, 8, "firstBlock");
      if (blockCount < 1 || blockCount > MAX_SUMS_BLOCKS) throw bad(`blockCount ${blockCount} outside 1..${MAX_SUMS_BLOCKS}`);
      if (type === MessageType.SumsRequest) return { type: "sumsRequest", requestId, firstBlock, blockCount };
      need(16 + blockCount * SUM_BYTES);
      return { type: "sums", requestId, firstBlock, blockCount, sums: body.subarray(16) };
    }
    case MessageType.Write: {
      need(WRITE_HEAD_BYTES + 1, false);
      const reserved = v.getUint32(16, true);
      if (reserved !== 0) throw bad(`write reserved word 0x${reserved.toString(16)} (must be 0)`);
      return { type: "write", seq: u53(v, 0, "seq"), offsetBytes: u53(v, 8, "offsetBytes"), data: body.subarray(WRITE_HEAD_BYTES) };
    }
    case MessageType.Ack:
      need(8);
      return { type: "ack", seq: u53(v, 0, "seq") };
    case MessageType.Error: {
      need(4, false);
      const codeBytes = v.getUint32(0, true);
      if (codeBytes > 64 || 4 + codeBytes > body.length || body.length - 4 - codeBytes > MAX_ERROR_TEXT_BYTES) throw bad(`an error message with a ${codeBytes}-byte code in a ${body.length}-byte body`);
      const decoder = new TextDecoder();
      return { type: "error", code: decoder.decode(body.subarray(4, 4 + codeBytes)), message: decoder.decode(body.subarray(4 + codeBytes)) };
    }
    default:
      throw bad(`unknown message type ${type}`);
  }
}

/**
 * Reassembles frames from a byte stream. push() each chunk as it arrives, then call next() until it
 * returns undefined. Holds at most MAX_BUFFERED_BYTES (push throws past it: the caller did not
 * drain). A bad frame throws ERR_LUNLINK_BAD_PEER_MESSAGE; the stream is then unusable.
 */
export class MessageDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): void {
    if (this.buffered + chunk.length > MAX_BUFFERED_BYTES) throw bad(`more than ${MAX_BUFFERED_BYTES} bytes without a complete frame`);
    if (chunk.length > 0) this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  next(): Message | undefined {
    if (this.buffered < FRAME_HEADER_BYTES) return undefined;
    this.copyOut(this.header, FRAME_HEADER_BYTES, false);
    const v = new DataView(this.header.buffer);
    const magic = v.getUint32(0, true);
    if (magic !== PROTOCOL_MAGIC) throw bad(`magic 0x${magic.toString(16)} (expected 0x${PROTOCOL_MAGIC.toString(16)}: not a lunlink mirror peer)`);
    const version = v.getUint8(4);
    if (version !== PROTOCOL_VERSION) throw bad(`protocol version ${version} (this side speaks ${PROTOCOL_VERSION})`);
    const bodyBytes = v.getUint32(8, true);
    if (bodyBytes > MAX_BODY_BYTES) throw bad(`a ${bodyBytes}-byte body (at most ${MAX_BODY_BYTES})`);
    if (this.buffered < FRAME_HEADER_BYTES + bodyBytes) return undefined;
    const frame = new Uint8Array(FRAME_HEADER_BYTES + bodyBytes);
    this.copyOut(frame, frame.length, true);
    const expected = v.getUint32(12, true);
    const actual = crc32cFrom(crc32c(frame, 0, 12), frame.subarray(FRAME_HEADER_BYTES));
    if (expected !== actual) throw bad(`frame checksum 0x${actual.toString(16)}, header says 0x${expected.toString(16)} (type ${v.getUint8(5)}, ${bodyBytes}-byte body)`);
    if (v.getUint16(6, true) !== 0) throw bad("reserved header bits set");
    return decodeBody(v.getUint8(5), frame);
  }

  /** Copies the first `length` buffered bytes into `out`; consumes them if `consume`. */
  private copyOut(out: Uint8Array, length: number, consume: boolean): void {
    let copied = 0;
    let i = 0;
    while (copied < length) {
      const chunk = this.chunks[i]!;
      const take = Math.min(chunk.length, length - copied);
      out.set(chunk.subarray(0, take), copied);
      copied += take;
      if (consume) {
        if (take === chunk.length) {
          this.chunks.shift();
          continue;
        }
        this.chunks[i] = chunk.subarray(take);
      }
      i++;
    }
    if (consume) this.buffered -= length;
  }
}

/** XXH3-128 of each of `count` blocks of `blockBytes` in `bytes`, 16 bytes each. */
export function blockSums(bytes: Uint8Array, blockBytes: number, count: number): Uint8Array {
  if (bytes.length < blockBytes * count) throw new Error("assertion failed: fewer bytes than blocks to sum");
  const sums = new Uint8Array(count * SUM_BYTES);
  for (let i = 0; i < count; i++) bodyCheck(bytes, i * blockBytes, (i + 1) * blockBytes, sums, i * SUM_BYTES);
  return sums;
}
