// A mirror copies the source's newer superblock copy. A writer opening an epoch writes copy B, syncs,
// then copy A: between the two, openSuperblock (and so the mirror's adoptEpoch) already reads the new
// epoch from B while A still holds the one before. The mirror used to copy A alone, so the
// destination kept the old epoch for good and its readers waited at the new epoch's first record
// until the writer restarted again (a loaded run of mirror-region.test.ts: 0 of 120 frames in 20 s).
// Here the source is left in that window on purpose: B written with the next epoch, A not yet.
import test from "ava";

import { RingWriter, Volume, formatVolume } from "../../lib/index.ts";
import { decodeSuperblock, encodeSuperblock } from "../../lib/format/superblock.ts";
import { LocalMirror } from "../../lib/mirror/local.ts";
import { openSuperblock } from "../../lib/ring/superblocks.ts";
import { sparseFile } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;

test("a resync in the middle of a writer's superblock update (B new, A old) gives the destination the new epoch in both copies", async (t) => {
  const a = await Volume.open(await sparseFile(t, 2 * MiB, "a.img"), { dsync: true });
  const b = await Volume.open(await sparseFile(t, 2 * MiB, "b.img"));
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  await formatVolume(a, { writerNode: 1, peerNode: 2, ringBlocks: 64n });
  const writer = await RingWriter.open(a, { nodeId: 1 });
  await writer.close();
  const { superblock: before } = await openSuperblock(a);
  // The next epoch's copy B is on the volume; its copy A is not yet (the writer's sync in between).
  const B = before.blockBytes;
  const lastOffset = (before.volumeBlocks - 1n) * BigInt(B);
  const next = { ...before, epoch: before.epoch + 1n };
  const block = a.alloc(B);
  encodeSuperblock(next, block);
  await a.write(lastOffset, block);
  const sourceA = decodeSuperblock(await a.read(0, B));
  t.true(sourceA.ok && sourceA.superblock.epoch === before.epoch, "the source's copy A still holds the epoch before");

  const mirror = await LocalMirror.open(a, b);
  await mirror.resync();

  for (const [name, offset] of [["A", 0n], ["B", lastOffset]] as const) {
    const copy = decodeSuperblock(await b.read(offset, B));
    t.true(copy.ok, `destination copy ${name} decodes`);
    if (copy.ok) t.is(copy.superblock.epoch, next.epoch, `destination copy ${name} holds the new epoch`);
  }
  t.is((await openSuperblock(b)).superblock.epoch, next.epoch);
});
