// RingWriter -> volume -> RingReader/Poller on one file volume (the mirror is the identity here).
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { ErrorCode, LunlinkError, Volume } from "../../lib/index.ts";
import { Poller } from "../../lib/poll/poller.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter, type Ack } from "../../lib/ring/writer.ts";
import { sparseFile } from "../helpers/scratch.ts";

async function setup(t: Parameters<typeof sparseFile>[0], ringBlocks = 64n) {
  const path = await sparseFile(t, 4 * 1024 * 1024);
  const formatter = await Volume.open(path, { dsync: true });
  await formatVolume(formatter, { writerNode: 1, peerNode: 2, ringBlocks });
  await formatter.close();
  const send = await Volume.open(path, { dsync: true });
  const receive = await Volume.open(path, { readOnly: true });
  t.teardown(async () => {
    await send.close();
    await receive.close();
  });
  return { path, send, receive };
}

function frameBytes(i: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  const v = new DataView(b.buffer);
  if (length >= 4) v.setUint32(0, i, true);
  for (let k = 4; k < length; k++) b[k] = (i + k) & 0xff;
  return b;
}

test("frames written by the writer are delivered once, in order, across many laps, with flow control", async (t) => {
  // 61 blocks: no mix of record sizes fills every lap exactly, so laps end with pads.
  const { send, receive } = await setup(t, 61n);
  let delivered: Ack | undefined;
  const writer = await RingWriter.open(send, {
    nodeId: 1,
    maxDelayMs: 1,
    flushThresholdBytes: 8000,
    maxRecordBlocks: 8,
    overwriteUnacked: false,
    peerAck: () => delivered,
    statusIntervalMs: 20,
  });
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
  const poller = new Poller(reader, { pollMinUs: 50, pollMaxMs: 2, statusPollMs: 10 });
  poller.start();
  const total = 3000;
  const seen: number[] = [];
  const consume = (async () => {
    for await (const frame of poller.frames()) {
      const i = new DataView(frame.payload.buffer, frame.payload.byteOffset).getUint32(0, true);
      if (Buffer.compare(frame.payload, frameBytes(i, frame.payload.length)) !== 0) throw new Error(`frame ${i} corrupted`);
      seen.push(i);
      delivered = { epoch: reader.epoch, seq: frame.seq };
      // A consumer that stalls now and then, so the writer must wait for acks to reuse ring space.
      if (seen.length % 250 === 0) await new Promise((r) => setTimeout(r, 30));
      if (seen.length === total) break;
    }
  })();
  for (let i = 0; i < total; i++) {
    // Control frames must never be overwritten unacked: the writer waits for the reader's ack.
    await writer.append(i % 10 === 0 ? FrameType.Control : FrameType.Data, frameBytes(i, 200 + (i % 7) * 300));
  }
  await writer.flush();
  await consume;
  await poller.stop();
  await writer.close();
  // Exactly once; in order within each class (control overtakes queued data by design: priority).
  t.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i));
  const control = seen.filter((i) => i % 10 === 0);
  const data = seen.filter((i) => i % 10 !== 0);
  t.deepEqual(control, [...control].sort((a, b) => a - b));
  t.deepEqual(data, [...data].sort((a, b) => a - b));
  const laps = writer.counters.bytesWritten / (61 * 4096);
  t.true(laps >= 10, `ring lapped ${laps.toFixed(1)} times`);
  t.true(writer.counters.pads > 0);
  t.is(reader.counters.lost, 0n);
  t.is(reader.counters.overruns, 0);
  t.is(writer.counters.overwrittenUnacked, 0);
  t.true(writer.counters.ackWaits > 0, "the writer had to wait for acks");
  t.log(`records ${writer.counters.records}, pads ${writer.counters.pads}, ack waits ${writer.counters.ackWaits}, overwritten unacked ${writer.counters.overwrittenUnacked}`);
});

test("a reader that falls a lap behind on data records counts an overrun and the lost records", async (t) => {
  const { send, receive } = await setup(t, 16n);
  const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0, flushThresholdBytes: 1 });
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
  const visited: bigint[] = [];
  for (let i = 0; i < 40; i++) {
    await writer.append(FrameType.Data, frameBytes(i, 100));
    await writer.flush();
  }
  let outcome = await reader.poll((seq) => visited.push(seq));
  t.is(outcome, "overrun");
  t.true(reader.counters.lost > 0n);
  outcome = await reader.poll((seq) => visited.push(seq));
  t.is(outcome, "delivered");
  t.true(writer.counters.overwrittenUnacked > 0);
  await writer.close();
});

test("writer restart starts a new epoch above every sequence; the reader follows it without loss", async (t) => {
  const { send, receive } = await setup(t, 64n);
  const first = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0 });
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
  const got: number[] = [];
  const visit = (_seq: bigint, _type: number, _flags: number, bytes: Uint8Array, offset: number) => got.push(new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0, true));
  for (let i = 0; i < 5; i++) await first.append(FrameType.Control, frameBytes(i, 64));
  await first.close();
  while ((await reader.poll(visit)) !== "waiting");
  const epoch1 = first.epoch;
  const second = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0 });
  t.is(second.epoch, epoch1 + 1n);
  t.true(second.headSeq > first.headSeq - 1n);
  for (let i = 5; i < 10; i++) await second.append(FrameType.Control, frameBytes(i, 64));
  await second.flush();
  const outcomes: string[] = [];
  for (let n = 0; n < 20; n++) {
    const o = await reader.poll(visit);
    outcomes.push(o);
    if (got.length === 10) break;
  }
  t.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.true(outcomes.includes("epoch"));
  t.is(reader.counters.lost, 0n);
  await second.close();
});

test("ownership: another node's volume is refused, --take-over works and stops the old writer", async (t) => {
  const { send, path } = await setup(t, 64n);
  const owner = await RingWriter.open(send, { nodeId: 1, ownerCheckMs: 10 });
  const other = await Volume.open(path, { dsync: true });
  t.teardown(() => other.close());
  const refused = await t.throwsAsync(RingWriter.open(other, { nodeId: 3 }));
  t.is((refused as LunlinkError).code, ErrorCode.NotOwner);
  const thief = await RingWriter.open(other, { nodeId: 3, takeOver: true });
  await new Promise((r) => setTimeout(r, 100));
  t.is(owner.error?.code, ErrorCode.NotOwner);
  await t.throwsAsync(owner.append(FrameType.Data, new Uint8Array(10)), { code: ErrorCode.NotOwner });
  await thief.close();
});

test("wrong pair: the reader refuses its own send volume and another node's", async (t) => {
  const { receive } = await setup(t);
  const own = await t.throwsAsync(RingReader.open(receive, { nodeId: 1 }));
  t.is((own as LunlinkError).code, ErrorCode.WrongPair);
  const stranger = await t.throwsAsync(RingReader.open(receive, { nodeId: 9 }));
  t.is((stranger as LunlinkError).code, ErrorCode.WrongPair);
  const pair = await t.throwsAsync(RingReader.open(receive, { nodeId: 2, pairUuid: "00000000-0000-4000-8000-000000000000" }));
  t.is((pair as LunlinkError).code, ErrorCode.WrongPair);
});
