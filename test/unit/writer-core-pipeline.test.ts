// RingWriterCore with several record writes in flight (maxRecordsInFlight), driven with a fake time:
// records issued back to back up to the bound, completions in any order, the head and the flush count
// only over the completed prefix, the status / pad / owner check waiting for the drain, a failure in
// the middle (a hole), and a seeded random drive completing writes in random order.
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { decodeStatus } from "../../lib/format/status.ts";
import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import { RingWriterCore, STATUS_IDLE_MS, WriterState, type WriterAction, type WriterInput } from "../../lib/ring/writer-core.ts";
import type { Ack, RingWriterOptions } from "../../lib/ring/writer-options.ts";
import { generator } from "../helpers/random.ts";
import { B, testWriterCore } from "../helpers/writer-core.ts";

/** The ring's first block on the volume (RING_START_BLOCK): record offsets are (3 + block) x B. */
const RING_START = 3;

function makeCore(options: Partial<RingWriterOptions> = {}, ringBlocks = 64): RingWriterCore {
  const core = testWriterCore({ options: { maxDelayMs: 0, flushThresholdBytes: 100, statusIntervalMs: 100, ownerCheckMs: 1000, maxRecordsInFlight: 3, maxRecordBlocks: 4, ...options }, ringBlocks });
  // open()'s first status write.
  const first = core.next(0, input());
  if (first.kind !== "write" || first.what !== "status") throw new Error(`first action ${first.kind}`);
  core.completed(0);
  return core;
}

const input = (over: Partial<WriterInput> = {}): WriterInput => ({ wallMs: 0, peerAck: undefined, localAck: undefined, delivered: undefined, roomWanted: false, ...over });

type RecordWrite = Extract<WriterAction, { what: "record" }>;

/** Appends one data frame of `bytes` and asks for the next action. */
function appendAndNext(core: RingWriterCore, nowMs: number, bytes = 100): WriterAction {
  core.append(nowMs, FrameType.Data, new Uint8Array(bytes), 0);
  return core.next(nowMs, input());
}

function asRecord(t: { fail(message: string): void }, action: WriterAction): RecordWrite {
  if (action.kind !== "write" || action.what !== "record") {
    t.fail(`expected a record write, got ${JSON.stringify(action, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v instanceof Uint8Array ? `${v.length} B` : v))}`);
    throw new Error("not a record");
  }
  return action;
}

function statusHead(action: WriterAction): bigint {
  if (action.kind !== "write" || action.what !== "status") throw new Error(`expected a status write, got ${action.kind}`);
  const decoded = decodeStatus(action.bytes);
  if (!decoded.ok) throw new Error("status did not decode");
  return decoded.status.headSeq;
}

test("up to maxRecordsInFlight record writes are issued back to back; the next record waits for a completion", (t) => {
  const core = makeCore({ maxRecordsInFlight: 3 });
  const records = [1, 2, 3].map(() => asRecord(t, appendAndNext(core, 10)));
  t.deepEqual(
    records.map((r) => [r.seq, r.offsetBytes / B]),
    [
      [1n, RING_START + 0],
      [2n, RING_START + 1],
      [3n, RING_START + 2],
    ],
  );
  t.is(core.recordsInFlight, 3);
  t.is(core.state, WriterState.WritingRecord);
  // A fourth record is due, but the pipeline is full: it keeps filling, and the core sleeps until a completion.
  t.is(appendAndNext(core, 11).kind, "sleep");
  t.is(appendAndNext(core, 11).kind, "sleep");
  core.completed(12, 2n);
  t.is(core.next(12, input()).kind, "sleep", "a completion behind a write in flight frees no place in the pipeline");
  core.completed(12, 1n);
  const fourth = asRecord(t, core.next(12, input()));
  t.like(fourth, { seq: 4n, offsetBytes: (RING_START + 3) * B });
  t.is(core.counters.records, 2);
});

test("beside a write in flight a record is sealed at flushThresholdBytes, not after maxDelayMs: small frames grow one record until the drain", (t) => {
  const core = makeCore({ maxRecordsInFlight: 3, flushThresholdBytes: 1000, maxDelayMs: 0 });
  const lone = asRecord(t, appendAndNext(core, 10, 50));
  t.is(lone.seq, 1n, "nothing in flight: a lone frame goes out at once (maxDelayMs 0)");
  for (let i = 0; i < 5; i++) t.is(appendAndNext(core, 20 + i, 50).kind, "sleep", "small frames wait beside the write in flight");
  const big = asRecord(t, appendAndNext(core, 30, 800));
  t.like(big, { seq: 2n }, "the threshold reached: a second write goes out beside the first");
  t.is(core.recordsInFlight, 2);
  t.is(appendAndNext(core, 31, 50).kind, "sleep");
  core.completed(32, 1n);
  t.is(core.next(32, input()).kind, "sleep", "record 2 still in flight");
  core.completed(32, 2n);
  t.like(asRecord(t, core.next(32, input())), { seq: 3n }, "drained: the small batch goes out at once");
  t.is(core.framesWritten, 7);
});

test("completions out of order: the head, flush() count and counters move only over the completed prefix", (t) => {
  const core = makeCore({ maxRecordsInFlight: 3 });
  for (let i = 0; i < 3; i++) asRecord(t, appendAndNext(core, 10));
  core.completed(11, 3n);
  core.completed(11, 2n);
  t.is(core.headSeq, 1n);
  t.is(core.framesWritten, 0, "a flush() of the first frame must not resolve while its record is in flight");
  t.is(core.counters.records, 0);
  t.throws(() => core.completed(11, 2n), { message: /matches no record write in flight/ });
  core.completed(11, 1n);
  t.is(core.headSeq, 4n);
  t.is(core.framesWritten, 3);
  t.is(core.counters.records, 3);
  t.is(core.recordsInFlight, 0);
});

test("the status block names only completed records: heartbeat and idle status wait for the drain, no record is issued meanwhile", (t) => {
  const core = makeCore({ maxRecordsInFlight: 3, statusIntervalMs: 100 });
  asRecord(t, appendAndNext(core, 50));
  asRecord(t, appendAndNext(core, 50));
  core.completed(51, 2n);
  // Idle past STATUS_IDLE_MS with record 2 written but 1 still in flight: no status.
  t.is(core.next(51 + STATUS_IDLE_MS + 1, input()).kind, "sleep");
  // The heartbeat is due: still no status while record 1 is in flight, and the due frame waits too.
  t.is(appendAndNext(core, 100).kind, "sleep");
  t.is(core.state, WriterState.WritingRecord);
  core.completed(101, 1n);
  const status = core.next(101, input());
  t.is(statusHead(status), 3n, "the head is past records 1 and 2, both written");
  t.throws(() => core.next(101, input()), { message: /in flight/ });
  core.completed(101);
  t.like(asRecord(t, core.next(101, input())), { seq: 3n });
});

test("a write that fails with later ones in flight: the head stays before the hole, late completions are ignored, the frames are reported unwritten", (t) => {
  const core = makeCore({ maxRecordsInFlight: 3 });
  for (let i = 0; i < 3; i++) asRecord(t, appendAndNext(core, 10));
  core.completed(11, 1n);
  core.completed(11, 3n);
  const failure = core.fail(new LunlinkError(ErrorCode.IoError, "EIO writing record 2"));
  t.is(failure.code, ErrorCode.IoError);
  t.is(core.state, WriterState.Failed);
  t.is(core.headSeq, 2n, "record 3 completed, but behind the hole at 2");
  t.is(core.framesWritten, 1);
  t.like(core.report, { unflushedFrames: 2, unflushedBytes: 2 * 104 });
  t.notThrows(() => core.completed(12, 2n), "a completion after the failure is ignored");
  t.is(core.headSeq, 2n);
  t.deepEqual(core.next(12, input()), { kind: "stop" });
});

test("the lap end waits for the records in flight: the pad is written alone, then records start at block 0", (t) => {
  const core = makeCore({ maxRecordsInFlight: 3 }, 16);
  asRecord(t, appendAndNext(core, 10)); // 1 block at 0
  core.completed(10, 1n);
  const starts = [2, 3, 4].map(() => asRecord(t, appendAndNext(core, 10, 15_000)).offsetBytes / B - RING_START);
  t.deepEqual(starts, [1, 5, 9]);
  // 4 more blocks at 13 would run past the ring end (16): a pad first, once nothing is in flight.
  t.is(appendAndNext(core, 11, 15_000).kind, "sleep");
  core.completed(12, 2n);
  t.is(core.next(12, input()).kind, "sleep", "sealed, but the pad waits for the drain");
  core.completed(12, 3n);
  t.is(core.next(12, input()).kind, "sleep");
  core.completed(12, 4n);
  const pad = core.next(12, input());
  t.like(pad, { kind: "write", what: "pad", offsetBytes: (RING_START + 13) * B });
  t.is(core.state, WriterState.WritingPad);
  t.throws(() => core.next(12, input()), { message: /in flight/ });
  core.completed(12);
  t.like(asRecord(t, core.next(12, input())), { seq: 6n, offsetBytes: RING_START * B });
  t.is(core.counters.pads, 1);
});

test("the owner check waits for the records in flight, and none is issued while it runs", (t) => {
  const core = makeCore({ maxRecordsInFlight: 3, ownerCheckMs: 1000, statusIntervalMs: 10_000 });
  asRecord(t, appendAndNext(core, 999));
  t.is(appendAndNext(core, 1000).kind, "sleep", "owner check due: it waits for record 1, and record 2 waits for it");
  core.completed(1000, 1n);
  t.deepEqual(core.next(1000, input()), { kind: "readSuperblock" });
  core.superblockRead(1000, core.superblock, "mem:test");
  t.like(asRecord(t, core.next(1000, input())), { seq: 2n });
});

test("completed() without a seq is for the one action in flight: with several records in flight it is an assertion", (t) => {
  const core = makeCore({ maxRecordsInFlight: 2 });
  asRecord(t, appendAndNext(core, 10));
  asRecord(t, appendAndNext(core, 10));
  t.throws(() => core.completed(10), { message: /without a seq while several records are in flight/ });
});

test("close drains the records in flight before it stops; a close deadline with writes in flight reports them unwritten", (t) => {
  const core = makeCore({ maxRecordsInFlight: 3 });
  asRecord(t, appendAndNext(core, 10));
  asRecord(t, appendAndNext(core, 10));
  core.close(10, 1000);
  t.is(core.next(10, input()).kind, "sleep");
  core.completed(11, 1n);
  core.completed(11, 2n);
  t.is(statusHead(core.next(11, input())), 3n);
  core.completed(11);
  t.deepEqual(core.next(11, input()), { kind: "stop" });
  t.like(core.report, { unflushedFrames: 0 });

  const hung = makeCore({ maxRecordsInFlight: 3 });
  asRecord(t, appendAndNext(hung, 10));
  hung.close(10, 1000);
  const sleep = hung.next(500, input());
  t.true(sleep.kind === "sleep" && sleep.untilMs <= 1010, "close's deadline bounds the wait for the drain");
  t.deepEqual(hung.next(1010, input()), { kind: "stop" });
  t.like(hung.report, { unflushedFrames: 1 });
});

test("seeded random drive, completions in random order: seqs consecutive, in-flight writes never overlap, every status names only written records, close drains all", (t) => {
  const seed = Number(process.env.LUNLINK_SEED ?? 7);
  t.log(`seed ${seed} (replay: LUNLINK_SEED=${seed})`);
  const random = generator(seed);
  const ringBlocks = 48;
  const core = makeCore({ maxRecordsInFlight: 4, maxDelayMs: 2, flushThresholdBytes: 6000, statusIntervalMs: 20, ownerCheckMs: 300, overwriteUnacked: false, queueLimitBytes: 64 * 1024 }, ringBlocks);
  let now = 0;
  let peerAck: Ack | undefined;
  let nextSeq = 1n;
  const inFlight = new Map<bigint, { start: number; blocks: number }>();
  const completed = new Set<bigint>();
  let written = 0n; // every seq below this+1 completed
  let statuses = 0;
  const completeOne = (): void => {
    const seqs = [...inFlight.keys()];
    const seq = seqs[Math.floor(random() * seqs.length)]!;
    inFlight.delete(seq);
    completed.add(seq);
    while (completed.has(written + 1n)) written++;
    core.completed(now, seq);
  };
  const step = (): void => {
    if (inFlight.size > 0 && random() < 0.4) completeOne();
    const action = core.next(now, input({ peerAck }));
    if (action.kind === "write" && action.what === "record") {
      t.is(action.seq, nextSeq, "records are issued in seq order");
      nextSeq++;
      const start = action.offsetBytes / B - RING_START;
      for (const other of inFlight.values()) if (start < other.start + other.blocks && other.start < start + action.blocks) t.fail(`record ${action.seq} at ${start}+${action.blocks} overlaps one in flight`);
      t.true(inFlight.size < 4, "at most maxRecordsInFlight");
      inFlight.set(action.seq, { start, blocks: action.blocks });
    } else if (action.kind === "write" && action.what === "pad") {
      t.is(inFlight.size, 0, "the pad runs alone");
      nextSeq++;
      core.completed(now);
      written = nextSeq - 1n;
    } else if (action.kind === "write") {
      t.is(inFlight.size, 0, "the status runs alone");
      t.is(statusHead(action), written + 1n, "the status head is just past the written prefix");
      statuses++;
      core.completed(now);
    } else if (action.kind === "readSuperblock") {
      t.is(inFlight.size, 0, "the owner check runs alone");
      core.superblockRead(now, core.superblock, "mem:test");
    }
  };
  for (let i = 0; i < 6000; i++) {
    now += Math.floor(random() * 2);
    if (random() < 0.5) core.append(now, random() < 0.2 ? FrameType.Control : FrameType.Data, new Uint8Array(Math.floor(random() * 5000)), 0);
    if (random() < 0.3) peerAck = { epoch: 2n, seq: core.headSeq - 1n };
    step();
  }
  core.close(now, 60_000);
  for (let i = 0; i < 20_000 && core.state !== WriterState.Closed; i++) {
    now += 1;
    peerAck = { epoch: 2n, seq: core.headSeq - 1n };
    step();
  }
  t.is(core.state, WriterState.Closed);
  t.like(core.report, { unflushedFrames: 0, unflushedBytes: 0 });
  t.is(core.framesWritten, core.counters.framesAppended, "every appended frame was written");
  t.true(nextSeq > 200n, `${nextSeq} seqs`);
  t.true(statuses > 10, `${statuses} status writes`);
});
