// Status block codec (pure). Two slots (blocks 1 and 2) rewritten alternately, so a torn rewrite
// leaves the other slot valid; readers take the valid slot with the higher (epoch, generation).
// Byte layout, format version 2 (docs/format.md):
//   0 magic u32 | 4 version u16 | 6 slot u16 | 8 volumeUuid 16 | 24 epoch u64 | 32 generation u64
//  40 headSeq u64 | 48 headBlock u64 | 56 oldestSeq u64 | 64 heartbeat u64 | 72 wallClockMs u64
//  80 rows u16 | 82 reserved 6 | 88 peer rows 15 x 40 {node u32, flags u32, ackEpoch u64, ackSeq u64,
//  deliveredEpoch u64, deliveredSeq u64} | 688 check 32 (CRC32C of 0..688 in its first 4 bytes; rest zero
// when authMode is none, a truncated HMAC-SHA256 under the status MAC key when keyed: sealed.ts) | 720.
// The pair's fields (ackEpoch..deliveredSeq) are row 0; a pair writes one row with node 0 (the
// superblock's peer), a cluster one row per peer with its node id (`peers`).
import { FORMAT_VERSION, MAX_PEER_ROWS, STATUS_MAGIC } from "./layout.ts";
import { isSealProblem, seal, unseal } from "./sealed.ts";
import { readUuid, writeUuid } from "./uuid.ts";

export const STATUS_BYTES = 720;
const CHECK_AT = 688;
const ROWS_AT = 88;
const ROW_BYTES = 40;

/** Peer row flag: this node's writer declared the peer down and no longer holds its ring back for it. */
export const PEER_RELEASED = 1 << 0;

/** What this node says about one peer: its ack and delivered mark of that peer's ring. */
export interface PeerRow {
  /** The peer's node id (1..255); 0 only in a pair's single row (the superblock's peer). */
  node: number;
  /** PEER_RELEASED or 0. */
  flags: number;
  ackEpoch: bigint;
  ackSeq: bigint;
  deliveredEpoch: bigint;
  deliveredSeq: bigint;
}

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
  /**
   * A cluster's rows, one per peer read (1..15, distinct non-zero node ids); row 0 is also in the
   * pair fields above. Absent: the pair's single row (node 0) made of those fields.
   */
  peers?: readonly PeerRow[];
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
  v.setBigUint64(64, status.heartbeat, true);
  v.setBigUint64(72, status.wallClockMs, true);
  const rows = status.peers ?? [{ node: 0, flags: 0, ackEpoch: status.ackEpoch, ackSeq: status.ackSeq, deliveredEpoch: status.deliveredEpoch, deliveredSeq: status.deliveredSeq }];
  const problem = rowsProblem(rows);
  if (problem !== undefined) throw new Error(`assertion failed: status rows: ${problem}`);
  v.setUint16(80, rows.length, true);
  rows.forEach((row, j) => {
    const at = ROWS_AT + j * ROW_BYTES;
    v.setUint32(at, row.node, true);
    v.setUint32(at + 4, row.flags, true);
    v.setBigUint64(at + 8, row.ackEpoch, true);
    v.setBigUint64(at + 16, row.ackSeq, true);
    v.setBigUint64(at + 24, row.deliveredEpoch, true);
    v.setBigUint64(at + 32, row.deliveredSeq, true);
  });
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
  const count = v.getUint16(80, true);
  if (count < 1 || count > MAX_PEER_ROWS) return { ok: false, reason: "checksum", detail: `${count} peer rows, expected 1..${MAX_PEER_ROWS}` };
  const rows: PeerRow[] = [];
  for (let j = 0; j < count; j++) {
    const at = ROWS_AT + j * ROW_BYTES;
    rows.push({
      node: v.getUint32(at, true),
      flags: v.getUint32(at + 4, true),
      ackEpoch: v.getBigUint64(at + 8, true),
      ackSeq: v.getBigUint64(at + 16, true),
      deliveredEpoch: v.getBigUint64(at + 24, true),
      deliveredSeq: v.getBigUint64(at + 32, true),
    });
  }
  const problem = rowsProblem(rows) ?? (block.subarray(82, 88).some((b) => b !== 0) || block.subarray(ROWS_AT + count * ROW_BYTES, CHECK_AT).some((b) => b !== 0) ? "reserved bytes or unused rows are not zero" : undefined);
  if (problem !== undefined) return { ok: false, reason: "checksum", detail: problem };
  const first = rows[0]!;
  const status: StatusBlock = {
    slot,
    volumeUuid: readUuid(block, 8),
    epoch: v.getBigUint64(24, true),
    generation: v.getBigUint64(32, true),
    headSeq: v.getBigUint64(40, true),
    headBlock: v.getBigUint64(48, true),
    oldestSeq: v.getBigUint64(56, true),
    ackEpoch: first.ackEpoch,
    ackSeq: first.ackSeq,
    heartbeat: v.getBigUint64(64, true),
    deliveredEpoch: first.deliveredEpoch,
    deliveredSeq: first.deliveredSeq,
    wallClockMs: v.getBigUint64(72, true),
  };
  if (count > 1 || first.node !== 0 || first.flags !== 0) status.peers = rows;
  return { ok: true, status };
}

/** This node's row about `node` (the pair's row 0 answers for any node), or undefined. */
export function peerRow(status: StatusBlock, node: number): PeerRow | undefined {
  if (status.peers === undefined) return { node: 0, flags: 0, ackEpoch: status.ackEpoch, ackSeq: status.ackSeq, deliveredEpoch: status.deliveredEpoch, deliveredSeq: status.deliveredSeq };
  return status.peers.find((row) => row.node === node || row.node === 0);
}

/** Why rows cannot be encoded: 1..15 of them, node 0 only alone (the pair's), distinct ids, known flags. */
function rowsProblem(rows: readonly PeerRow[]): string | undefined {
  if (rows.length < 1 || rows.length > MAX_PEER_ROWS) return `${rows.length} rows, expected 1..${MAX_PEER_ROWS}`;
  const seen = new Set<number>();
  for (const row of rows) {
    if (!Number.isInteger(row.node) || row.node < 0 || row.node > 0xffffffff) return `node id ${row.node}`;
    if (row.node === 0 && rows.length > 1) return "node 0 (the pair's peer) in a row of several";
    if (seen.has(row.node)) return `node ${row.node} twice`;
    seen.add(row.node);
    if ((row.flags & ~PEER_RELEASED) !== 0) return `unknown flags 0x${row.flags.toString(16)}`;
  }
  return undefined;
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
