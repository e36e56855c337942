// LocalMirror on real files: send volume A -> receive volume B, with the reader on B acking back.
import test from "ava";

import { ErrorCode, FrameType, LunlinkError, RingReader, RingWriter, Volume, formatVolume } from "../../lib/index.ts";
import { LocalMirror } from "../../lib/mirror/local.ts";
import { mirrorFrame, streamThroughMirror } from "../helpers/mirror-stream.ts";
import { sparseFile } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;

async function pair(t: Parameters<typeof sparseFile>[0], ringBlocks = 64n) {
  const a = await Volume.open(await sparseFile(t, 2 * MiB, "a.img"), { dsync: true });
  const b = await Volume.open(await sparseFile(t, 2 * MiB, "b.img"));
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  await formatVolume(a, { writerNode: 1, peerNode: 2, ringBlocks });
  return { a, b };
}

test("continuous mirror: every frame arrives once, in order, on the receive volume across many laps", async (t) => {
  const { a, b } = await pair(t);
  const mirror = await LocalMirror.open(a, b, { statusCopyMs: 2, pollMinUs: 50, pollMaxMs: 2 });
  mirror.start();
  // Wait for the first resync, so the receive volume carries a superblock.
  await new Promise<void>((resolve) => mirror.once("resync", () => resolve()));
  const total = 2000;
  const { seen, reader, writer } = await streamThroughMirror(a, b, total);
  await mirror.stop();
  t.deepEqual(seen, Array.from({ length: total }, (_, i) => i));
  t.is(reader.counters.lost, 0n);
  const laps = writer.counters.bytesWritten / (64 * 4096);
  t.true(laps >= 5, `${laps.toFixed(1)} laps`);
  t.true(mirror.counters.records >= writer.counters.records, `mirror copied ${mirror.counters.records} of ${writer.counters.records} records`);
  t.log(`records ${writer.counters.records}, laps ${laps.toFixed(1)}, mirror copies ${mirror.counters.records}, resyncs ${mirror.counters.resyncs}, epochs seen ${reader.counters.epochChanges}`);
});

test("a resync copies what is already on the send volume", async (t) => {
  const { a, b } = await pair(t);
  const writer = await RingWriter.open(a, { nodeId: 1, maxDelayMs: 0 });
  for (let i = 0; i < 10; i++) await writer.append(FrameType.Control, mirrorFrame(i));
  await writer.flush();
  await writer.close();
  const mirror = await LocalMirror.open(a, b);
  await mirror.resync();
  const reader = await RingReader.open(b, { nodeId: 2, start: "oldest" });
  const got: number[] = [];
  while ((await reader.poll((_s, _t, _f, bytes, offset) => got.push(new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0, true)))) !== "waiting");
  t.deepEqual(got, Array.from({ length: 10 }, (_, i) => i));
});

test("a changed-only copy (once/interval modes) writes only the blocks that differ, and the copy reads back whole", async (t) => {
  const { a, b } = await pair(t);
  const writer = await RingWriter.open(a, { nodeId: 1, maxDelayMs: 0 });
  for (let i = 0; i < 10; i++) await writer.append(FrameType.Control, mirrorFrame(i));
  await writer.flush();
  const mirror = await LocalMirror.open(a, b);
  await mirror.resync();
  const full = mirror.counters.blocksCopied;
  await mirror.resync(true);
  t.is(mirror.counters.blocksCopied, full, "nothing changed: no ring block written");
  for (let i = 10; i < 14; i++) await writer.append(FrameType.Control, mirrorFrame(i));
  await writer.flush();
  await writer.close();
  const damaged = b.alloc(4096).fill(0xab);
  await b.write((3 + 40) * 4096, damaged); // a stray write on the receive volume, outside the used ring
  const before = mirror.counters.blocksCopied;
  await mirror.resync(true);
  const written = mirror.counters.blocksCopied - before;
  t.true(written >= 2 && written <= 8, `only the new records' blocks and the damaged one were written (${written} of 64)`);
  const repaired = await b.read((3 + 40) * 4096, 4096);
  const original = await a.read((3 + 40) * 4096, 4096);
  t.deepEqual(Buffer.from(repaired), Buffer.from(original), "the stray write on the receive volume was undone");
  t.true(mirror.counters.blocksSkipped >= 64 + 56, `equal blocks skipped (${mirror.counters.blocksSkipped})`);
  const reader = await RingReader.open(b, { nodeId: 2, start: "oldest" });
  const got: number[] = [];
  while ((await reader.poll((_s, _t, _f, bytes, offset) => got.push(new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0, true)))) !== "waiting");
  t.deepEqual(got, Array.from({ length: 14 }, (_, i) => i));
});

test("the mirror refuses a destination formatted for another volume unless forced", async (t) => {
  const { a, b } = await pair(t);
  await formatVolume(b, { writerNode: 2, peerNode: 1 }); // node 2's own send volume: the classic miswiring
  const refused = await t.throwsAsync(LocalMirror.open(a, b));
  t.is((refused as LunlinkError).code, ErrorCode.WrongPair);
  t.regex(refused.message, /use --force/);
  const forced = await LocalMirror.open(a, b, { force: true });
  await forced.resync();
  const reader = await RingReader.open(b, { nodeId: 2 });
  t.is(reader.epoch > 0n, true);
});
