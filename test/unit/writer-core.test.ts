// RingWriterCore, the writer's pure state machine, driven with a fake time (plain numbers): one
// action in flight by construction, batching on the injected clock, the owner check inside the pump,
// ack waits that keep the heartbeat and end at close's deadline, bounded queues, the delivered mark
// apart from the ack, and a seeded random drive checking the sequence invariants.
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { decodeStatus } from "../../lib/format/status.ts";
import { ErrorCode } from "../../lib/errors.ts";
import { RingWriterCore, WriterState, type Indexed, type WriterAction, type WriterInput } from "../../lib/ring/writer-core.ts";
import type { Ack, RingWriterOptions } from "../../lib/ring/writer-options.ts";
import { generator } from "../helpers/random.ts";
import { B, testWriterCore } from "../helpers/writer-core.ts";


function makeCore(options: Partial<RingWriterOptions> = {}, ringBlocks = 16, extra: { delivered?: Ack; existing?: Indexed[] } = {}): RingWriterCore {
  return testWriterCore({ options: { maxDelayMs: 2, flushThresholdBytes: 1 << 20, statusIntervalMs: 100, ownerCheckMs: 1000, ...options }, ringBlocks, ...extra });
}

const input = (over: Partial<WriterInput> = {}): WriterInput => ({ wallMs: 0, peerAck: undefined, localAck: undefined, delivered: undefined, roomWanted: false, ...over });

/** Performs actions (completing each at once) until the core sleeps or stops; returns them. */
function drive(core: RingWriterCore, nowMs: number, over: Partial<WriterInput> = {}): WriterAction[] {
  const actions: WriterAction[] = [];
  for (let i = 0; i < 100; i++) {
    const action = core.next(nowMs, input(over));
    actions.push(action);
    if (action.kind === "sleep" || action.kind === "stop") return actions;
    if (action.kind === "readSuperblock") core.superblockRead(nowMs, core.superblock, "mem:test");
    else core.completed(nowMs);
  }
  throw new Error("the core never slept");
}

const kinds = (actions: WriterAction[]) => actions.map((a) => (a.kind === "write" ? a.what : a.kind));

test("one action in flight by construction: next() refuses to run before the last one completed", (t) => {
  const core = makeCore();
  const first = core.next(0, input());
  t.like(first, { kind: "write", what: "status" });
  t.is(core.state, WriterState.WritingStatus);
  t.throws(() => core.next(0, input()), { message: /assertion failed: next\(\) with writingStatus in flight/ });
  core.completed(0);
  t.is(core.state, WriterState.Idle);
});

test("batching on the injected clock: a frame waits maxDelayMs, then one record write", (t) => {
  const core = makeCore({ maxDelayMs: 2 });
  drive(core, 0);
  t.is(core.append(10, FrameType.Data, new Uint8Array(100), 0), "queued, due");
  t.deepEqual(core.next(10, input()), { kind: "sleep", untilMs: 12 });
  t.is(core.state, WriterState.Batching);
  t.deepEqual(core.next(11, input()), { kind: "sleep", untilMs: 12 });
  const record = core.next(12, input());
  t.like(record, { kind: "write", what: "record", seq: 1n, blocks: 1, offsetBytes: 3 * B });
  t.is(core.state, WriterState.WritingRecord);
  core.completed(12);
  t.is(core.headSeq, 2n);
  t.is(core.framesWritten, 1);
  // Idle again: the new head goes to the status block after STATUS_IDLE_MS (5 ms) without records.
  t.deepEqual(core.next(12, input()), { kind: "sleep", untilMs: 17 });
  t.deepEqual(kinds(drive(core, 17)), ["status", "sleep"]);
});

test("the owner check runs inside the pump (before a due record) and another owner stops the writer", (t) => {
  const core = makeCore({ ownerCheckMs: 1000 });
  drive(core, 0);
  const payload = new Uint8Array(300);
  core.append(999, FrameType.Data, payload, 0);
  t.deepEqual(core.next(1000, input()), { kind: "readSuperblock" });
  t.is(core.state, WriterState.CheckingOwner);
  t.throws(() => core.next(1000, input()), { message: /in flight/ });
  core.superblockRead(1000, { epoch: core.superblock.epoch + 1n, writerNode: 3 }, "mem:test");
  t.is(core.state, WriterState.Failed);
  t.is(core.error?.code, ErrorCode.NotOwner);
  t.deepEqual(core.next(1000, input()), { kind: "stop" });
  t.like(core.report, { unflushedFrames: 1, unflushedBytes: payload.length + 4 });
});

/** Control records fill a 16-block ring (4 blocks each); the next one must wait for the peer's ack. */
function fillWithControl(core: RingWriterCore, startMs: number): number {
  let now = startMs;
  drive(core, now);
  for (let i = 0; i < 4; i++) {
    now += 10;
    core.append(now, FrameType.Control, new Uint8Array(15_000), 0); // 4 blocks
    const actions = drive(core, now + 2);
    if (!kinds(actions).includes("record")) throw new Error(`record ${i} not written: ${kinds(actions).join(",")}`);
  }
  now += 10;
  core.append(now, FrameType.Control, new Uint8Array(100), 0);
  return now + 2;
}

test("ack wait: the sealed record waits for the peer's ack (status heartbeat goes on), a notification ends it", (t) => {
  const core = makeCore({ ackPollMs: 50, statusIntervalMs: 1000, ownerCheckMs: 100_000 });
  let now = fillWithControl(core, 0);
  const wait = core.next(now, input());
  t.is(core.state, WriterState.AwaitingAck);
  t.deepEqual(wait, { kind: "sleep", untilMs: now + 50 });
  t.is(core.counters.ackWaits, 1);
  // Still waiting a while later: the storage heartbeat is rewritten on its interval meanwhile.
  now += 1100;
  const during = drive(core, now);
  t.deepEqual(kinds(during), ["status", "sleep"]);
  t.is(core.state, WriterState.AwaitingAck);
  t.is(core.counters.ackWaits, 1, "one record waited on counts once");
  // The ack of the first record frees its space.
  const after = drive(core, now, { peerAck: { epoch: 2n, seq: 1n } });
  t.true(kinds(after).includes("record"));
  t.is(core.counters.overwrittenUnacked, 0);
  t.is(core.headSeq, 6n);
});

test("records left on the ring out of seq order: a control record is waited on where the head meets it", (t) => {
  // An older lap left seq 5 (data) at block 12 and a later epoch seq 10 (control) at block 8: by seq
  // the front would be block 12, and the head would reach block 8 without looking at seq 10.
  const existing: Indexed[] = [
    { seq: 5n, startBlock: 12, blocks: 4, noOverwrite: false },
    { seq: 10n, startBlock: 8, blocks: 4, noOverwrite: true },
  ];
  const core = makeCore({ ackPollMs: 50 }, 16, { existing });
  let now = 0;
  drive(core, now);
  for (let i = 0; i < 2; i++) {
    core.append((now += 10), FrameType.Data, new Uint8Array(15_000), 0); // 4 blocks at 0, then 4
    t.true(kinds(drive(core, (now += 2))).includes("record"));
  }
  core.append((now += 10), FrameType.Data, new Uint8Array(15_000), 0); // would go to block 8
  t.is(core.next((now += 2), input()).kind, "sleep");
  t.is(core.state, WriterState.AwaitingAck);
  t.true(kinds(drive(core, now, { peerAck: { epoch: 1n, seq: 10n } })).includes("record"));
  t.is(core.counters.overwrittenUnacked, 0);
});

test("close: a record that waits for an ack that never comes is given up at the close deadline and reported", (t) => {
  const core = makeCore({ ackPollMs: 50 });
  const now = fillWithControl(core, 0);
  t.is(core.next(now, input()).kind, "sleep");
  core.close(now, 3000);
  const before = drive(core, now + 2999);
  t.is(before.at(-1)?.kind, "sleep");
  t.true((before.at(-1) as { untilMs: number }).untilMs <= now + 3000, "the close deadline bounds every sleep");
  t.deepEqual(core.next(now + 3000, input()), { kind: "stop" });
  t.is(core.state, WriterState.Closed);
  t.like(core.report, { unflushedFrames: 1, unflushedBytes: 104 });
});

test("queues are bounded under a flood while a write hangs: at most queueLimitBytes per class, the rest dropped", (t) => {
  const limit = 64 * 1024;
  const core = makeCore({ queueLimitBytes: limit, maxRecordBlocks: 4 });
  drive(core, 0);
  const payload = new Uint8Array(1000);
  let queued = 0;
  for (let i = 0; i < 100_000; i++) {
    const result = core.append(1, i % 10 === 0 ? FrameType.Heartbeat : FrameType.Data, payload, 0);
    if (result !== "dropped") queued++;
    if (i === 20) t.like(core.next(5, input()), { kind: "write", what: "record" }); // and it never completes
  }
  t.true(core.counters.framesDropped > 90_000);
  const recordBytes = 2 * 4 * B;
  t.true(core.bufferedBytes <= 2 * limit + recordBytes, `buffered ${core.bufferedBytes} B`);
  t.is(core.counters.framesAppended, queued);
});

test("status: the ack and the delivered mark are separate inputs; delivered is a high-water mark kept from open", (t) => {
  const core = makeCore({}, 16, { delivered: { epoch: 1n, seq: 4n } });
  const first = core.next(0, input({ localAck: { epoch: 3n, seq: 10n } }));
  t.like(first, { kind: "write", what: "status" });
  const decoded = decodeStatus((first as { bytes: Uint8Array }).bytes);
  t.true(decoded.ok);
  if (!decoded.ok) return;
  t.like(decoded.status, { ackEpoch: 3n, ackSeq: 10n, deliveredEpoch: 1n, deliveredSeq: 4n });
  core.completed(0);
  const statusWith = (atMs: number, delivered: Ack) => {
    const action = drive(core, atMs, { localAck: { epoch: 3n, seq: 11n }, delivered }).find((a) => a.kind === "write" && a.what === "status");
    const d = decodeStatus((action as { bytes: Uint8Array }).bytes);
    if (!d.ok) throw new Error("status did not decode");
    return d.status;
  };
  t.like(statusWith(1000, { epoch: 3n, seq: 7n }), { ackSeq: 11n, deliveredEpoch: 3n, deliveredSeq: 7n });
  // Lower again (a restored image, a reader restarted behind): the mark does not go back.
  t.like(statusWith(2000, { epoch: 2n, seq: 50n }), { ackSeq: 11n, deliveredEpoch: 3n, deliveredSeq: 7n });
  t.like(statusWith(3000, { epoch: 3n, seq: 8n }), { deliveredEpoch: 3n, deliveredSeq: 8n });
});

test("seeded random drive: sequences strictly increase, frames are written once, close drains everything", (t) => {
  const seed = Number(process.env.LUNLINK_SEED ?? 42);
  t.log(`seed ${seed}`);
  const random = generator(seed);
  const core = makeCore({ maxDelayMs: 3, flushThresholdBytes: 6000, maxRecordBlocks: 4, overwriteUnacked: false, statusIntervalMs: 20, ownerCheckMs: 500, queueLimitBytes: 32 * 1024 });
  let now = 0;
  let peerAck: Ack | undefined;
  let lastSeq = 0n;
  const writtenRecords: bigint[] = [];
  for (let step = 0; step < 5000; step++) {
    now += Math.floor(random() * 3);
    if (random() < 0.5) {
      const type = random() < 0.2 ? FrameType.Control : random() < 0.2 ? FrameType.Heartbeat : FrameType.Data;
      core.append(now, type, new Uint8Array(Math.floor(random() * 3000)), 0);
    }
    if (random() < 0.3) peerAck = { epoch: 2n, seq: core.headSeq - 1n }; // the reader caught up
    const action = core.next(now, input({ peerAck }));
    if (action.kind === "write") {
      if (action.what === "record" || action.what === "pad") {
        const seq = action.what === "record" ? action.seq : core.headSeq;
        t.true(seq > lastSeq, `seq ${seq} after ${lastSeq}`);
        lastSeq = seq;
        if (action.what === "record") writtenRecords.push(seq);
      }
      core.completed(now);
    } else if (action.kind === "readSuperblock") {
      core.superblockRead(now, core.superblock, "mem:test");
    }
  }
  core.close(now, 60_000);
  for (let i = 0; i < 10_000 && core.state !== WriterState.Closed; i++) {
    peerAck = { epoch: 2n, seq: core.headSeq - 1n };
    drive(core, (now += 5), { peerAck });
  }
  t.is(core.state, WriterState.Closed);
  t.like(core.report, { unflushedFrames: 0, unflushedBytes: 0 });
  t.is(core.framesWritten, core.counters.framesAppended, "every appended frame was written");
  t.true(writtenRecords.length > 100, `${writtenRecords.length} records`);
});
