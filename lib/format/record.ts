// Record codec (pure): stamps, header, frames. A record is whole blocks; every block starts with a
// 16-byte stamp {magic, blockIndex, blockCount, seq}; the header follows the stamp in block 0; frames
// [type u8][flags u8][length u16][bytes] are packed into the rest, flowing around later stamps.
// Header (offsets within block 0; docs/format.md has the full table):
//  16 magic u32 | 20 version u8 | 21 kind u8 | 22 flags u16 | 24 volumeUuid 16 | 40 epoch u64 | 48 seq u64
//  56 payloadBytes u32 | 60 frameCount u16 | 62 reserved u16 | 64 timestampMs u64
//  72 bodyCheck 16: XXH3-128 of bytes [96, blockCount*B) (payload, later stamps, zeroed tail); keyed
//     (flag Authenticated): the ChaCha20-Poly1305 tag of the encrypted payload (record-cipher.ts)
//  88 reserved u32 (0) | 92 headerCrc u32: CRC32C of bytes [0, 92) (stamp 0 and header, bodyCheck included)
// Header and body are checked together: the header CRC covers the body check. No length is used
// before the CRC that covers it passed, and every length is bounded again before it indexes memory.
import { bodyCheck, bodyCheckMatches, crc32c } from "./checksum.ts";
import type { RecordCipher } from "./record-cipher.ts";
import {
  RECORD_VERSION,
  FRAME_HEADER_BYTES,
  MAX_FRAME_BYTES,
  MAX_RECORD_BLOCKS,
  RECORD_HEADER_END,
  RECORD_MAGIC,
  RecordFlag,
  RecordKind,
  STAMP_BYTES,
  STAMP_MAGIC,
  blocksForPayload,
  payloadCapacity,
} from "./layout.ts";
import { readUuid, uuidEquals } from "./uuid.ts";

const HEADER_CRC_AT = 92;
const BODY_CHECK_AT = 72;

export interface RecordHeader {
  kind: RecordKind;
  flags: number;
  epoch: bigint;
  seq: bigint;
  blockCount: number;
  payloadBytes: number;
  frameCount: number;
  timestampMs: bigint;
}

/**
 * How a record's body is sealed or checked: keyed (the epoch's cipher and the ring block the record
 * is written at, part of its associated data), or "framing" (a keyless mirror: an authenticated
 * record's tag cannot be checked, so only stamps and header CRC are; unkeyed records keep XXH3).
 */
export type BodyAuth = { cipher: RecordCipher; ringBlock: number } | "framing";

export interface RecordIdentity {
  /** The volume UUID, pre-encoded with uuidBytes(). */
  volumeUuid: Uint8Array;
  epoch: bigint;
  seq: bigint;
  timestampMs: bigint;
}

/**
 * Packs frames into a caller-owned buffer (an aligned I/O buffer, so the record is written without a
 * copy). Reused across records: reset() between them. Never allocates per frame.
 */
export class RecordBuilder {
  readonly blockBytes: number;
  readonly maxBlocks: number;
  private readonly buffer: Uint8Array;
  private readonly view: DataView;
  private payloadBytes = 0;
  private frameCount = 0;
  private flags = 0;

  constructor(buffer: Uint8Array, blockBytes: number, maxBlocks: number) {
    if (maxBlocks < 1 || maxBlocks > MAX_RECORD_BLOCKS) throw new Error(`assertion failed: maxBlocks ${maxBlocks}`);
    if (buffer.length < maxBlocks * blockBytes) throw new Error("assertion failed: record buffer smaller than maxBlocks");
    this.buffer = buffer;
    this.view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    this.blockBytes = blockBytes;
    this.maxBlocks = maxBlocks;
  }

  get frames(): number {
    return this.frameCount;
  }

  get bytes(): number {
    return this.payloadBytes;
  }

  /** The record holds a frame appended with noOverwrite (control). */
  get noOverwrite(): boolean {
    return (this.flags & RecordFlag.NoOverwrite) !== 0;
  }

  get blocks(): number {
    return blocksForPayload(this.blockBytes, this.payloadBytes);
  }

  reset(): void {
    this.payloadBytes = 0;
    this.frameCount = 0;
    this.flags = 0;
  }

  /** Whether a frame of `length` bytes still fits. */
  fits(length: number): boolean {
    return this.payloadBytes + FRAME_HEADER_BYTES + length <= payloadCapacity(this.blockBytes, this.maxBlocks) && this.frameCount < 0xffff;
  }

  /** Appends one frame; returns false (and changes nothing) if it does not fit. */
  append(type: number, frameFlags: number, payload: Uint8Array, noOverwrite = false): boolean {
    if (payload.length > MAX_FRAME_BYTES) throw new Error(`assertion failed: frame of ${payload.length} bytes`);
    if (!this.fits(payload.length)) return false;
    let at = this.physical(this.payloadBytes);
    // The 4-byte frame header may straddle a stamp: write it byte by byte through physical().
    const header = (type & 0xff) | ((frameFlags & 0xff) << 8) | (payload.length << 16);
    if (this.blockEnd(at) - at >= FRAME_HEADER_BYTES) {
      this.view.setUint32(at, header >>> 0, true);
    } else {
      for (let i = 0; i < FRAME_HEADER_BYTES; i++) this.buffer[this.physical(this.payloadBytes + i)] = (header >>> (8 * i)) & 0xff;
    }
    let logical = this.payloadBytes + FRAME_HEADER_BYTES;
    let copied = 0;
    while (copied < payload.length) {
      at = this.physical(logical);
      const chunk = Math.min(payload.length - copied, this.blockEnd(at) - at);
      this.buffer.set(chunk === payload.length ? payload : payload.subarray(copied, copied + chunk), at);
      copied += chunk;
      logical += chunk;
    }
    this.payloadBytes = logical;
    this.frameCount++;
    if (noOverwrite) this.flags |= RecordFlag.NoOverwrite;
    return true;
  }

  /** Seals the record: stamps, header, checks (keyed: encrypts the payload). Returns its length in blocks. */
  finish(id: RecordIdentity, kind: RecordKind = RecordKind.Batch, auth?: Exclude<BodyAuth, "framing">): number {
    const blocks = this.blocks;
    const B = this.blockBytes;
    // Zero the unused tail so the body check is deterministic.
    this.buffer.fill(0, this.physical(this.payloadBytes), blocks * B);
    for (let i = 0; i < blocks; i++) writeStamp(this.view, i * B, i, blocks, id.seq);
    const v = this.view;
    v.setUint32(16, RECORD_MAGIC, true);
    v.setUint8(20, RECORD_VERSION);
    v.setUint8(21, kind);
    v.setUint16(22, auth === undefined ? this.flags : this.flags | RecordFlag.Authenticated, true);
    this.buffer.set(id.volumeUuid, 24);
    v.setBigUint64(40, id.epoch, true);
    v.setBigUint64(48, id.seq, true);
    v.setUint32(56, this.payloadBytes, true);
    v.setUint16(60, this.frameCount, true);
    v.setUint16(62, 0, true);
    v.setBigUint64(64, id.timestampMs, true);
    v.setUint32(88, 0, true);
    if (auth === undefined) bodyCheck(this.buffer, RECORD_HEADER_END, blocks * B, this.buffer, BODY_CHECK_AT);
    else auth.cipher.seal(this.buffer, B, blocks, auth.ringBlock);
    v.setUint32(HEADER_CRC_AT, crc32c(this.buffer, 0, HEADER_CRC_AT), true);
    return blocks;
  }

  /** Buffer offset of logical payload byte `p`. */
  private physical(p: number): number {
    const first = this.blockBytes - RECORD_HEADER_END;
    if (p < first) return RECORD_HEADER_END + p;
    const rest = p - first;
    const per = this.blockBytes - STAMP_BYTES;
    return (1 + Math.floor(rest / per)) * this.blockBytes + STAMP_BYTES + (rest % per);
  }

  private blockEnd(at: number): number {
    return (Math.floor(at / this.blockBytes) + 1) * this.blockBytes;
  }
}

/** A pad record: one block saying "nothing more in this lap, continue at the ring start". */
export function encodePad(buffer: Uint8Array, blockBytes: number, id: RecordIdentity, auth?: Exclude<BodyAuth, "framing">): void {
  const builder = new RecordBuilder(buffer, blockBytes, 1);
  builder.finish(id, RecordKind.Pad, auth);
}

function writeStamp(v: DataView, at: number, index: number, count: number, seq: bigint): void {
  v.setUint32(at, STAMP_MAGIC, true);
  v.setUint16(at + 4, index, true);
  v.setUint16(at + 6, count, true);
  v.setBigUint64(at + 8, seq, true);
}

export interface Stamp {
  blockIndex: number;
  blockCount: number;
  seq: bigint;
}

/** The stamp at `at`, or undefined if the block carries no stamp magic (never written, or foreign). */
export function readStamp(bytes: Uint8Array, at = 0): Stamp | undefined {
  const v = new DataView(bytes.buffer, bytes.byteOffset + at, STAMP_BYTES);
  if (v.getUint32(0, true) !== STAMP_MAGIC) return undefined;
  return { blockIndex: v.getUint16(4, true), blockCount: v.getUint16(6, true), seq: v.getBigUint64(8, true) };
}

/**
 * The block count and no-overwrite flag of a record whose first block is at `at`, if its header
 * CRC is intact (the writer's scan at open; the body is not checked).
 */
export function readRecordStart(bytes: Uint8Array, at: number): { blockCount: number; noOverwrite: boolean } | undefined {
  const v = new DataView(bytes.buffer, bytes.byteOffset + at, RECORD_HEADER_END);
  if (v.getUint32(0, true) !== STAMP_MAGIC || v.getUint32(16, true) !== RECORD_MAGIC) return undefined;
  if (v.getUint32(HEADER_CRC_AT, true) !== crc32c(bytes, at, at + HEADER_CRC_AT)) return undefined;
  const blockCount = v.getUint16(6, true);
  if (blockCount < 1 || blockCount > MAX_RECORD_BLOCKS) return undefined;
  return { blockCount, noOverwrite: (v.getUint16(22, true) & RecordFlag.NoOverwrite) !== 0 };
}

/** What the first block at the reader's expected position says (see docs/format.md, decision table). */
export type FirstBlockVerdict =
  | { kind: "empty" }
  | { kind: "older"; seq: bigint }
  | { kind: "newer"; seq: bigint }
  | { kind: "torn"; detail: string }
  | { kind: "foreign"; volumeUuid: string }
  | { kind: "header"; header: RecordHeader };

export function checkFirstBlock(block: Uint8Array, blockBytes: number, expectedSeq: bigint, volumeUuid: Uint8Array): FirstBlockVerdict {
  const stamp = readStamp(block, 0);
  if (stamp === undefined) return { kind: "empty" };
  if (stamp.seq < expectedSeq) return { kind: "older", seq: stamp.seq };
  if (stamp.seq > expectedSeq) return { kind: "newer", seq: stamp.seq };
  if (stamp.blockIndex !== 0) return { kind: "torn", detail: `block ${stamp.blockIndex} of seq ${stamp.seq} where its first block belongs` };
  const v = new DataView(block.buffer, block.byteOffset, blockBytes);
  if (v.getUint32(16, true) !== RECORD_MAGIC) return { kind: "torn", detail: "stamp without a record header" };
  const storedCrc = v.getUint32(HEADER_CRC_AT, true);
  const crc = crc32c(block, 0, HEADER_CRC_AT);
  if (storedCrc !== crc) return { kind: "torn", detail: `header CRC32C 0x${storedCrc.toString(16)}, computed 0x${crc.toString(16)}` };
  // From here the header's bytes are what its writer wrote; still bound every field before use.
  if (!uuidEquals(block, 24, volumeUuid)) return { kind: "foreign", volumeUuid: readUuid(block, 24) };
  const version = v.getUint8(20);
  const kind = v.getUint8(21);
  const seq = v.getBigUint64(48, true);
  const payloadBytes = v.getUint32(56, true);
  const frameCount = v.getUint16(60, true);
  if (version !== RECORD_VERSION) return { kind: "torn", detail: `record version ${version}` };
  if (kind !== RecordKind.Batch && kind !== RecordKind.Pad) return { kind: "torn", detail: `record kind ${kind}` };
  if (seq !== stamp.seq) return { kind: "torn", detail: `header seq ${seq} under stamp seq ${stamp.seq}` };
  if (stamp.blockCount < 1 || stamp.blockCount > MAX_RECORD_BLOCKS) return { kind: "torn", detail: `block count ${stamp.blockCount}` };
  if (payloadBytes > payloadCapacity(blockBytes, stamp.blockCount) || blocksForPayload(blockBytes, payloadBytes) !== stamp.blockCount) {
    return { kind: "torn", detail: `payload of ${payloadBytes} bytes in ${stamp.blockCount} blocks` };
  }
  if (frameCount * FRAME_HEADER_BYTES > payloadBytes) return { kind: "torn", detail: `${frameCount} frames in ${payloadBytes} bytes` };
  if (kind === RecordKind.Pad && (stamp.blockCount !== 1 || payloadBytes !== 0)) return { kind: "torn", detail: "pad record with payload" };
  return {
    kind: "header",
    header: {
      kind: kind as RecordKind,
      flags: v.getUint16(22, true),
      epoch: v.getBigUint64(40, true),
      seq,
      blockCount: stamp.blockCount,
      payloadBytes,
      frameCount,
      timestampMs: v.getBigUint64(64, true),
    },
  };
}

export type BodyVerdict =
  | { kind: "valid" }
  | { kind: "torn"; detail: string }
  | { kind: "newer"; seq: bigint; blockIndex: number }
  /** Keyed: the AEAD tag does not verify (forged, replayed elsewhere, other key, corrupted). */
  | { kind: "auth"; detail: string }
  /** Keyed: the record is not authenticated at all (flag clear), or keyless without "framing" on a keyed record. */
  | { kind: "downgrade"; detail: string };

/**
 * Checks every later block's stamp and the body of a record whose first block passed: XXH3-128,
 * or with a cipher the AEAD tag (then the payload is decrypted in place), or with "framing" nothing
 * more for an authenticated record. A keyless check of an authenticated record fails ("auth"):
 * nothing of it can be trusted.
 */
export function checkBody(record: Uint8Array, blockBytes: number, header: RecordHeader, auth?: BodyAuth): BodyVerdict {
  const total = header.blockCount * blockBytes;
  if (record.length < total) throw new Error(`assertion failed: record buffer ${record.length} < ${total}`);
  for (let i = 1; i < header.blockCount; i++) {
    const stamp = readStamp(record, i * blockBytes);
    if (stamp === undefined) return { kind: "torn", detail: `block ${i} has no stamp` };
    if (stamp.seq > header.seq) return { kind: "newer", seq: stamp.seq, blockIndex: i };
    if (stamp.seq < header.seq) return { kind: "torn", detail: `block ${i} still holds seq ${stamp.seq}` };
    if (stamp.blockIndex !== i || stamp.blockCount !== header.blockCount) {
      return { kind: "torn", detail: `block ${i} stamped ${stamp.blockIndex}/${stamp.blockCount}` };
    }
  }
  const authenticated = (header.flags & RecordFlag.Authenticated) !== 0;
  if (auth !== undefined && auth !== "framing") {
    if (!authenticated) return { kind: "downgrade", detail: `record seq ${header.seq} is not authenticated (flag clear), a keyed record expected` };
    if (!auth.cipher.open(record, blockBytes, header.blockCount, auth.ringBlock)) {
      return { kind: "auth", detail: `record seq ${header.seq} epoch ${header.epoch}: AEAD tag does not verify` };
    }
    return { kind: "valid" };
  }
  if (authenticated) {
    if (auth === "framing") return { kind: "valid" };
    return { kind: "auth", detail: `record seq ${header.seq} is authenticated and no key was given to verify it` };
  }
  if (!bodyCheckMatches(record, RECORD_HEADER_END, total, record, BODY_CHECK_AT)) return { kind: "torn", detail: "body check (XXH3-128) mismatch" };
  return { kind: "valid" };
}

/**
 * Calls visit(type, flags, bytes, offset, length) for each frame, in order, without allocating:
 * a frame that lies in one block is passed as a range of `record`; one that straddles a stamp is
 * gathered into `scratch` (>= MAX_FRAME_BYTES) and passed from there. The range is only valid
 * during the call. Returns undefined, or why the frames do not parse (a writer bug or a forgery:
 * the body check passed).
 */
export function forEachFrame(
  record: Uint8Array,
  blockBytes: number,
  header: RecordHeader,
  scratch: Uint8Array,
  visit: (type: number, flags: number, bytes: Uint8Array, offset: number, length: number) => void,
): string | undefined {
  if (scratch.length < MAX_FRAME_BYTES) throw new Error("assertion failed: scratch smaller than a frame");
  const first = blockBytes - RECORD_HEADER_END;
  const per = blockBytes - STAMP_BYTES;
  const physical = (p: number): number =>
    p < first ? RECORD_HEADER_END + p : (1 + Math.floor((p - first) / per)) * blockBytes + STAMP_BYTES + ((p - first) % per);
  const gather = (p: number, length: number): void => {
    let done = 0;
    while (done < length) {
      const at = physical(p + done);
      const chunk = Math.min(length - done, (Math.floor(at / blockBytes) + 1) * blockBytes - at);
      scratch.set(record.subarray(at, at + chunk), done);
      done += chunk;
    }
  };
  let p = 0;
  for (let n = 0; n < header.frameCount; n++) {
    if (p + FRAME_HEADER_BYTES > header.payloadBytes) return `frame ${n} header at ${p} runs past the payload (${header.payloadBytes} bytes)`;
    gather(p, FRAME_HEADER_BYTES);
    const type = scratch[0]!;
    const flags = scratch[1]!;
    const length = scratch[2]! | (scratch[3]! << 8);
    p += FRAME_HEADER_BYTES;
    if (p + length > header.payloadBytes) return `frame ${n} of ${length} bytes at ${p} runs past the payload (${header.payloadBytes} bytes)`;
    const at = physical(p);
    if (length === 0 || at + length <= (Math.floor(at / blockBytes) + 1) * blockBytes) {
      visit(type, flags, record, at, length);
    } else {
      gather(p, length);
      visit(type, flags, scratch, 0, length);
    }
    p += length;
  }
  if (p !== header.payloadBytes) return `${header.payloadBytes - p} bytes after the last of ${header.frameCount} frames`;
  return undefined;
}
