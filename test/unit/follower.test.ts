// The follower's pace (lib/poll/adaptive-wait.ts) and loop (lib/poll/follower.ts) on a fake clock:
// it backs off while idle, snaps back on a record, never exceeds its bounds, and the loop waits in
// the reader's watch with that pace (a scripted reader: time moves only by what each watch waits).
import test from "ava";
import fc from "fast-check";

import { ErrorCode } from "../../lib/errors.ts";
import { AdaptiveWait, GAP_SLEEP_FRACTION, SLEEP_GROWTH, WATCH_REREADS, paceAfter, type AdaptiveWaitOptions } from "../../lib/poll/adaptive-wait.ts";
import type { WatchOptions } from "../../lib/io/volume.ts";
import { follow } from "../../lib/poll/follower.ts";
import type { PollOutcome } from "../../lib/ring/reader.ts";
import { logSeed, SEED } from "../helpers/random.ts";

const PACE: AdaptiveWaitOptions = { minSleepUs: 50, maxSleepUs: 16_000, periodMs: 20, idlePeriodMs: 250 };

test("paceAfter(): each sleep is kept WATCH_REREADS times its length, then grows by SLEEP_GROWTH, up to the bound", (t) => {
  t.is(WATCH_REREADS, 4);
  t.is(SLEEP_GROWTH, 8);
  const at = (elapsedUs: number) => paceAfter(50, 16_000, elapsedUs);
  t.deepEqual([0, 199, 200, 1799, 1800, 14_599, 14_600, 1_000_000].map(at), [50, 50, 400, 400, 3200, 3200, 16_000, 16_000]);
  t.is(paceAfter(16_000, 1250, 0), 1250, "a start above the bound (the rhythm came back) is capped");
  t.deepEqual([0, 4, 8, 40].map((e) => paceAfter(0, 100, e)), [0, 1, 8, 64], "a zero sleep grows too");
  t.is(paceAfter(300, 300, 1e9), 300, "start = bound: a constant pace");
});

test("a wait backs off natively from minSleepUs to maxSleepUs; the next one starts where it left off", (t) => {
  const wait = new AdaptiveWait(PACE);
  wait.periodicRan(0);
  t.deepEqual(wait.next(0), { sleepUs: 50, maxSleepUs: 16_000, timeoutMs: 250 }, "idle: one wait per idle period");
  wait.waited(1, false);
  t.is(wait.sleepUs, 400, "1 ms into the wait the watch sleeps 400 us");
  wait.next(1);
  wait.waited(20, false);
  t.is(wait.sleepUs, 16_000);
  t.deepEqual(wait.next(20), { sleepUs: 16_000, maxSleepUs: 16_000, timeoutMs: 230 }, "back when the idle period ends");
});

test("a changed block keeps the pace; a record snaps the sleep and the periodic task back", (t) => {
  const wait = new AdaptiveWait(PACE);
  wait.periodicRan(0);
  wait.next(0);
  wait.waited(100, false);
  t.is(wait.sleepUs, 16_000);
  wait.next(100);
  wait.waited(150, true);
  t.is(wait.sleepUs, 16_000, "a change that was no record yet (torn, being written) does not speed up or slow down");
  t.is(wait.periodMs, 250, "nothing to report: the idle period");
  t.false(wait.periodicDue(249));
  wait.record(0);
  t.is(wait.sleepUs, 50);
  t.is(wait.periodMs, 20, "a record to report: the short period");
  t.true(wait.periodicDue(20));
  wait.periodicRan(20);
  t.is(wait.periodMs, 250, "reported: idle again until the next record");
  wait.waited(30, false);
  t.is(wait.sleepUs, 50, "no wait started: nothing to back off from");
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
  t.deepEqual(wait.next(5), { sleepUs: 50, maxSleepUs: 16_000, timeoutMs: 15 }, "right after the record: back when the periodic task is due");
});

test("records at a steady gap keep the sleep below gap / GAP_SLEEP_FRACTION until two gaps pass without one", (t) => {
  const wait = new AdaptiveWait(PACE);
  for (const at of [0, 10, 20, 30]) wait.record(at);
  wait.periodicRan(30);
  const pace = wait.next(30);
  t.deepEqual(pace, { sleepUs: 50, maxSleepUs: (10 * 1000) / GAP_SLEEP_FRACTION, timeoutMs: 20 }, "capped at 1250 us for a 10 ms rhythm, back in JS when the rhythm is broken");
  wait.waited(50, false);
  t.is(wait.sleepUs, 1250);
  t.deepEqual(wait.next(50), { sleepUs: 1250, maxSleepUs: PACE.maxSleepUs, timeoutMs: 230 }, "rhythm broken: backing off to maxSleepUs, back when the periodic task is due");
  wait.waited(52, false);
  t.is(wait.sleepUs, 1250);
  wait.next(52);
  wait.waited(60, false);
  t.is(wait.sleepUs, 10_000);
});

test("options out of range are refused with coded errors", (t) => {
  t.throws(() => new AdaptiveWait({ ...PACE, maxSleepUs: 10 }), { code: ErrorCode.InvalidArgument });
  t.throws(() => new AdaptiveWait({ ...PACE, idlePeriodMs: 10 }), { code: ErrorCode.InvalidArgument });
  t.throws(() => new AdaptiveWait({ ...PACE, periodMs: 0 }), { code: ErrorCode.InvalidArgument });
});

test("property: whatever happens, a wait's sleeps stay in [minSleepUs, maxSleepUs], start at most at its bound, and its timeout in [1, idlePeriodMs]", (t) => {
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
          if (next.sleepUs < pace.minSleepUs || next.sleepUs > next.maxSleepUs || next.maxSleepUs > pace.maxSleepUs) return false;
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
 * like the addon's (from sleepUs backing off to maxSleepUs by paceAfter()) and returns as soon as a
 * record landed or the timeout passed. `reads` counts its re-reads.
 */
function scriptedRing(recordTimesMs: number[]) {
  let nowMs = 0;
  let delivered = 0;
  let reads = 0;
  const landed = () => recordTimesMs.filter((at) => at <= nowMs).length;
  const watches: { atMs: number; sleepUs: number; maxSleepUs: number; timeoutMs: number; untilSeq?: bigint }[] = [];
  const polls: { atMs: number; outcome: PollOutcome }[] = [];
  const periodic: number[] = [];
  const reader = {
    /** The seq the reader expects next: records are numbered from 0 in the order they land. */
    get seq(): bigint {
      return BigInt(delivered);
    },
    watch: async (o: WatchOptions): Promise<boolean> => {
      const maxSleepUs = o.maxSleepUs ?? o.sleepUs;
      watches.push({ atMs: nowMs, sleepUs: o.sleepUs, maxSleepUs, timeoutMs: o.timeoutMs, ...(o.untilStamp === undefined ? {} : { untilSeq: o.untilStamp.seq }) });
      const startMs = nowMs;
      const until = nowMs + o.timeoutMs;
      for (;;) {
        reads++;
        if (landed() > delivered) return true;
        if (nowMs >= until) return false;
        nowMs = Math.min(until, nowMs + Math.max(paceAfter(o.sleepUs, maxSleepUs, (nowMs - startMs) * 1000) / 1000, 0.001));
      }
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
    get reads() {
      return reads;
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
  t.true(ring.watches.every((w) => w.sleepUs >= PACE.minSleepUs && w.sleepUs <= w.maxSleepUs && w.maxSleepUs <= PACE.maxSleepUs));
  const before = ring.watches.filter((w) => w.atMs < 5000);
  t.is(before.at(-1)!.sleepUs, PACE.maxSleepUs, "idle before the first record: fully backed off");
  const after = ring.watches.find((w) => w.atMs >= deliveredAt[2]!);
  t.is(after!.sleepUs, PACE.minSleepUs, "the first wait after the records starts at minSleepUs again");
  // The periodic task: never more often than periodMs; once after each record (4), else every idlePeriodMs.
  for (let i = 1; i < ring.periodic.length; i++) t.true(ring.periodic[i]! - ring.periodic[i - 1]! >= PACE.periodMs);
  const bound = 12_000 / PACE.idlePeriodMs + records.length + 1;
  t.true(ring.periodic.length <= bound, `${ring.periodic.length} periodic runs in 12 s (bound ${bound})`);
  t.true(ring.periodic.some((at) => at >= 5000 && at <= 5002 + PACE.periodMs), "the records are reported within periodMs");
  // Idle cost: one JS turn (wait) per idlePeriodMs, one re-read per maxSleepUs.
  const idleWaits = ring.watches.filter((w) => w.atMs > 1000 && w.atMs < 5000).length;
  t.true(idleWaits <= Math.ceil(4000 / PACE.idlePeriodMs) + 1, `${idleWaits} waits in 4 s of idle`);
  const rampWaits = ring.watches.filter((w) => w.atMs > 9000 && w.atMs < 9000 + PACE.idlePeriodMs).length;
  t.true(rampWaits <= 2, `${rampWaits} waits after a record (the back-off is the watch's: one until the periodic task, one after it)`);
  // Each wait re-reads at most WATCH_REREADS + 1 times per sleep below maxSleepUs (50, 400, 3200 us).
  const readBound = Math.ceil(12_000 / (PACE.maxSleepUs / 1000)) + ring.watches.length * (3 * (WATCH_REREADS + 1) + 1);
  t.true(ring.reads <= readBound, `${ring.reads} re-reads in 12 s (bound ${readBound})`);
});

test("follow(): a record a watch found is polled past at once; the next slot empty, a stamp watch for the next seq follows", async (t) => {
  const records = [5000, 5030, 9000];
  const ring = scriptedRing(records);
  await follow({ reader: ring.reader, pace: PACE, running: () => ring.now() < 10_000, now: ring.now }, { poll: () => ring.poll(), periodic: async () => false });
  t.is(ring.delivered, records.length);
  for (const [i, at] of records.entries()) {
    const seen = ring.polls.findIndex((p) => p.outcome === "delivered" && p.atMs >= at);
    t.deepEqual(ring.polls[seen + 1], { atMs: ring.polls[seen]!.atMs, outcome: "waiting" }, `after record ${i}: one poll at once`);
    const next = ring.watches.find((w) => w.atMs >= ring.polls[seen]!.atMs);
    t.is(next?.untilSeq, BigInt(i + 1), `after record ${i}: then a watch for the stamp of seq ${i + 1}`);
  }
  t.true(
    ring.watches.filter((w) => w.untilSeq !== undefined).every((w) => ring.polls.some((p) => p.outcome === "delivered" && p.atMs === w.atMs)),
    "stamp watches only right after a record",
  );
  // Polls: one per record, plus one per watch (the one after it, or the one at once after a record).
  t.true(ring.polls.filter((p) => p.outcome === "waiting").length <= ring.watches.length + records.length, `${ring.polls.length} polls for ${ring.watches.length} watches`);
});

test("follow(): a backlog that forms after a watch found a record (records landing faster than they are read) is polled in a row, not watched record by record", async (t) => {
  // A watch finds the first record at 5000 ms; by then four more have landed (a loaded mirror's
  // case): they are read by polls in a row (through the read-ahead), with no watch between them.
  const records = [5000, 5000, 5000, 5000, 5000];
  const ring = scriptedRing(records);
  await follow({ reader: ring.reader, pace: PACE, running: () => ring.delivered < records.length, now: ring.now }, { poll: () => ring.poll(), periodic: async () => false });
  const firstAt = ring.polls.find((p) => p.outcome === "delivered")!.atMs;
  t.true(ring.watches.some((w) => w.atMs < firstAt), "the first record was found by a watch");
  t.deepEqual(
    ring.polls.filter((p) => p.atMs >= firstAt).map((p) => p.outcome),
    records.map(() => "delivered"),
  );
  t.is(ring.watches.filter((w) => w.atMs >= firstAt).length, 0, "no watch between the records of the backlog");
});

test("follow(): records read in a row (a backlog) are polled at once, through the read-ahead, not watched", async (t) => {
  const ring = scriptedRing([0, 0, 0]);
  await follow({ reader: ring.reader, pace: PACE, running: () => ring.delivered < 3, now: ring.now }, { poll: () => ring.poll(), periodic: async () => false });
  t.deepEqual(
    ring.polls.map((p) => p.outcome),
    ["delivered", "delivered", "delivered"],
  );
  t.is(ring.watches.length, 0);
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

test("follow(): in standby a record a watch found is followed by the stamp watch for the next seq, with no poll of the empty slot between; a backlog still ends that watch at once", async (t) => {
  const records = [1000, 1250, 1500, 1500, 1750];
  const ring = scriptedRing(records);
  const pace = new AdaptiveWait({ ...PACE, standbyMaxSleepUs: 100_000 });
  pace.standby(true);
  await follow({ reader: ring.reader, pace, running: () => ring.now() < 2000, now: ring.now }, { poll: () => ring.poll(), periodic: async () => false });
  t.is(ring.delivered, records.length);
  const deliveredAt = ring.polls.filter((p) => p.outcome === "delivered").map((p) => p.atMs);
  for (const [i, at] of deliveredAt.entries()) t.true(at >= records[i]! && at - records[i]! <= 100, `record ${i} landed at ${records[i]} ms, seen at ${at} ms (within the standby sleep)`);
  t.is(deliveredAt[3], deliveredAt[2], "a record already there when the watch starts ends it at once");
  for (const at of deliveredAt) t.false(ring.polls.some((p) => p.outcome === "waiting" && p.atMs === at), `no poll of the empty slot right after the record at ${at} ms`);
  for (const [i, at] of deliveredAt.entries()) {
    const next = ring.watches.find((w) => w.atMs === at && w.untilSeq === BigInt(i + 1));
    t.truthy(next, `after record ${i}: a stamp watch for seq ${i + 1} at once`);
  }
  // Out of standby: the poll follows, as before.
  const normal = scriptedRing([1000]);
  await follow({ reader: normal.reader, pace: PACE, running: () => normal.now() < 1100, now: normal.now }, { poll: () => normal.poll(), periodic: async () => false });
  t.deepEqual(normal.polls.filter((p) => p.atMs === 1000).map((p) => p.outcome), ["delivered", "waiting"]);
});
