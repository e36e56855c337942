// The link's send-ring status on an idle link (issue #13 section 4), on a fake clock: the storage
// heartbeat records come at the LinkClock's turns (a little late each, by a varying amount, and the
// turn itself late by a small event-loop delay), each record's write and status take a little time,
// and the writer runs at the link's options (linkStatusIntervalMs). Every status write must be the
// one a heartbeat record brings: a status the interval makes due first is a timer wake-up of its own
// and one write more (then the record's own status again). The owner check (a superblock re-read a
// second) rides a record too: the writer never wakes on its own timer. In standby (the link's primary
// up) the status rides every other record, still with no wake-up of its own.
import test from "ava";

import { DEFAULT_LINK_TICK_MS } from "../../lib/defaults.ts";
import { FrameType } from "../../lib/format/layout.ts";
import { DEFAULT_TIMERS, LinkClock } from "../../lib/link/paths.ts";
import { LINK_FLUSH_THRESHOLD_BYTES, LINK_MAX_RECORD_BLOCKS, LINK_RECORDS_IN_FLIGHT, linkStatusIntervalMs, linkWriterPace } from "../../lib/link/storage-path.ts";
import type { WriterInput } from "../../lib/ring/writer-core.ts";
import { generator } from "../helpers/random.ts";
import { testWriterCore } from "../helpers/writer-core.ts";

/** The first record after open has its status STATUS_IDLE_MS later, on the writer's timer (once): not counted. */
const WARMUP_MS = 1000;

const input = (standby = false): WriterInput => ({ wallMs: 0, peerAck: undefined, localAck: undefined, delivered: undefined, roomWanted: false, standby });

/** One idle link's writer for `durationMs`: records and status writes, and the status writes the interval (a writer timer) started. */
function idleWriter(seed: number, heartbeatMs: number, durationMs: number, standby = false): { records: number; statuses: number; timerStatuses: number; timerWakes: number; ownerChecks: number } {
  const random = generator(seed);
  const timers = { ...DEFAULT_TIMERS, storage: { ...DEFAULT_TIMERS.storage, heartbeatMs } };
  const core = testWriterCore({
    options: { maxDelayMs: 0, maxRecordBlocks: LINK_MAX_RECORD_BLOCKS, maxRecordsInFlight: LINK_RECORDS_IN_FLIGHT, flushThresholdBytes: LINK_FLUSH_THRESHOLD_BYTES, ...linkWriterPace(heartbeatMs), controlWaitsForAck: false },
    ringBlocks: 1024,
  });
  const out = { records: 0, statuses: 0, timerStatuses: 0, timerWakes: 0, ownerChecks: 0 };
  /** Runs the writer at `now` (a record write or a status completes 0.5-4 ms after it starts) until it sleeps; returns its wake-up time. */
  const drive = (startMs: number, byTimer: boolean): { sleepUntilMs: number; doneMs: number } => {
    let now = startMs;
    if (byTimer && startMs >= WARMUP_MS) out.timerWakes++;
    for (let step = 0; step < 100; step++) {
      const action = core.next(now, input(standby));
      if (action.kind === "sleep") return { sleepUntilMs: action.untilMs, doneMs: now };
      if (action.kind === "readSuperblock") {
        out.ownerChecks++;
        now += 0.5 + 3.5 * random();
        core.superblockRead(now, core.superblock, "mem:test");
        continue;
      }
      if (action.kind !== "write") throw new Error(`unexpected ${action.kind}`);
      now += 0.5 + 3.5 * random();
      if (action.what === "record") {
        out.records++;
        core.completed(now, action.seq);
      } else {
        if (action.what === "status") {
          out.statuses++;
          if (byTimer && startMs >= WARMUP_MS) out.timerStatuses++;
        }
        core.completed(now);
      }
    }
    throw new Error("the writer never slept");
  };
  let writer = drive(0, false);
  const clock = new LinkClock(timers, DEFAULT_LINK_TICK_MS, 0);
  let turnMs = 0;
  while (turnMs < durationMs) {
    // Whatever comes first: the writer's timer or the clock's turn (both on the one event loop).
    while (writer.sleepUntilMs <= turnMs) writer = drive(Math.max(writer.sleepUntilMs, writer.doneMs), true);
    const now = Math.max(turnMs, writer.doneMs);
    const turn = clock.turn(now);
    if (turn.storage) {
      core.append(now, FrameType.Heartbeat, new Uint8Array(40), 0);
      writer = drive(now, false);
    }
    // The timer's delay rounded to whole ms, then up to 3 ms of event-loop delay.
    turnMs = now + Math.max(1, Math.round(turn.nextMs - now)) + 3 * random();
  }
  return out;
}

test("idle link: every status write is the one its heartbeat record brings, and the owner check rides a record: no wake-up on the writer's own timer", (t) => {
  // (A heartbeat period near STATUS_LONE_RECORD_GAP_MS or below has its status STATUS_IDLE_MS after
  // some records, on a timer by design: periods well above it are looked at here.)
  for (const heartbeatMs of [DEFAULT_TIMERS.storage.heartbeatMs, 500, 1000]) {
    for (let seed = 1; seed <= 5; seed++) {
      const r = idleWriter(seed, heartbeatMs, 60_000);
      t.true(r.records >= Math.floor(60_000 / heartbeatMs) - 1, `heartbeat ${heartbeatMs} ms seed ${seed}: ${r.records} records`);
      t.is(r.timerStatuses, 0, `heartbeat ${heartbeatMs} ms seed ${seed}: ${r.timerStatuses} status writes of their own (of ${r.statuses}, ${r.records} records)`);
      t.is(r.statuses, r.records + 1, `heartbeat ${heartbeatMs} ms seed ${seed}: one status per record (and the first)`);
      t.is(r.timerWakes, 0, `heartbeat ${heartbeatMs} ms seed ${seed}: ${r.timerWakes} wake-ups on the writer's own timer`);
      // The owner check still runs about once a second (at most one record gap late).
      const periodMs = 1000 + linkStatusIntervalMs(heartbeatMs);
      t.true(r.ownerChecks >= Math.floor(60_000 / periodMs) - 1, `heartbeat ${heartbeatMs} ms seed ${seed}: ${r.ownerChecks} owner checks`);
    }
  }
});

test("the interval stays a bound: a record that rides a late turn still comes before it", (t) => {
  for (const heartbeatMs of [10, 250, 1000, 60_000]) {
    const late = Math.ceil(0.25 * heartbeatMs);
    t.true(linkStatusIntervalMs(heartbeatMs) > heartbeatMs + late, `${heartbeatMs} ms`);
  }
});

test("owner check slack: with nothing to wake the writer, the check wakes it itself at due + slack; an append past due runs it at once", (t) => {
  const core = testWriterCore({ options: { maxDelayMs: 0, statusIntervalMs: 60_000, ownerCheckMs: 1000, ownerCheckSlackMs: 300 }, ringBlocks: 64 });
  const first = core.next(0, input());
  t.is(first.kind === "write" ? first.what : first.kind, "status");
  core.completed(0);
  t.deepEqual(core.next(0, input()), { kind: "sleep", untilMs: 1300 }, "not woken at 1000: the check waits for a wake-up it gets anyway");
  t.is(core.next(1300, input()).kind, "readSuperblock", "at the slack's end it runs on its own");
  core.superblockRead(1300, core.superblock, "mem:test");
  t.deepEqual(core.next(1300, input()), { kind: "sleep", untilMs: 2600 });
  core.append(2400, FrameType.Heartbeat, new Uint8Array(40), 0);
  t.is(core.next(2400, input()).kind, "readSuperblock", "an append after the check is due runs it first, in that wake-up");
});

test("idle link in standby: the status rides every other heartbeat record, never the writer's own timer", (t) => {
  for (const heartbeatMs of [DEFAULT_TIMERS.storage.heartbeatMs, 500, 1000]) {
    for (let seed = 1; seed <= 5; seed++) {
      const r = idleWriter(seed, heartbeatMs, 60_000, true);
      t.true(r.records >= Math.floor(60_000 / heartbeatMs) - 1, `heartbeat ${heartbeatMs} ms seed ${seed}: ${r.records} records`);
      t.is(r.timerStatuses, 0, `heartbeat ${heartbeatMs} ms seed ${seed}: ${r.timerStatuses} status writes of their own (of ${r.statuses}, ${r.records} records)`);
      t.is(r.timerWakes, 0, `heartbeat ${heartbeatMs} ms seed ${seed}: ${r.timerWakes} wake-ups on the writer's own timer`);
      t.true(Math.abs(r.statuses - (r.records / 2 + 1)) <= 1, `heartbeat ${heartbeatMs} ms seed ${seed}: ${r.statuses} status writes for ${r.records} records (one per two)`);
    }
  }
});

test("standby: a lone record within standbyStatusGapMs of the last status holds its status for a later record; leaving standby writes it at once", (t) => {
  const core = testWriterCore({ options: { maxDelayMs: 0, ...linkWriterPace(250), ownerCheckMs: 600_000, controlWaitsForAck: false }, ringBlocks: 64 });
  const gap = linkWriterPace(250);
  t.is(gap.standbyStatusGapMs, 375);
  t.is(gap.standbyStatusIntervalMs, 2 * linkStatusIntervalMs(250));
  const record = (atMs: number, standby: boolean): string[] => {
    core.append(atMs, FrameType.Heartbeat, new Uint8Array(40), 0);
    const done: string[] = [];
    for (;;) {
      const action = core.next(atMs, input(standby));
      if (action.kind === "sleep") return [...done, `sleep ${action.untilMs}`];
      if (action.kind !== "write") throw new Error(`unexpected ${action.kind}`);
      done.push(action.what);
      if (action.what === "record") core.completed(atMs, action.seq);
      else core.completed(atMs);
    }
  };
  t.is(core.next(0, input(true)).kind, "write");
  core.completed(0);
  t.deepEqual(record(250, true), ["record", `sleep ${gap.standbyStatusIntervalMs}`], "250 ms after the last status: held for a later record (no timer before the interval)");
  t.deepEqual(record(500, true), ["record", "status", `sleep ${500 + gap.standbyStatusIntervalMs}`], "two records on: it rides this one");
  t.deepEqual(record(750, true), ["record", `sleep ${500 + gap.standbyStatusIntervalMs}`]);
  t.deepEqual(record(1000, true), ["record", "status", `sleep ${1000 + gap.standbyStatusIntervalMs}`]);
  t.deepEqual(record(1250, true), ["record", `sleep ${1000 + gap.standbyStatusIntervalMs}`]);
  const leaving = core.next(1251, input(false));
  t.is(leaving.kind === "write" ? leaving.what : leaving.kind, "status", "standby ends: the held status goes out at once");
  core.completed(1251);
  t.deepEqual(record(1500, false).slice(0, 2), ["record", "status"], "out of standby: every lone record brings its status");
});
