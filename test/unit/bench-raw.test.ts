// bench raw's slice method: every tool runs in each slice (forward, then backward), a tool's
// measures are the medians of its slices, and a ratio is the median of the slices' paired ratios,
// so a machine that slows down for a slice moves both sides of that slice's pair. Numbers made up.
import test from "ava";

import { sliceMedians, sliceOrder, type Cell } from "../../bench/raw.ts";
import { median, pairedRatios } from "../../bench/stats.ts";

const cell = (bytesPerSecond: number, latencyUsP50 = 100): Cell => ({ bytesPerSecond, latencyUsP50, latencyUsP99: 2 * latencyUsP50, cpuPercent: 10 });

test("slices alternate forward and backward, each tool once per slice", (t) => {
  t.deepEqual(sliceOrder(5, 0), [0, 1, 2, 3, 4]);
  t.deepEqual(sliceOrder(5, 1), [4, 3, 2, 1, 0]);
  t.deepEqual(sliceOrder(5, 2), [0, 1, 2, 3, 4]);
  // Over a pair of slices every tool has the same mean position.
  const positions = [0, 1, 2, 3].map((tool) => sliceOrder(4, 0).indexOf(tool) + sliceOrder(4, 1).indexOf(tool));
  t.deepEqual(positions, [3, 3, 3, 3]);
});

test("median of odd and even counts, NaN when empty; the input is left unsorted", (t) => {
  const values = [5, 1, 3];
  t.is(median(values), 3);
  t.deepEqual(values, [5, 1, 3]);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.true(Number.isNaN(median([])));
});

test("a slow slice that slows both sides leaves the paired ratio where it was", (t) => {
  // lunlink at 0.9x psync throughout; in slice 2 the machine runs at a fifth of its speed for both.
  const psync = [500, 520, 100, 510];
  const lunlink = psync.map((v) => v * 0.9);
  const paired = pairedRatios(lunlink, psync);
  t.true(Math.abs(paired.median - 0.9) < 1e-9);
  t.true(Math.abs(paired.min - 0.9) < 1e-9 && Math.abs(paired.max - 0.9) < 1e-9);
  // One run each at different minutes (the method before slices) reads the slow minute as lunlink's.
  t.true(Math.abs(lunlink[2]! / psync[3]! - 0.18) < 0.01);
});

test("paired ratios skip slices whose reference measured nothing and refuse unequal slice counts", (t) => {
  const paired = pairedRatios([100, 50, 90], [100, 0, 100]);
  t.is(paired.median, 0.95);
  t.is(paired.min, 0.9);
  t.is(paired.max, 1);
  t.true(Number.isNaN(pairedRatios([1], [0]).median));
  t.throws(() => pairedRatios([1, 2], [1]), { message: /2 slices against 1/ });
});

test("a tool's slices summarise as the median of each measure", (t) => {
  const summary = sliceMedians([cell(100, 50), cell(300, 70), cell(200, 60)]);
  t.deepEqual(summary, { bytesPerSecond: 200, latencyUsP50: 60, latencyUsP99: 120, cpuPercent: 10 });
});
