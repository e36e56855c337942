// Formatting and opening superblocks on real files: refusal, conflicts, repair, sequence continuity.
import test from "ava";

import { FrameType, RING_START_BLOCK } from "../../lib/format/layout.ts";
import { RecordBuilder } from "../../lib/format/record.ts";
import { encodeSuperblock } from "../../lib/format/superblock.ts";
import { uuidBytes } from "../../lib/format/uuid.ts";
import { ErrorCode, LunlinkError, Volume } from "../../lib/index.ts";
import { formatVolume, openSuperblock } from "../../lib/ring/superblocks.ts";
import { sparseFile } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;

async function volumeOf(t: Parameters<typeof sparseFile>[0], sizeBytes = 8 * MiB) {
  const volume = await Volume.open(await sparseFile(t, sizeBytes), { dsync: true });
  t.teardown(() => volume.close());
  return volume;
}


test("format writes both superblock copies and a status slot; open reads them back", async (t) => {
  const volume = await volumeOf(t);
  const { superblock } = await formatVolume(volume, { writerNode: 7, peerNode: 9 });
  t.is(superblock.blockBytes, 4096);
  t.is(superblock.volumeBlocks, BigInt((8 * MiB) / 4096));
  t.is(superblock.ringBlocks, superblock.volumeBlocks - 4n);
  t.is(superblock.epochStartSeq, 1n);
  const opened = await openSuperblock(volume);
  t.is(opened.repair, "none");
  t.is(opened.superblock.volumeUuid, superblock.volumeUuid);
  t.is(opened.superblock.writerNode, 7);
});

test("format refuses a formatted or non-blank volume without force", async (t) => {
  const volume = await volumeOf(t);
  await formatVolume(volume, { writerNode: 1, peerNode: 2 });
  const again = await t.throwsAsync(formatVolume(volume, { writerNode: 1, peerNode: 2 }));
  t.is((again as LunlinkError).code, ErrorCode.AlreadyFormatted);
  const junk = await volumeOf(t);
  const block = junk.alloc(4096);
  block.fill(0x5a);
  await junk.write(0, block);
  const dirty = await t.throwsAsync(formatVolume(junk, { writerNode: 1, peerNode: 2 }));
  t.is((dirty as LunlinkError).code, ErrorCode.AlreadyFormatted);
  t.regex(dirty.message, /copy A: magic/);
  await t.notThrowsAsync(formatVolume(junk, { writerNode: 1, peerNode: 2, force: true }));
});

test("a reformat continues sequences above every stamp left in the old ring", async (t) => {
  const volume = await volumeOf(t);
  const first = await formatVolume(volume, { writerNode: 1, peerNode: 2 });
  // A record with seq 500 (and a torn one with seq 900: only its second block survived).
  const record = volume.alloc(2 * 4096);
  const builder = new RecordBuilder(record, 4096, 2);
  builder.append(FrameType.Data, 0, new Uint8Array(5000));
  builder.finish({ volumeUuid: uuidBytes(first.superblock.volumeUuid), epoch: 1n, seq: 500n, timestampMs: 0n });
  await volume.write(RING_START_BLOCK * 4096, record);
  builder.reset();
  builder.append(FrameType.Data, 0, new Uint8Array(5000));
  builder.finish({ volumeUuid: uuidBytes(first.superblock.volumeUuid), epoch: 1n, seq: 900n, timestampMs: 0n });
  await volume.write((RING_START_BLOCK + 100) * 4096, record.subarray(4096));
  const second = await formatVolume(volume, { writerNode: 1, peerNode: 2, force: true, scanBatchBlocks: 7 });
  t.is(second.previousHighestSeq, 900n);
  t.is(second.superblock.epochStartSeq, 901n);
  t.not(second.superblock.volumeUuid, first.superblock.volumeUuid);
});

test("a damaged copy is reported for repair; disagreeing copies are a conflict; blank is not formatted", async (t) => {
  const volume = await volumeOf(t);
  const { superblock } = await formatVolume(volume, { writerNode: 1, peerNode: 2 });
  const lastOffset = (superblock.volumeBlocks - 1n) * 4096n;
  const block = volume.alloc(4096);
  // Copy A torn: copy B is used and A must be repaired.
  block.fill(0x11);
  await volume.write(0, block);
  const fromB = await openSuperblock(volume);
  t.is(fromB.repair, "a");
  t.is(fromB.superblock.volumeUuid, superblock.volumeUuid);
  // Copy A restored, copy B from another volume: conflict.
  encodeSuperblock(superblock, block);
  await volume.write(0, block);
  encodeSuperblock({ ...superblock, volumeUuid: "00000000-0000-4000-8000-000000000001" }, block);
  await volume.write(lastOffset, block);
  const conflict = await t.throwsAsync(openSuperblock(volume));
  t.is((conflict as LunlinkError).code, ErrorCode.SuperblockConflict);
  // Copy B with a higher epoch wins, and A is to be repaired.
  encodeSuperblock({ ...superblock, epoch: 5n }, block);
  await volume.write(lastOffset, block);
  const newer = await openSuperblock(volume);
  t.is(newer.superblock.epoch, 5n);
  t.is(newer.repair, "a");

  const blank = await volumeOf(t);
  const none = await t.throwsAsync(openSuperblock(blank));
  t.is((none as LunlinkError).code, ErrorCode.NotFormatted);
  t.regex(none.message, /run lunlink format/);
});

test("bad format options get coded errors", async (t) => {
  const volume = await volumeOf(t, 64 * 1024);
  const tooSmall = await t.throwsAsync(formatVolume(volume, { writerNode: 1, peerNode: 2, ringBlocks: 100n }));
  t.is((tooSmall as LunlinkError).code, ErrorCode.VolumeTooSmall);
  for (const options of [
    { writerNode: 0, peerNode: 2 },
    { writerNode: 1, peerNode: 1 },
    { writerNode: 1, peerNode: 2, blockBytes: 1000 },
    { writerNode: 1, peerNode: 2, pairUuid: "not-a-uuid" },
  ]) {
    const error = await t.throwsAsync(formatVolume(volume, options));
    t.is((error as LunlinkError).code, ErrorCode.InvalidArgument, JSON.stringify(options));
  }
});
