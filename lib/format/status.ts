// Status block codec (pure). Two slots (blocks 1 and 2) rewritten alternately, so a torn rewrite
// leaves the other slot valid; readers take the valid slot with the higher (epoch, generation).
// Byte layout (docs/format.md):
//   0 magic u32 | 4 version u16 | 6 slot u16 | 8 volumeUuid 16 | 24 epoch u64 | 32 generation u64
//  40 headSeq u64 | 48 headBlock u64 | 56 oldestSeq u64 | 64 ackEpoch u64 | 72 ackSeq u64
//  80 heartbeat u64 | 88 deliveredEpoch u64 | 96 deliveredSeq u64 | 104 wallClockMs u64
// 112 check 32 (CRC32C of 0..112 in its first 4 bytes; rest zero when authMode is none, a truncated
// HMAC-SHA256 under the status MAC key when keyed: sealed.ts) | 144 end.
import { FORMAT_VERSION, STATUS_MAGIC } from "./layout.ts";
import { isSealProblem, seal, unseal } from "./sealed.ts";
import { readUuid, writeUuid } from "./uuid.ts";

export const STATUS_BYTES = 144;
const CHECK_AT = 112;

export interface StatusBlock {
  slot: 0 | 1;
  volumeUuid: string;
  epoch: bigint;
  /** Bumped on every rewrite; orders the two slots within an epoch. */
  generation: bigint;
  /** Next sequence the writer will use, and the ring block (relative to the ring start) it goes to. */
  headSeq: bigint;
  headBlock: bigint;
  /** Oldest sequence still intact in the ring (for inspect and reader restart). */
  oldestSeq: bigint;
  /** Highest (epoch, seq) this node received from its peer: frees ring space on the peer. */
  ackEpoch: bigint;
  ackSeq: bigint;
  /** Storage heartbeat counter: advances on every status write. */
  heartbeat: bigint;
  /**
   * Highest authenticated (epoch, seq) delivered from the peer (anti-replay across restarts): the
   * link's high-water mark, kept apart from the ack; the writer never lowers it, across restarts too.
   */
  deliveredEpoch: bigint;
  deliveredSeq: bigint;
  wallClockMs: bigint;
}

export type StatusDecode =
  | { ok: true; status: StatusBlock }
  | { ok: false; reason: "blank" | "magic" | "version" | "checksum" | "auth" | "downgrade"; detail: string };

/** Encodes and seals; `macKey` (keyed volumes) adds the MAC to the check area. */
export function encodeStatus(status: StatusBlock, out: Uint8Array, macKey?: Uint8Array): void {
  if (out.length < STATUS_BYTES) throw new Error("assertion failed: status buffer too small");
  out.fill(0);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(0, STATUS_MAGIC, true);
  v.setUint16(4, FORMAT_VERSION, true);
  v.setUint16(6, status.slot, true);
  writeUuid(out, 8, status.volumeUuid);
  v.setBigUint64(24, status.epoch, true);
  v.setBigUint64(32, status.generation, true);
  v.setBigUint64(40, status.headSeq, true);
  v.setBigUint64(48, status.headBlock, true);
  v.setBigUint64(56, status.oldestSeq, true);
  v.setBigUint64(64, status.ackEpoch, true);
  v.setBigUint64(72, status.ackSeq, true);
  v.setBigUint64(80, status.heartbeat, true);
  v.setBigUint64(88, status.deliveredEpoch, true);
  v.setBigUint64(96, status.deliveredSeq, true);
  v.setBigUint64(104, status.wallClockMs, true);
  seal(out, CHECK_AT, macKey);
}

/**
 * Decodes a status slot. With `macKey` the MAC must verify (absent: "downgrade", wrong: "auth");
 * "unverified" (keyless mirrors and inspection of a keyed volume): only the CRC32C is checked and a
 * MAC is left unverified; neither: an unkeyed slot, whose MAC bytes must be zero.
 */
export function decodeStatus(block: Uint8Array, macKey?: Uint8Array | "unverified"): StatusDecode {
  if (block.length < STATUS_BYTES) return { ok: false, reason: "checksum", detail: `block of ${block.length} bytes` };
  const v = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const sealed = unseal(block, STATUS_MAGIC, CHECK_AT, macKey);
  if (isSealProblem(sealed)) return { ok: false, ...sealed };
  const version = v.getUint16(4, true);
  if (version !== FORMAT_VERSION) return { ok: false, reason: "version", detail: `format version ${version}` };
  const slot = v.getUint16(6, true);
  if (slot !== 0 && slot !== 1) return { ok: false, reason: "checksum", detail: `slot ${slot}` };
  return {
    ok: true,
    status: {
      slot,
      volumeUuid: readUuid(block, 8),
      epoch: v.getBigUint64(24, true),
      generation: v.getBigUint64(32, true),
      headSeq: v.getBigUint64(40, true),
      headBlock: v.getBigUint64(48, true),
      oldestSeq: v.getBigUint64(56, true),
      ackEpoch: v.getBigUint64(64, true),
      ackSeq: v.getBigUint64(72, true),
      heartbeat: v.getBigUint64(80, true),
      deliveredEpoch: v.getBigUint64(88, true),
      deliveredSeq: v.getBigUint64(96, true),
      wallClockMs: v.getBigUint64(104, true),
    },
  };
}

/** The newer of two decoded slots by (epoch, generation); undefined if neither is valid. */
export function pickStatus(a: StatusDecode, b: StatusDecode): StatusBlock | undefined {
  if (!a.ok) return b.ok ? b.status : undefined;
  if (!b.ok) return a.status;
  const x = a.status;
  const y = b.status;
  if (x.epoch !== y.epoch) return x.epoch > y.epoch ? x : y;
  return x.generation >= y.generation ? x : y;
}
