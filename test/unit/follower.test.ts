// The follower's pace (lib/poll/adaptive-wait.ts) and loop (lib/poll/follower.ts) on a fake clock:
// it backs off while idle, snaps back on a record, never exceeds its bounds, and the loop waits in
// the reader's watch with that pace (a scripted reader: time moves only by what each watch waits).
import test from "ava";
import fc from "fast-check";

import { ErrorCode } from "../../lib/errors.ts";
import { AdaptiveWait, GAP_SLEEP_FRACTION, SLEEP_GROWTH, WATCH_REREADS, type AdaptiveWaitOptions } from "../../lib/poll/adaptive-wait.ts";
import { follow } from "../../lib/poll/follower.ts";
import type { PollOutcome } from "../../lib/ring/reader.ts";
import { logSeed, SEED } from "../helpers/random.ts";

const PACE: AdaptiveWaitOptions = { minSleepUs: 50, maxSleepUs: 16_000, periodMs: 20, idlePeriodMs: 250 };

test("an idle wait backs off from minSleepUs by SLEEP_GROWTH per unchanged wait and stops at maxSleepUs", (t) => {
  const wait = new AdaptiveWait(PACE);
  const sleeps: number[] = [];
  for (let i = 0; i < 8; i++) {
    sleeps.push(wait.next(0).sleepUs);
    wait.waited(0, false);
  }
  t.deepEqual(sleeps, [50, 400, 3200, 16_000, 16_000, 16_000, 16_000, 16_000]);
  t.is(SLEEP_GROWTH, 8);
});

test("a wait below the bound lasts about WATCH_REREADS re-reads; at the bound, until the periodic task is due", (t) => {
  const wait = new AdaptiveWait(PACE);
  wait.periodicRan(0);
  t.deepEqual(wait.next(0), { sleepUs: 50, timeoutMs: 1 });
  for (let i = 0; i < 2; i++) wait.waited(0, false);
  t.deepEqual(wait.next(0), { sleepUs: 3200, timeoutMs: Math.ceil((3200 * WATCH_REREADS) / 1000) });
  wait.waited(0, false);
  t.deepEqual(wait.next(10), { sleepUs: 16_000, timeoutMs: 240 }, "idle: back when the idle period ends");
});

test("a changed block keeps the pace; a record snaps the sleep and the periodic task back", (t) => {
  const wait = new AdaptiveWait(PACE);
  wait.periodicRan(0);
  for (let i = 0; i < 20; i++) wait.waited(0, false);
  t.is(wait.sleepUs, 16_000);
  wait.waited(0, true);
  t.is(wait.sleepUs, 16_000, "a change that was no record yet (torn, being written) does not speed up or slow down");
  t.is(wait.periodMs, 250, "nothing to report: the idle period");
  t.false(wait.periodicDue(249));
  wait.record(0);
  t.is(wait.sleepUs, 50);
  t.is(wait.periodMs, 20, "a record to report: the short period");
  t.true(wait.periodicDue(20));
  wait.periodicRan(20);
  t.is(wait.periodMs, 250, "reported: idle again until the next record");
});

test("the periodic task is due at once, then periodMs after a record and every idlePeriodMs without one", (t) => {
  const wait = new AdaptiveWait(PACE);
  t.true(wait.periodicDue(0));
  wait.periodicRan(0);
  t.false(wait.periodicDue(249));
  t.true(wait.periodicDue(250));
  wait.record(0);
  t.false(wait.periodicDue(19));
  t.true(wait.periodicDue(20));
  t.is(wait.next(5).timeoutMs, 1, "short re-reads right after the record");
  for (let i = 0; i < 5; i++) wait.waited(0, false);
  t.is(wait.next(5).timeoutMs, 15, "at the bound: back when the periodic task is due");
});

test("records at a steady gap keep the sleep below gap / GAP_SLEEP_FRACTION until two gaps pass without one", (t) => {
  const wait = new AdaptiveWait(PACE);
  for (const at of [0, 10, 20, 30]) wait.record(at);
  wait.periodicRan(30);
  const sleeps: number[] = [];
  for (const at of [30.5, 31.5, 33]) {
    wait.waited(at, false);
    sleeps.push(wait.sleepUs);
  }
  t.deepEqual(sleeps, [400, (10 * 1000) / GAP_SLEEP_FRACTION, 1250], "capped at 1250 us for a 10 ms rhythm");
  t.is(wait.next(33).timeoutMs, 17, "at the cap, back in JS when the rhythm is broken (two gaps after the last record)");
  wait.waited(50, false);
  t.is(wait.sleepUs, 10_000, "rhythm broken: backing off again");
  wait.waited(51, false);
  t.is(wait.sleepUs, PACE.maxSleepUs);
});

test("options out of range are refused with coded errors", (t) => {
  t.throws(() => new AdaptiveWait({ ...PACE, maxSleepUs: 10 }), { code: ErrorCode.InvalidArgument });
  t.throws(() => new AdaptiveWait({ ...PACE, idlePeriodMs: 10 }), { code: ErrorCode.InvalidArgument });
  t.throws(() => new AdaptiveWait({ ...PACE, periodMs: 0 }), { code: ErrorCode.InvalidArgument });
});

test("property: whatever happens, sleeps stay in [minSleepUs, maxSleepUs] and a wait's timeout in [1, idlePeriodMs]", (t) => {
  logSeed(t);
  const event = fc.oneof(
    fc.record({ kind: fc.constant("record" as const), afterMs: fc.integer({ min: 0, max: 1000 }) }),
    fc.record({ kind: fc.constant("waited" as const), afterMs: fc.integer({ min: 0, max: 1000 }), changed: fc.boolean() }),
    fc.record({ kind: fc.constant("periodic" as const), afterMs: fc.integer({ min: 0, max: 1000 }) }),
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 5000 }),
      fc.integer({ min: 1, max: 100_000 }),
      fc.integer({ min: 1, max: 500 }),
      fc.integer({ min: 0, max: 5000 }),
      fc.array(event, { maxLength: 200 }),
      (minSleepUs, extraUs, periodMs, extraMs, events) => {
        const pace = { minSleepUs, maxSleepUs: Math.max(1, minSleepUs + extraUs), periodMs, idlePeriodMs: periodMs + extraMs };
        let now = 0;
        const wait = new AdaptiveWait(pace);
        for (const e of events) {
          now += e.afterMs;
          if (e.kind === "record") wait.record(now);
          else if (e.kind === "waited") wait.waited(now, e.changed);
          else if (wait.periodicDue(now)) wait.periodicRan(now);
          const next = wait.next(now);
          if (next.sleepUs < pace.minSleepUs || next.sleepUs > pace.maxSleepUs) return false;
          if (next.timeoutMs < 1 || next.timeoutMs > pace.idlePeriodMs || !Number.isInteger(next.timeoutMs)) return false;
          if (e.kind === "record" && next.sleepUs !== pace.minSleepUs) return false;
        }
        return true;
      },
    ),
    { numRuns: 300, seed: SEED },
  );
  t.pass();
});

/**
 * A scripted ring: records land at the given times (ms); the reader's watch "sleeps" on the fake clock
 * (sleepUs per re-read) and returns as soon as a record landed or the timeout passed.
 */
function scriptedRing(recordTimesMs: number[]) {
  let nowMs = 0;
  let delivered = 0;
  const landed = () => recordTimesMs.filter((at) => at <= nowMs).length;
  const watches: { atMs: number; sleepUs: number; timeoutMs: number }[] = [];
  const polls: { atMs: number; outcome: PollOutcome }[] = [];
  const periodic: number[] = [];
  const reader = {
    watch: async (o: { compareBytes: number; sleepUs: number; timeoutMs: number }): Promise<boolean> => {
      watches.push({ atMs: nowMs, ...o });
      const until = nowMs + o.timeoutMs;
      const stepMs = Math.max(o.sleepUs / 1000, 0.001);
      while (nowMs < until) {
        nowMs = Math.min(until, nowMs + stepMs);
        if (landed() > delivered) return true;
      }
      return false;
    },
  };
  return {
    reader,
    now: () => nowMs,
    watches,
    polls,
    periodic,
    poll: async (): Promise<PollOutcome> => {
      const outcome: PollOutcome = landed() > delivered ? "delivered" : "waiting";
      if (outcome === "delivered") delivered++;
      polls.push({ atMs: nowMs, outcome });
      return outcome;
    },
    get delivered() {
      return delivered;
    },
  };
}

test("follow(): backs off while idle, snaps back on the first record, and sees every record within maxSleepUs of its landing", async (t) => {
  const records = [5000, 5001, 5002, 9000];
  const ring = scriptedRing(records);
  await follow(
    { reader: ring.reader, pace: PACE, running: () => ring.now() < 12_000, now: ring.now },
    {
      poll: () => ring.poll(),
      periodic: async () => {
        ring.periodic.push(ring.now());
        return false;
      },
    },
  );
  t.is(ring.delivered, records.length);
  const deliveredAt = ring.polls.filter((p) => p.outcome === "delivered").map((p) => p.atMs);
  for (const [i, at] of deliveredAt.entries()) t.true(at - records[i]! <= PACE.maxSleepUs / 1000, `record ${i} landed at ${records[i]} ms, seen at ${at} ms`);
  const sleeps = ring.watches.map((w) => w.sleepUs);
  t.true(sleeps.every((s) => s >= PACE.minSleepUs && s <= PACE.maxSleepUs));
  const before = ring.watches.filter((w) => w.atMs < 5000);
  t.is(before.at(-1)!.sleepUs, PACE.maxSleepUs, "idle before the first record: fully backed off");
  const after = ring.watches.find((w) => w.atMs >= deliveredAt[2]!);
  t.is(after!.sleepUs, PACE.minSleepUs, "the first wait after the records starts at minSleepUs again");
  // The periodic task: never more often than periodMs; once after each record (4), else every idlePeriodMs.
  for (let i = 1; i < ring.periodic.length; i++) t.true(ring.periodic[i]! - ring.periodic[i - 1]! >= PACE.periodMs);
  const bound = 12_000 / PACE.idlePeriodMs + records.length + 1;
  t.true(ring.periodic.length <= bound, `${ring.periodic.length} periodic runs in 12 s (bound ${bound})`);
  t.true(ring.periodic.some((at) => at >= 5000 && at <= 5002 + PACE.periodMs), "the records are reported within periodMs");
  // Idle cost: once backed off, one JS turn (wait) per idlePeriodMs.
  const idleWaits = ring.watches.filter((w) => w.atMs > 1000 && w.atMs < 5000).length;
  t.true(idleWaits <= Math.ceil(4000 / PACE.idlePeriodMs) + 1, `${idleWaits} waits in 4 s of idle`);
  const rampWaits = ring.watches.filter((w) => w.atMs > 9000 && w.atMs < 9000 + PACE.idlePeriodMs).length;
  t.true(rampWaits <= 6, `${rampWaits} waits to back off after a record (3 growth steps, a periodic task)`);
});

test("follow(): a periodic task that made progress (a new epoch) polls at once, without waiting", async (t) => {
  const ring = scriptedRing([]);
  let epochs = 1;
  await follow(
    { reader: ring.reader, pace: PACE, running: () => ring.polls.length < 3, now: ring.now },
    {
      poll: () => ring.poll(),
      periodic: async () => epochs-- > 0,
    },
  );
  t.is(ring.watches.length, 1, "the first turn's periodic task made progress: the second poll came without a wait");
  t.is(ring.polls[1]!.atMs, 0);
});

test("follow(): a pause (a full queue) holds the loop before the next poll", async (t) => {
  const ring = scriptedRing([1, 2, 3]);
  let release: (() => void) | undefined;
  let paused = 0;
  const done = follow(
    { reader: ring.reader, pace: PACE, running: () => ring.delivered < 3, now: ring.now },
    {
      poll: () => ring.poll(),
      periodic: async () => false,
      paused: () => (ring.delivered === 1 && paused++ === 0 ? new Promise<void>((resolve) => (release = resolve)) : undefined),
    },
  );
  await new Promise((resolve) => setImmediate(resolve));
  t.is(ring.delivered, 1, "held after the first record");
  release!();
  await done;
  t.is(ring.delivered, 3);
});
