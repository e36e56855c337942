// A reader lapped while an unacked control record sits in the ring (issue #13, "A finding for the
// ring"): the writer holds that record (it has not reached its slot, and would wait there for the
// ack), so after the overrun the reader must resume at the oldest intact record, not the newest, and
// still deliver the control frame; only what was truly overwritten is counted lost. In-memory volume,
// one-block records, a 16-block ring; keyless and keyed.
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { RingReader, type FrameVisitor } from "../../lib/ring/reader.ts";
import { findRecordStart } from "../../lib/ring/scan.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { MemVolume } from "../helpers/memvolume.ts";

const RING_BLOCKS = 16;
const B = 4096;

/** Polls until the reader waits at the head (bounded: three rings' worth of polls); the outcomes in order. */
async function pollUntilWaiting(reader: RingReader, visit: FrameVisitor): Promise<string[]> {
  const outcomes: string[] = [];
  for (let n = 0; n < 3 * RING_BLOCKS; n++) {
    const outcome = await reader.poll(visit);
    outcomes.push(outcome);
    if (outcome === "waiting") break;
  }
  return outcomes;
}

function frame(id: number): Uint8Array {
  const bytes = new Uint8Array(100);
  new DataView(bytes.buffer).setUint32(0, id, true);
  return bytes;
}

for (const keyed of [false, true]) {
  test(`a lapped reader resumes at the oldest intact record and delivers the unacked control record${keyed ? " (keyed)" : ""}`, async (t) => {
    const auth = keyed ? { auth: { key: new Uint8Array(32).fill(9) } } : {};
    const volume = new MemVolume((RING_BLOCKS + 4) * B);
    await formatVolume(volume.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS), ...auth });
    let reader: RingReader | undefined;
    const writer = await RingWriter.open(volume.asVolume(), { nodeId: 1, maxDelayMs: 0, flushThresholdBytes: 1, statusIntervalMs: 60_000, peerAck: () => reader?.ack, ...auth });
    t.teardown(() => writer.close());
    reader = await RingReader.open(volume.asVolume(), { nodeId: 2, start: "head", ...auth });
    const firstSeq = reader.seq;
    const firstBlock = reader.block;
    // One record each: 3 data, the control probe, then data until the writer wrapped and overwrote
    // the reader's slot and the next one (unacked data may be overwritten), stopping one record short
    // of the control record's slot, which the writer may not overwrite before the ack passed it.
    const ids: { id: number; type: number }[] = [];
    for (let id = 0; id < RING_BLOCKS + 2; id++) {
      const type = id === 3 ? FrameType.Control : FrameType.Data;
      ids.push({ id, type });
      await writer.append(type, frame(id));
      await writer.flush();
    }
    t.is(writer.counters.ackWaits, 0, "the writer never had to wait: the control record's slot was not reached");
    const controlSeq = firstSeq + 3n;
    t.deepEqual(await findRecordStart(volume.asVolume(), B, RING_BLOCKS, controlSeq), { seq: controlSeq, block: (firstBlock + 3) % RING_BLOCKS }, "the control record is intact in its slot when the reader is lapped");
    const got: { id: number; type: number }[] = [];
    const visit = (_seq: bigint, type: number, _flags: number, bytes: Uint8Array, offset: number): void => {
      got.push({ id: new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0, true), type });
    };
    const outcomes = await pollUntilWaiting(reader, visit);
    t.is(outcomes[0], "overrun");
    t.is(reader.counters.overruns, 1);
    // Records 0 and 1 were overwritten (the reader's slot at firstBlock and the next); 2 onwards are intact.
    t.is(reader.counters.lost, 2n);
    t.deepEqual(got, ids.slice(2), "everything not overwritten is delivered, in order, the control frame included");
    t.true(got.some((f) => f.type === FrameType.Control && f.id === 3));
    t.is(reader.seq, firstSeq + BigInt(RING_BLOCKS + 2));
    t.is(reader.block, (firstBlock + RING_BLOCKS + 2) % RING_BLOCKS);
    // The ack passed the control record only after it was delivered: the writer can go on.
    await writer.append(FrameType.Data, frame(99));
    await writer.flush();
    t.is(writer.counters.overwrittenUnacked, 2);
  });
}

test("overwriteUnacked false holds a pad like any record: a reader waiting at a pad is never lapped there", async (t) => {
  const volume = new MemVolume((RING_BLOCKS + 4) * B);
  await formatVolume(volume.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS) });
  let reader: RingReader | undefined;
  const writer = await RingWriter.open(volume.asVolume(), { nodeId: 1, maxDelayMs: 0, flushThresholdBytes: 1, overwriteUnacked: false, statusIntervalMs: 60_000, peerAck: () => reader?.ack });
  t.teardown(() => writer.close());
  reader = await RingReader.open(volume.asVolume(), { nodeId: 2, start: "head" });
  // 3-block records: 5 fill ring blocks 0..14, the 6th does not fit in block 15, so a pad ends each lap.
  const big = (id: number): Uint8Array => {
    const bytes = new Uint8Array(9000);
    new DataView(bytes.buffer).setUint32(0, id, true);
    return bytes;
  };
  const got: number[] = [];
  const visit = (_seq: bigint, _type: number, _flags: number, bytes: Uint8Array, offset: number): void => void got.push(new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0, true));
  for (let id = 0; id < 5; id++) {
    await writer.append(FrameType.Data, big(id));
    await writer.flush();
  }
  // The reader takes the first lap's records and stops where the pad will be.
  for (let n = 0; n < 5; n++) t.is(await reader.poll(visit), "delivered");
  // The writer pads the lap, fills the next one (the first lap's records are acked), and reaches the
  // unread pad's block again: it waits for the ack instead of overwriting it.
  for (let id = 5; id < 10; id++) {
    await writer.append(FrameType.Data, big(id));
    await writer.flush();
  }
  void writer.append(FrameType.Data, big(10));
  const flushed = writer.flush();
  for (let turns = 0; turns < 1000 && writer.counters.ackWaits === 0; turns++) await new Promise((r) => setImmediate(r));
  t.is(writer.counters.ackWaits, 1, "the writer waits at the unread pad");
  const outcomes: string[] = [];
  for (let n = 0; n < 20 && got.length < 10; n++) outcomes.push(await reader.poll(visit));
  await flushed; // the ack passed the pad: the writer pads this lap and writes the last record
  for (let n = 0; n < 20 && got.length < 11; n++) outcomes.push(await reader.poll(visit));
  t.deepEqual(got, Array.from({ length: 11 }, (_, i) => i));
  t.false(outcomes.includes("overrun"));
  t.is(reader.counters.overruns, 0);
  t.is(reader.counters.lost, 0n);
});

// Without a held record the oldest intact record is the writer's very next overwrite: a reader that
// resumed there was lapped again by each record, poll after poll, and delivered nothing while the
// writer kept its pace (review of #13: 0 of 300 records, 300 overruns). It resumes at the newer
// record instead, a lap ahead of the writer, and keeps up.
for (const config of [
  { name: "the link's writer (controlWaitsForAck false, control among the data)", controlWaitsForAck: false, controlEvery: 5 },
  { name: "a default writer, data only", controlWaitsForAck: true, controlEvery: 0 },
  { name: "the link's writer, keyed", controlWaitsForAck: false, controlEvery: 5, keyed: true },
]) {
  test(`lapped with nothing held, a reader as fast as the writer keeps up after the overrun: ${config.name}`, async (t) => {
    const RING = 64;
    const auth = config.keyed === true ? { auth: { key: new Uint8Array(32).fill(9) } } : {};
    const volume = new MemVolume((RING + 4) * B);
    await formatVolume(volume.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING), ...auth });
    let reader: RingReader | undefined;
    const writer = await RingWriter.open(volume.asVolume(), { nodeId: 1, maxDelayMs: 0, flushThresholdBytes: 1, statusIntervalMs: 60_000, controlWaitsForAck: config.controlWaitsForAck, peerAck: () => reader?.ack, ...auth });
    t.teardown(() => writer.close());
    reader = await RingReader.open(volume.asVolume(), { nodeId: 2, start: "head", ...auth });
    let id = 0;
    const write = async (): Promise<void> => {
      const type = config.controlEvery > 0 && id % config.controlEvery === 0 ? FrameType.Control : FrameType.Data;
      await writer.append(type, frame(id++));
      await writer.flush();
    };
    const got: number[] = [];
    const visit = (_seq: bigint, _type: number, _flags: number, bytes: Uint8Array, offset: number): void => void got.push(new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0, true));
    // A lap and a bit while the reader is away: it is lapped.
    for (let n = 0; n < RING + 8; n++) await write();
    // Then one record per poll: the writer's pace is the reader's.
    const POLLS = 300;
    for (let n = 0; n < POLLS; n++) {
      await write();
      await reader.poll(visit);
    }
    t.is(reader.counters.overruns, 1, "lapped once, not again");
    // Polls that deliver nothing: the overrun itself, and the pad ending each lap.
    t.true(got.length >= POLLS * 0.9, `delivered ${got.length} of ${POLLS} polls`);
    t.deepEqual(got, [...got].sort((a, b) => a - b), "in order");
    t.is(new Set(got).size, got.length, "none twice");
  });
}

test("resumeAtOldest false (a reader of a writer that holds nothing: the link's): a lapped reader resumes at the newer record at once, with no scan for held records", async (t) => {
  const volume = new MemVolume((RING_BLOCKS + 4) * B);
  await formatVolume(volume.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS) });
  let reader: RingReader | undefined;
  const writer = await RingWriter.open(volume.asVolume(), { nodeId: 1, maxDelayMs: 0, flushThresholdBytes: 1, statusIntervalMs: 60_000, peerAck: () => reader?.ack });
  t.teardown(() => writer.close());
  reader = await RingReader.open(volume.asVolume(), { nodeId: 2, start: "head", resumeAtOldest: false });
  const firstSeq = reader.seq;
  for (let id = 0; id < RING_BLOCKS + 2; id++) {
    await writer.append(id === 3 ? FrameType.Control : FrameType.Data, frame(id));
    await writer.flush();
  }
  const got: number[] = [];
  const visit = (_seq: bigint, _type: number, _flags: number, bytes: Uint8Array, offset: number): void => {
    got.push(new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0, true));
  };
  const outcomes = await pollUntilWaiting(reader, visit);
  t.is(outcomes[0], "overrun");
  t.is(reader.counters.overruns, 1);
  // The newer record at the reader's slot is record 16 (seq firstSeq + 16): everything before it is
  // counted lost, the held control record 3 among it (the option's documented trade).
  t.is(reader.counters.lost, BigInt(RING_BLOCKS));
  t.deepEqual(got, [RING_BLOCKS, RING_BLOCKS + 1], "only the records from the newer one on are delivered");
  t.is(reader.seq, firstSeq + BigInt(RING_BLOCKS + 2));
});
