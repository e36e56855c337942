// The one stamp scanner of the ring: visits every stamped block in ring order from a start block
// (wrapping at the ring end), reading bounded batches into one buffer of its own, and stops when the
// visitor says so. Built on it: scanRing (format and writer open: the highest seq, so sequences
// never repeat; the record starts a restarted writer must not overwrite blindly), the reader's seek,
// damage skip and overrun resume (findOldestAfter), and inspect.
import { RING_START_BLOCK } from "../format/layout.ts";
import { readRecordStart, readStamp, type Stamp } from "../format/record.ts";
import type { Volume } from "../io/volume.ts";

/** Ring blocks read per request while scanning (the bound of the scanner's buffer). */
export const SCAN_BATCH_BLOCKS = 256;

export interface StampScanOptions {
  /** First ring block visited (default 0); the scan wraps at the ring end. */
  fromBlock?: number;
  /** Blocks visited at most (default and bound: the whole ring once). */
  limitBlocks?: number;
  batchBlocks?: number;
}

/**
 * A stamped block: its stamp, its ring block, and the batch it lies in at `at` (valid during the
 * call only). Returning true stops the scan.
 */
export type StampVisitor = (stamp: Stamp, ringBlock: number, batch: Uint8Array, at: number) => boolean | void | Promise<boolean | void>;

/** Visits the stamped blocks; resolves true if the visitor stopped the scan. */
export async function scanStamps(volume: Volume, blockBytes: number, ringBlocks: number, visit: StampVisitor, options: StampScanOptions = {}): Promise<boolean> {
  const batchBlocks = options.batchBlocks ?? SCAN_BATCH_BLOCKS;
  const limitBlocks = Math.min(options.limitBlocks ?? ringBlocks, ringBlocks);
  const buffer = volume.alloc(Math.min(batchBlocks, ringBlocks) * blockBytes);
  let block = (options.fromBlock ?? 0) % ringBlocks;
  for (let done = 0; done < limitBlocks; ) {
    const count = Math.min(batchBlocks, limitBlocks - done, ringBlocks - block);
    const view = buffer.subarray(0, count * blockBytes);
    await volume.read((RING_START_BLOCK + block) * blockBytes, view);
    for (let i = 0; i < count; i++) {
      const stamp = readStamp(view, i * blockBytes);
      if (stamp !== undefined && (await visit(stamp, block + i, view, i * blockBytes)) === true) return true;
    }
    done += count;
    block = (block + count) % ringBlocks;
  }
  return false;
}

/** The record start (stamp index 0) of `seq`, else of the lowest seq above it, within limitBlocks from ring block 0. */
export async function findRecordStart(volume: Volume, blockBytes: number, ringBlocks: number, seq: bigint, limitBlocks = ringBlocks): Promise<{ seq: bigint; block: number } | undefined> {
  let best: { seq: bigint; block: number } | undefined;
  const visit = (stamp: Stamp, block: number): boolean => {
    if (stamp.blockIndex !== 0 || stamp.seq < seq) return false;
    if (best === undefined || stamp.seq < best.seq) best = { seq: stamp.seq, block };
    return best.seq === seq;
  };
  await scanStamps(volume, blockBytes, ringBlocks, visit, { limitBlocks });
  return best;
}

/**
 * After an overrun at ring block `fromBlock` (the record of `afterSeq` there was overwritten by the
 * newer record of `newerSeq`): the oldest record start with a seq above `afterSeq`, where the reader
 * resumes, provided a record the writer holds (no-overwrite: control it waits for the ack of) lies
 * intact in (afterSeq, newerSeq); else undefined (the reader resumes at the newer record). In ring
 * order from any block, record starts rise in seq and fall once, at the writer's head, where the lap
 * not yet overwritten begins; so from fromBlock the first start whose seq falls below the previous
 * one is the oldest intact record (without a fall within one ring, the lowest start seen). Starts at
 * or below `afterSeq` (remnants) are ignored. Why only with a held record: the oldest intact record
 * is the writer's very next overwrite, so a reader that resumes there while the writer keeps its pace
 * is lapped again at once, poll after poll, and delivers nothing (a writer with controlWaitsForAck
 * false, the link's, holds nothing); a held record stops the writer, so resuming before it ends there.
 * A record start found is only a stamp: the reader's table still checks the record there (and a
 * write landing on it meanwhile is one more overrun). Bound: one ring; it stops early once the fall
 * and a held record were seen.
 */
export async function findOldestAfter(volume: Volume, blockBytes: number, ringBlocks: number, fromBlock: number, afterSeq: bigint, newerSeq: bigint): Promise<{ seq: bigint; block: number } | undefined> {
  let lowest: { seq: bigint; block: number } | undefined;
  let previousSeq = -1n;
  let fell = false;
  let held = false;
  const visit = (stamp: Stamp, block: number, batch: Uint8Array, at: number): boolean => {
    if (stamp.blockIndex !== 0 || stamp.seq <= afterSeq) return false;
    if (lowest === undefined || stamp.seq < lowest.seq) lowest = { seq: stamp.seq, block };
    if (stamp.seq < previousSeq) fell = true;
    previousSeq = stamp.seq;
    if (!held && stamp.seq < newerSeq && readRecordStart(batch, at)?.noOverwrite === true) held = true;
    return fell && held;
  };
  await scanStamps(volume, blockBytes, ringBlocks, visit, { fromBlock });
  return held ? lowest : undefined;
}

export interface RingScan {
  /** Highest stamp seq found, 0n if none. */
  highestSeq: bigint;
  /** Ring block just after the record holding highestSeq (wrapped to 0 at the ring end). */
  nextBlock: bigint;
  /** Lowest seq of a record start (stamp index 0) found, 0n if none: where the oldest data may be. */
  lowestStartSeq: bigint;
  /** Every record start with an intact header, oldest first: what a restarted writer must not overwrite blindly. */
  records: { seq: bigint; startBlock: number; blocks: number; noOverwrite: boolean }[];
}

export async function scanRing(volume: Volume, blockBytes: number, ringBlocks: bigint, batchBlocks = SCAN_BATCH_BLOCKS): Promise<RingScan> {
  let highestSeq = 0n;
  let nextBlock = 0n;
  let lowestStartSeq = 0n;
  const records: RingScan["records"] = [];
  await scanStamps(
    volume,
    blockBytes,
    Number(ringBlocks),
    (stamp, block, batch, at) => {
      if (stamp.blockIndex === 0) {
        if (lowestStartSeq === 0n || stamp.seq < lowestStartSeq) lowestStartSeq = stamp.seq;
        const start = readRecordStart(batch, at);
        if (start !== undefined) records.push({ seq: stamp.seq, startBlock: block, blocks: start.blockCount, noOverwrite: start.noOverwrite });
      }
      if (stamp.seq <= highestSeq) return;
      highestSeq = stamp.seq;
      const end = BigInt(block) - BigInt(stamp.blockIndex) + BigInt(Math.max(1, stamp.blockCount));
      nextBlock = end >= ringBlocks || end < 0n ? 0n : end;
    },
    { batchBlocks },
  );
  records.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  return { highestSeq, nextBlock, lowestStartSeq, records };
}
