// Ring inspection for `lunlink inspect`: walks every block once (scan.ts scanStamps), checks each
// record start it finds (stamp, header, every block's stamp, body check) and reports counts, the
// sequence range of intact records, and where damage is. Read-only; never trusts a length before
// its checksum passed. Keyless: on a keyed ring it checks the plaintext framing only.
import { MAX_RECORD_BLOCKS, RING_START_BLOCK, RecordKind } from "../format/layout.ts";
import { checkBody, checkFirstBlock } from "../format/record.ts";
import type { Superblock } from "../format/superblock.ts";
import { uuidBytes } from "../format/uuid.ts";
import type { Volume } from "../io/volume.ts";
import { scanStamps } from "./scan.ts";

export interface RingReport {
  records: number;
  pads: number;
  frames: number;
  /** Record starts whose stamp, header, blocks or body check fail (torn, damaged or half-overwritten). */
  invalid: number;
  oldestSeq: bigint | null;
  newestSeq: bigint | null;
  epochs: bigint[];
  /** The first invalid record starts: seq, byte offset on the volume, why. */
  damage: { seq: bigint; offsetBytes: bigint; reason: string }[];
}

const MAX_DAMAGE_LISTED = 20;

export async function inspectRing(volume: Volume, superblock: Superblock): Promise<RingReport> {
  const B = superblock.blockBytes;
  const ringBlocks = Number(superblock.ringBlocks);
  const uuid = uuidBytes(superblock.volumeUuid);
  const report: RingReport = { records: 0, pads: 0, frames: 0, invalid: 0, oldestSeq: null, newestSeq: null, epochs: [], damage: [] };
  const epochs = new Set<bigint>();
  const record = volume.alloc(Math.min(MAX_RECORD_BLOCKS, ringBlocks) * B);
  await scanStamps(volume, B, ringBlocks, async (stamp, block, batch, at) => {
    if (stamp.blockIndex !== 0) return;
    const offsetBytes = BigInt((RING_START_BLOCK + block) * B);
    const fail = (reason: string): void => {
      report.invalid++;
      if (report.damage.length < MAX_DAMAGE_LISTED) report.damage.push({ seq: stamp.seq, offsetBytes, reason });
    };
    const head = checkFirstBlock(batch.subarray(at, at + B), B, stamp.seq, uuid);
    if (head.kind !== "header") return fail(head.kind === "torn" ? head.detail : head.kind === "foreign" ? `record of volume ${head.volumeUuid}` : head.kind);
    if (block + head.header.blockCount > ringBlocks) return fail(`runs past the ring end (${head.header.blockCount} blocks at ring block ${block})`);
    const view = record.subarray(0, head.header.blockCount * B);
    await volume.read(offsetBytes, view);
    // No key here: a keyed record's framing (stamps, header CRC) is checked, its tag cannot be.
    const body = checkBody(view, B, head.header, "framing");
    if (body.kind !== "valid") return fail(body.kind === "newer" ? `block ${body.blockIndex} overwritten by seq ${body.seq}` : body.detail);
    epochs.add(head.header.epoch);
    if (head.header.kind === RecordKind.Pad) report.pads++;
    else {
      report.records++;
      report.frames += head.header.frameCount;
    }
    if (report.oldestSeq === null || stamp.seq < report.oldestSeq) report.oldestSeq = stamp.seq;
    if (report.newestSeq === null || stamp.seq > report.newestSeq) report.newestSeq = stamp.seq;
  });
  report.epochs = [...epochs].sort((a, b) => (a < b ? -1 : 1));
  return report;
}
