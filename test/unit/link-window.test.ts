// The dedupe / anti-replay window at its edges: the exact oldest sequence it still judges, the
// first it calls old, a long in-order stream over many turns of its ring (stale bits from one turn
// must never look like duplicates in the next), small steps forward that must keep what was seen,
// and reset. The model test in link-core.test.ts covers random orders; these pin the boundaries.
import test from "ava";

import { SequenceWindow, WINDOW_BITS } from "../../lib/link/window.ts";

/** The window guarantees this many sequence numbers below the highest (one word is the slack). */
const GUARANTEED = BigInt(WINDOW_BITS - 32);

test("window: the oldest judged sequence is highest - (WINDOW_BITS - 33); one below that is old", (t) => {
  for (const highest of [10_000n, 10_015n, 10_031n, 2n ** 63n + 7n]) {
    const w = new SequenceWindow();
    t.is(w.check(highest), "new");
    const oldest = highest - GUARANTEED + 1n;
    t.is(w.check(oldest), "new", `highest ${highest}: ${oldest} is the oldest still inside`);
    t.is(w.check(oldest), "duplicate", `highest ${highest}: and it is remembered`);
    t.is(w.check(oldest - 1n), "old", `highest ${highest}: ${oldest - 1n} is just outside`);
    t.is(w.check(highest - 1n), "new", "the one just below the highest is inside");
    t.is(w.check(highest), "duplicate", "the highest itself is a duplicate, not new");
  }
});

test("window: sequence 0 is old, 1 is the first valid one, and a fresh window takes small numbers", (t) => {
  const w = new SequenceWindow();
  t.is(w.check(0n), "old");
  t.is(w.check(1n), "new");
  t.is(w.check(1n), "duplicate");
  t.is(w.check(0n), "old", "0 stays invalid after 1 was seen");
});

test("window: an in-order stream over several turns of the ring is new once and duplicate right after", (t) => {
  const w = new SequenceWindow();
  let wrong = 0;
  for (let seq = 1n; seq <= 4n * BigInt(WINDOW_BITS); seq++) {
    if (w.check(seq) !== "new") wrong++;
    if (w.check(seq) !== "duplicate") wrong++;
    // A number one turn of the ring back is outside the window, never a false duplicate.
    if (seq > BigInt(WINDOW_BITS) && w.check(seq - BigInt(WINDOW_BITS)) !== "old") wrong++;
  }
  t.is(wrong, 0, "every verdict of the stream as expected");
});

test("window: stepping forward by one, by one word and by one word plus one keeps what was seen", (t) => {
  for (const step of [1n, 31n, 32n, 33n, 64n, 1000n]) {
    const w = new SequenceWindow();
    const seen: bigint[] = [];
    for (let seq = 100n; seq < 100n + 40n * step; seq += step) {
      t.is(w.check(seq), "new", `step ${step}: ${seq} first time`);
      seen.push(seq);
    }
    const top = seen.at(-1)!;
    for (const seq of seen) {
      const expected = top - seq >= GUARANTEED ? "old" : "duplicate";
      t.is(w.check(seq), expected, `step ${step}: ${seq} again (highest ${top})`);
    }
  }
});

test("window: a sequence one ring turn ahead of a seen one is new (its slot was cleared when the window slid)", (t) => {
  const w = new SequenceWindow();
  const turn = BigInt(WINDOW_BITS);
  t.is(w.check(40n), "new");
  t.is(w.check(turn + 31n), "new", "slides most of a turn");
  t.is(w.check(turn + 40n), "new", "same slot as 40, one turn later: not a duplicate");
  t.is(w.check(2n * turn + 40n), "new", "a jump of exactly one more turn");
  t.is(w.check(2n * turn + 40n + turn * 10n), "new", "a jump of many turns");
  t.is(w.check(2n * turn + 40n + turn * 10n), "duplicate");
});

test("window: reset forgets every number and the highest", (t) => {
  const w = new SequenceWindow();
  t.is(w.check(50_000n), "new");
  t.is(w.check(49_999n), "new");
  w.reset();
  t.is(w.check(50_000n), "new", "seen before the reset: new after it");
  w.reset();
  t.is(w.check(5n), "new", "far below the old highest: inside the window again after a reset");
  t.is(w.check(5n), "duplicate");
});
