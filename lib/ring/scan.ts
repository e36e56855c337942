// Ring scans: the highest sequence in any stamp (torn records too) and where its record ends.
// Used by format (sequences never repeat across a reformat) and by writer open (a new epoch starts
// above everything on the volume). Reads the ring in bounded batches.
import { RING_START_BLOCK } from "../format/layout.ts";
import { readRecordStart, readStamp } from "../format/record.ts";
import type { Volume } from "../io/volume.ts";

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

export async function scanRing(volume: Volume, blockBytes: number, ringBlocks: bigint, batchBlocks = 256): Promise<RingScan> {
  let highestSeq = 0n;
  let nextBlock = 0n;
  let lowestStartSeq = 0n;
  const records: RingScan["records"] = [];
  const buffer = volume.alloc(batchBlocks * blockBytes);
  for (let first = 0n; first < ringBlocks; first += BigInt(batchBlocks)) {
    const count = Number(ringBlocks - first < BigInt(batchBlocks) ? ringBlocks - first : BigInt(batchBlocks));
    const view = count === batchBlocks ? buffer : buffer.subarray(0, count * blockBytes);
    await volume.read((BigInt(RING_START_BLOCK) + first) * BigInt(blockBytes), view);
    for (let i = 0; i < count; i++) {
      const stamp = readStamp(view, i * blockBytes);
      if (stamp === undefined) continue;
      if (stamp.blockIndex === 0 && (lowestStartSeq === 0n || stamp.seq < lowestStartSeq)) lowestStartSeq = stamp.seq;
      if (stamp.blockIndex === 0) {
        const start = readRecordStart(view, i * blockBytes);
        if (start !== undefined) records.push({ seq: stamp.seq, startBlock: Number(first) + i, blocks: start.blockCount, noOverwrite: start.noOverwrite });
      }
      if (stamp.seq <= highestSeq) continue;
      highestSeq = stamp.seq;
      const end = first + BigInt(i) - BigInt(stamp.blockIndex) + BigInt(Math.max(1, stamp.blockCount));
      nextBlock = end >= ringBlocks || end < 0n ? 0n : end;
    }
  }
  records.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  return { highestSeq, nextBlock, lowestStartSeq, records };
}
