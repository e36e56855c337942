// The RingReader's public surface (re-exported by reader.ts): its options, visitors, outcomes and
// counters, and the checks RingReader.open makes before reading anything (options, and that the
// volume is this node's receive volume).
import { AuthMode } from "../format/layout.ts";
import type { Superblock } from "../format/superblock.ts";
import { ErrorCode, LunlinkError, invalidArgument } from "../errors.ts";
import type { RingObserver } from "./fault-memory.ts";
import type { RingAuth } from "./keys.ts";

export interface RingReaderOptions {
  /** This node: the receive volume's superblock must name it as the peer. */
  nodeId: number;
  /** The expected writer; default: whatever the superblock names (not the local node). */
  peerNodeId?: number;
  /** The expected pair UUID, if configured. */
  pairUuid?: string;
  /**
   * Where to begin: the writer's head (default: only new records), the oldest intact, a seq, or a
   * restart after the ack this node persisted: records after it are read again, but only their
   * control frames are delivered; data written before the restart is stale and dropped (counted).
   */
  start?: "head" | "oldest" | { seq: bigint } | { afterAck: bigint };
  /** A slot that stays invalid this long while the writer is past it is damaged and skipped (default 1000 ms). */
  damageTimeoutMs?: number;
  /** Bound of the resync scan for a sequence, in blocks (default: the whole ring). */
  scanLimitBlocks?: number;
  /**
   * After an overrun, look for a record the writer holds (unacked control, controlWaitsForAck) among
   * the intact records after ours, reading up to one ring, and resume at the oldest of them if there
   * is one (default true: such a record is then delivered, not skipped). Readers of a writer that
   * holds nothing (the link's and a cluster's send rings: controlWaitsForAck false) pass false and
   * resume at the newer record at once, with no scan: on a large LUN that scan is a read of the
   * whole ring each time a reader falls a lap behind.
   */
  resumeAtOldest?: boolean;
  /**
   * Keyed mode: verify everything under keys derived from auth.key. A volume without authentication
   * is refused (ERR_LUNLINK_DOWNGRADE), one keyed under another key too (ERR_LUNLINK_WRONG_KEY).
   */
  auth?: RingAuth;
  /**
   * Keyed: the highest (epoch, seq) delivered before (what the link persisted): records at or below it
   * are refused and counted in `replays`, so an old epoch restored onto the volume is never delivered again.
   */
  notBefore?: { epoch: bigint; seq: bigint };
  /**
   * Keyless mirrors: check only the plaintext framing (stamps, header CRC32C; XXH3 of unkeyed
   * records) and deliver no frames; required to follow a keyed ring without its key.
   */
  framingOnly?: boolean;
  /** Told of each fault counted (once per bad record, not per re-read) and each record delivered. */
  observer?: RingObserver;
  /** The clock of the damage timer (default performance.now): tests pass a fake one. */
  now?: () => number;
}

export type FrameVisitor = (seq: bigint, type: number, flags: number, bytes: Uint8Array, offset: number, length: number) => void;

/** Sees each verified record (pads too) as raw blocks, before its frames: the mirror copies these. */
export type RecordVisitor = (record: Uint8Array, ringBlock: number, seq: bigint) => void | Promise<void>;

export type PollOutcome =
  | "delivered" // a valid record: its frames were visited
  | "pad" // end of lap: continued at ring block 0
  | "waiting" // nothing new (empty, older lap, stale epoch, torn while being written)
  | "overrun" // the writer lapped the reader: lost records counted, resynced
  | "damaged" // a record stayed invalid past damageTimeoutMs: counted and skipped
  | "refused" // keyed: an authentic record at or below notBefore / the last delivered: counted in replays, skipped
  | "epoch"; // the writer started a new epoch: resumed at its start

export interface RingReaderCounters {
  records: number;
  frames: number;
  pads: number;
  lost: bigint;
  overruns: number;
  damaged: number;
  tornSeen: number;
  epochChanges: number;
  /** Data frames dropped because they were written before a reader restart (start: afterAck). */
  staleDataDropped: number;
  /** Keyed: superblock, status or record whose MAC/tag failed (forged, other key, flipped, moved). */
  authFailures: number;
  /** Keyed: unauthenticated content where keyed content belongs (status without MAC, record without the flag). */
  downgrades: number;
  /** Keyed: authentic but old content refused (records <= notBefore/delivered, older status or superblock). */
  replays: number;
}

export function newReaderCounters(): RingReaderCounters {
  return { records: 0, frames: 0, pads: 0, lost: 0n, overruns: 0, damaged: 0, tornSeen: 0, epochChanges: 0, staleDataDropped: 0, authFailures: 0, downgrades: 0, replays: 0 };
}

export function checkReaderOptions(options: RingReaderOptions): void {
  if (!Number.isInteger(options.nodeId) || options.nodeId < 1) throw invalidArgument("nodeId", "an integer in 1..4294967295", options.nodeId);
  if (options.auth !== undefined && options.framingOnly === true) throw invalidArgument("framingOnly", "false with auth (a keyed reader verifies everything)", true);
  if (options.notBefore !== undefined && options.auth === undefined) throw invalidArgument("notBefore", "given only with auth (anti-replay needs authentication)", options.notBefore);
}

/** Refuses a volume that is not `options.nodeId`'s receive volume, or a keyed one read without its key. */
export function checkReceiveVolume(path: string, superblock: Superblock, options: RingReaderOptions): void {
  if (options.auth === undefined && superblock.authMode === AuthMode.Keyed && options.framingOnly !== true) {
    throw new LunlinkError(ErrorCode.KeyRequired, `${path} is a keyed volume (authMode keyed): reading its frames needs the ring key (auth.key)`, { path });
  }
  const wrong = (why: string): LunlinkError => new LunlinkError(ErrorCode.WrongPair, `${path} cannot be node ${options.nodeId}'s receive volume: ${why}`, { path });
  if (superblock.writerNode === options.nodeId) throw wrong(`it is node ${options.nodeId}'s own send volume`);
  // peerNode 0: a ring of a cluster of more than two nodes, read by every member (lib/ring/cluster.ts checks membership).
  if (superblock.peerNode !== options.nodeId && superblock.peerNode !== 0) throw wrong(`it is written by node ${superblock.writerNode} for node ${superblock.peerNode}`);
  if (options.peerNodeId !== undefined && superblock.writerNode !== options.peerNodeId) throw wrong(`its writer is node ${superblock.writerNode}, expected ${options.peerNodeId}`);
  if (options.pairUuid !== undefined && superblock.pairUuid !== options.pairUuid) throw wrong(`it belongs to pair ${superblock.pairUuid}, expected ${options.pairUuid}`);
}

/** A record or status of another volume where this one's belongs (found while following). */
export function wrongPair(path: string, foundUuid: string, volumeUuid: string, seq: bigint): LunlinkError {
  return new LunlinkError(ErrorCode.WrongPair, `${path}: found a record of volume ${foundUuid} where volume ${volumeUuid}'s seq ${seq} belongs (reformatted, or another pair's volume)`, { path });
}
