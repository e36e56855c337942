// Reader fault classification on real files: torn, damaged, stale, reformatted under the reader.
import test from "ava";

import { FrameType, RING_START_BLOCK } from "../../lib/format/layout.ts";
import { ErrorCode, LunlinkError, Volume } from "../../lib/index.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { sparseFile } from "../helpers/scratch.ts";

const B = 4096;

async function setup(t: Parameters<typeof sparseFile>[0]) {
  const path = await sparseFile(t, 2 * 1024 * 1024);
  const send = await Volume.open(path, { dsync: true });
  await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 64n });
  const receive = await Volume.open(path, { readOnly: true });
  const vandal = await Volume.open(path); // the test's hand on the shared LUN
  t.teardown(async () => {
    await send.close();
    await receive.close();
    await vandal.close();
  });
  const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0, flushThresholdBytes: 1 });
  t.teardown(() => writer.close());
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head", damageTimeoutMs: 40 });
  return { path, send, receive, vandal, writer, reader };
}

function collector() {
  const frames: string[] = [];
  const visit = (_seq: bigint, _type: number, _flags: number, bytes: Uint8Array, offset: number, length: number) => {
    frames.push(Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString());
  };
  return { frames, visit };
}
async function appendRecord(writer: RingWriter, text: string, bytes = 0): Promise<void> {
  await writer.append(FrameType.Data, Buffer.from(text.padEnd(bytes, ".")));
  await writer.flush();
}

test("a torn record (a later block still old) waits, then delivers once the write completes", async (t) => {
  const { vandal, writer, reader } = await setup(t);
  const { frames, visit } = collector();
  const block0 = reader.block;
  await appendRecord(writer, "three-block record", 9000);
  const offset = (RING_START_BLOCK + block0 + 1) * B;
  const saved = await vandal.read(offset, B);
  const copy = vandal.alloc(B);
  copy.set(saved);
  await vandal.write(offset, vandal.alloc(B)); // block 1 reverts to never-written
  t.is(await reader.poll(visit), "waiting");
  t.true(reader.counters.tornSeen > 0);
  await vandal.write(offset, copy); // the write completes
  t.is(await reader.poll(visit), "delivered");
  t.is(frames.length, 1);
  t.true(frames[0]!.startsWith("three-block record"));
});

test("a permanently damaged record is skipped after damageTimeoutMs once the writer is past it", async (t) => {
  const { vandal, writer, reader } = await setup(t);
  const { frames, visit } = collector();
  const block0 = reader.block;
  await appendRecord(writer, "doomed");
  const flipped = await vandal.read((RING_START_BLOCK + block0) * B, B);
  flipped[200]! ^= 0x01; // one bit of payload: the body check fails
  await vandal.write((RING_START_BLOCK + block0) * B, flipped);
  await appendRecord(writer, "next");
  t.is(await reader.poll(visit), "waiting");
  await new Promise((r) => setTimeout(r, 60));
  t.is(await reader.poll(visit), "damaged");
  t.is(reader.counters.damaged, 1);
  t.is(await reader.poll(visit), "delivered");
  t.deepEqual(frames, ["next"]);
});

test("a stale block from an older lap is 'not yet written', never delivered", async (t) => {
  const { vandal, writer, reader } = await setup(t);
  const { frames, visit } = collector();
  await appendRecord(writer, "first");
  t.is(await reader.poll(visit), "delivered");
  // Plant a copy of the old record at the next expected slot: its seq is older than expected.
  const old = await vandal.read((RING_START_BLOCK + 0) * B, B);
  const copy = vandal.alloc(B);
  copy.set(old);
  await vandal.write((RING_START_BLOCK + reader.block) * B, copy);
  t.is(await reader.poll(visit), "waiting");
  t.deepEqual(frames, ["first"]);
});

test("a volume reformatted under the reader is reported as the wrong pair", async (t) => {
  const { send, writer, reader } = await setup(t);
  const { visit } = collector();
  await appendRecord(writer, "before");
  t.is(await reader.poll(visit), "delivered");
  await writer.close();
  await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 64n, force: true });
  const error = await t.throwsAsync(reader.refresh());
  t.is((error as LunlinkError).code, ErrorCode.WrongPair);
});

test("inspect counts intact records and frames and names a damaged record by seq and offset", async (t) => {
  const { inspectRing } = await import("../../lib/ring/inspect.ts");
  const { openSuperblock } = await import("../../lib/ring/superblocks.ts");
  const { vandal, writer, reader } = await setup(t);
  const first = reader.block;
  // One record per frame: each append is flushed before the next (two appends then one flush could
  // share a record when the writer's pump is slow to run, which made this test flaky under load).
  for (let i = 0; i < 5; i++) {
    for (const text of [`a${i}`, `b${i}`]) {
      await writer.append(FrameType.Data, Buffer.from(text));
      await writer.flush();
    }
  }
  const before = await inspectRing(vandal, (await openSuperblock(vandal)).superblock);
  t.is(before.records, 10);
  t.is(before.frames, 10);
  t.is(before.invalid, 0);
  t.is(before.newestSeq! - before.oldestSeq!, 9n);
  const offset = (RING_START_BLOCK + first + 2) * B;
  const block = await vandal.read(offset, B);
  block[300]! ^= 0x80;
  await vandal.write(offset, block);
  const after = await inspectRing(vandal, (await openSuperblock(vandal)).superblock);
  t.is(after.records, 9);
  t.is(after.invalid, 1);
  t.is(after.damage[0]?.offsetBytes, BigInt(offset));
  t.regex(after.damage[0]?.reason ?? "", /body check/);
});

test("reader restart: control frames after the persisted ack are delivered again, older data is dropped", async (t) => {
  const { receive, writer, reader } = await setup(t);
  const { frames, visit } = collector();
  await writer.append(FrameType.Control, Buffer.from("c1"));
  await writer.flush();
  t.is(await reader.poll(visit), "delivered");
  const persistedAck = reader.ack.seq; // what this node wrote into its status block before it died
  for (const [type, text] of [[FrameType.Data, "d1"], [FrameType.Control, "c2"], [FrameType.Data, "d2"]] as const) {
    await writer.append(type, Buffer.from(text));
    await writer.flush();
  }
  // The reader process restarts with its persisted ack.
  const restarted = await RingReader.open(receive, { nodeId: 2, start: { afterAck: persistedAck } });
  const again = collector();
  while ((await restarted.poll(again.visit)) !== "waiting");
  t.deepEqual(again.frames, ["c2"]);
  t.is(restarted.counters.staleDataDropped, 2);
  await writer.append(FrameType.Data, Buffer.from("d3"));
  await writer.flush();
  while ((await restarted.poll(again.visit)) !== "waiting");
  t.deepEqual(again.frames, ["c2", "d3"]);
  t.deepEqual(frames, ["c1"]);
});

test("a reader waiting at the head of a freshly reformatted ring follows the writer to where its epoch starts", async (t) => {
  const { send, receive, writer } = await setup(t);
  for (let i = 0; i < 20; i++) await appendRecord(writer, `old ${i}`);
  await writer.close();
  // Reformat over the used ring: the new volume's sequences start above the old stamps.
  await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 64n, force: true });
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head" }); // waits at ring block 0
  const next = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0 }); // continues after the old stamps
  t.teardown(() => next.close());
  await appendRecord(next, "new");
  const { frames, visit } = collector();
  for (let i = 0; i < 5 && frames.length === 0; i++) {
    if ((await reader.poll(visit)) === "waiting") await reader.refresh();
  }
  t.deepEqual(frames, ["new"]);
  t.is(reader.counters.lost, 0n);
});
