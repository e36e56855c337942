// bench latency's breakdown: what a round met (causesOf). A probe sent while the previous probe's
// write was still in flight (its O_DSYNC flush outlives the reader's view of the record) is counted
// behind that write, its own write is the first record write after the send, and a status write
// overlapping the round is named; times are made up (ms), no device.
import test from "ava";

import { causesOf, MONO_OFFSET_MS, samplesOf, sliceOrder, slicePeriod, slowRounds, type IoLog, type RoundTrace } from "../../bench/latency.ts";
import { slicedRatioInterval } from "../../bench/stats.ts";

const round: RoundTrace = { sentMs: 10, writtenMs: 13.2, wokeMs: 13.5, deliveredMs: 13.6, loopActiveMs: 0.3, slice: 0, round: 7, sinceRowStartMs: 3 };

test("a probe sent while the previous probe's write is in flight waits behind it, then its own write runs", (t) => {
  const io: IoLog = {
    writes: [
      { startMs: 9, endMs: 12.9, what: "record" }, // the previous probe's write, flushing when this one is sent
      { startMs: 12.95, endMs: 13.2, what: "record" }, // this probe's write
    ],
    watches: [{ startMs: 12.85, endMs: 13.5, what: "100" }],
  };
  const c = causesOf(round, io);
  t.is(c.inFlightAtSend, 1);
  t.true(Math.abs(c.behindMs - 2.9) < 1e-9);
  t.true(Math.abs(c.queuedMs - 2.95) < 1e-9);
  t.true(Math.abs(c.writeMs - 0.25) < 1e-9);
  t.false(c.statusOverlap);
  t.is(c.watchSleepUs, 100); // 350 us into a watch that started at 100 us: still at 100 us (4 x 100 us)
});

test("a round with nothing in flight at send and a status write during it", (t) => {
  const io: IoLog = {
    writes: [
      { startMs: 10.02, endMs: 13.2, what: "record" },
      { startMs: 11, endMs: 11.3, what: "status" },
    ],
    watches: [{ startMs: 10.1, endMs: 13.5, what: "100" }],
  };
  const c = causesOf(round, io);
  t.is(c.inFlightAtSend, 0);
  t.is(c.behindMs, 0);
  t.true(c.statusOverlap);
  t.is(c.watchSleepUs, 800); // 3.1 ms into the watch: past 4 x 100 us, at 8 x 100 us
});

test("--slow: a round found without a watch of its own shows no wake step, not the earlier round's wake time", (t) => {
  // Found by a read right after the write (no watch ended in this round): wokeMs is still the
  // previous round's, before this round's send; --slow printed -17 s for such rounds.
  const found: RoundTrace = { sentMs: 20, writtenMs: 20.3, wokeMs: 13.5, deliveredMs: 25, loopActiveMs: 4, slice: 1, round: 9, sinceRowStartMs: 5 };
  const io: IoLog = { writes: [{ startMs: 20.01, endMs: 20.3, what: "record" }], watches: [{ startMs: 12.85, endMs: 13.5, what: "100" }] };
  const [row] = slowRounds("(b)", [found], io);
  t.is(row![7], "-"); // write done -> woke
  t.is(row![9], "-"); // woke -> delivered
  t.is(row![3], "5000"); // the round's total stays
  t.is(row![2], "1 / 9 / 0.01"); // slice / round / s into the slice
  const [watched] = slowRounds("(a)", [round], { writes: [{ startMs: 10.02, endMs: 13.2, what: "record" }], watches: [{ startMs: 10.1, endMs: 13.5, what: "100" }] });
  t.is(watched![7], "300");
  t.is(watched![9], "100");
});

test("--profile: a profile's samples become spans on performance.now's clock, each lasting until the next sample", (t) => {
  // A profile counts CLOCK_MONOTONIC us; performance.now() + MONO_OFFSET_MS is the same clock in ms.
  const startUs = (100 + MONO_OFFSET_MS) * 1000;
  const profile = {
    nodes: [
      { id: 1, callFrame: { functionName: "(root)", scriptId: "0", url: "", lineNumber: -1, columnNumber: -1 } },
      { id: 2, callFrame: { functionName: "poll", scriptId: "1", url: "file:///x/lib/ring/reader.ts", lineNumber: 9, columnNumber: 0 } },
      { id: 3, callFrame: { functionName: "(garbage collector)", scriptId: "0", url: "", lineNumber: -1, columnNumber: -1 } },
    ],
    startTime: startUs,
    endTime: startUs + 400,
    samples: [2, 3, 2],
    timeDeltas: [50, 50, 200],
  };
  const spans = samplesOf(profile);
  t.is(spans.length, 3);
  t.is(spans[0]!.what, "poll reader.ts:10");
  t.is(spans[1]!.what, "(garbage collector)");
  t.true(Math.abs(spans[0]!.startMs - 100.05) < 1e-6); // first sample: startTime + its delta
  t.true(Math.abs(spans[0]!.endMs - 100.1) < 1e-6); // ... until the next sample
  t.true(Math.abs(spans[1]!.endMs - 100.3) < 1e-6);
  t.true(Math.abs(spans[2]!.endMs - 100.4) < 1e-6); // the last lasts until the profile's end
});

test("sliceOrder: over one period every row runs once per slice, once in each position, and right after each other row equally often", (t) => {
  // A Williams design: period n for even n, 2n for odd n (5 default rows: 10; 9 with --engines: 18).
  for (const n of [1, 2, 4, 5, 9]) {
    const period = slicePeriod(n);
    t.is(period, n % 2 === 0 ? n : 2 * n);
    const atPosition = Array.from({ length: n }, () => new Map<number, number>());
    const after = new Map<string, number>();
    for (let slice = 0; slice < period; slice++) {
      const order = sliceOrder(n, slice);
      t.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), `n ${n} slice ${slice}: a permutation`);
      order.forEach((row, position) => atPosition[position]!.set(row, (atPosition[position]!.get(row) ?? 0) + 1));
      for (let j = 1; j < n; j++) after.set(`${order[j - 1]}>${order[j]}`, (after.get(`${order[j - 1]}>${order[j]}`) ?? 0) + 1);
      t.deepEqual(sliceOrder(n, slice + period), order, `n ${n}: the orders repeat after the period`);
    }
    const perPosition = period / n;
    for (const [position, rows] of atPosition.entries()) {
      t.is(rows.size, n, `n ${n}: every row at position ${position}`);
      t.true([...rows.values()].every((count) => count === perPosition), `n ${n}: position ${position} balanced`);
    }
    if (n > 1) {
      t.is(after.size, n * (n - 1), `n ${n}: every ordered pair of rows adjacent`);
      t.true([...after.values()].every((count) => count === perPosition), `n ${n}: each pair adjacent ${perPosition} times`);
    }
  }
  t.deepEqual(sliceOrder(5, 0), [0, 1, 4, 2, 3]);
  t.deepEqual(sliceOrder(5, 5), [3, 2, 4, 1, 0]);
});

/** A seeded generator (mulberry32) for the bootstrap, so its draws repeat. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const slice = (values: number[]): Float64Array => Float64Array.from(values).sort();

test("the p99 ratio's bootstrap interval: a single point for uniform slices, wide when one slice holds a burst of slow rounds", (t) => {
  // 10 slices of 200 rounds; C at 500 us everywhere.
  const c = Array.from({ length: 10 }, () => slice(Array.from({ length: 200 }, (_, i) => 450 + (i % 100))));
  const even = c.map((s) => s.map((v) => v * 1.5));
  const flat = slicedRatioInterval(even, c, 99, 200, seeded(1));
  t.true(Math.abs(flat.low - 1.5) < 1e-9 && Math.abs(flat.high - 1.5) < 1e-9);
  // The same row with a burst of 30 slow rounds (4 ms) in slice 3: the pooled p99 is 4 ms or the
  // ordinary tail depending on whether slice 3 was drawn (and how often).
  const burst = even.map((s, k) => (k === 3 ? slice([...s.subarray(30), ...Array.from({ length: 30 }, () => 4000)]) : s));
  const wide = slicedRatioInterval(burst, c, 99, 400, seeded(2));
  t.true(wide.low < 1.6, `low ${wide.low}`);
  t.true(wide.high > 7, `high ${wide.high}`);
  t.deepEqual(slicedRatioInterval(burst, c, 99, 400, seeded(2)), wide, "the same draws give the same interval");
});

test("the bootstrap interval refuses unequal slice counts and is NaN for no slices", (t) => {
  t.throws(() => slicedRatioInterval([slice([1])], [], 99), { message: /1 slices against 0/ });
  const none = slicedRatioInterval([], [], 99);
  t.true(Number.isNaN(none.low) && Number.isNaN(none.high));
});
