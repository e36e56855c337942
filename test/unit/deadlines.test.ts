import test from "ava";

import { DeadlineTracker } from "../../lib/io/deadlines.ts";
import { performance } from "node:perf_hooks";
import { pollUntil } from "../helpers/until.ts";

/**
 * Waits until the tracker's timer has run past a deadline, as `check` observes it. A fixed sleep
 * longer than the deadline is not that: a timer's start is libuv's loop time, cached when the turn
 * began, so on a loaded machine (a turn that ran 25 ms or more before add()) the tracker's timer and
 * the test's sleep came due in the same loop iteration, the tracker found its deadline (performance.now)
 * not yet passed and re-armed, and the sleep's callback ran first: parkedCount 0 under stress-ng.
 */
const expiry = (what: string, check: () => boolean): Promise<void> => pollUntil(what, check, 10_000, 1);

function tracker() {
  const events: string[] = [];
  const deadlines = new DeadlineTracker(
    (parked) => events.push(`stall:${parked}`),
    () => events.push("recover"),
  );
  return { events, deadlines };
}

test("a request completed before its deadline never expires", async (t) => {
  const { events, deadlines } = tracker();
  let expired = 0;
  deadlines.add(1, { deadlineMs: performance.now() + 30, expire: () => void expired++ });
  t.true(deadlines.complete(1));
  await new Promise((r) => setTimeout(r, 60));
  t.is(expired, 0);
  t.deepEqual(events, []);
  t.is(deadlines.liveCount, 0);
});

test("expired requests are parked until they complete, then the tracker recovers", async (t) => {
  const { events, deadlines } = tracker();
  const expired: number[] = [];
  const now = performance.now();
  deadlines.add(1, { deadlineMs: now + 10, expire: () => void expired.push(1) });
  deadlines.add(2, { deadlineMs: now + 10, expire: () => void expired.push(2) });
  deadlines.add(3, { deadlineMs: now + 100_000, expire: () => void expired.push(3) });
  await expiry("requests 1 and 2 expired", () => expired.length >= 2);
  t.deepEqual(expired, [1, 2]);
  t.deepEqual(events, ["stall:2"]);
  t.is(deadlines.parkedCount, 2);
  t.false(deadlines.complete(1), "a parked request reports that its caller was already told");
  t.deepEqual(events, ["stall:2"]);
  t.false(deadlines.complete(2));
  t.deepEqual(events, ["stall:2", "recover"]);
  t.true(deadlines.complete(3));
  t.is(deadlines.liveCount, 0);
});

test("unknown ids are ignored", (t) => {
  const { events, deadlines } = tracker();
  t.false(deadlines.complete(99));
  t.deepEqual(events, []);
});

test("a request cancelled at its deadline (expire returns false) is forgotten, not parked", async (t) => {
  const { events, deadlines } = tracker();
  const now = performance.now();
  deadlines.add(1, { deadlineMs: now + 10, expire: () => true });
  deadlines.add(2, { deadlineMs: now + 10, expire: () => false });
  await expiry("requests 1 and 2 past their deadline", () => !deadlines.isLive(1) && !deadlines.isLive(2));
  t.deepEqual(events, ["stall:1"]);
  t.is(deadlines.parkedCount, 1);
  t.false(deadlines.isLive(2));
  t.false(deadlines.complete(2), "a cancelled request is unknown: nothing waits for it");
  t.deepEqual(events, ["stall:1"]);
  t.false(deadlines.complete(1));
  t.deepEqual(events, ["stall:1", "recover"]);
});

test("a throwing recover listener leaves the tracker consistent", async (t) => {
  const deadlines = new DeadlineTracker(
    () => undefined,
    () => {
      throw new Error("listener bug");
    },
  );
  deadlines.add(1, { deadlineMs: performance.now() + 5, expire: () => true });
  await expiry("request 1 past its deadline", () => !deadlines.isLive(1));
  t.is(deadlines.parkedCount, 1);
  t.throws(() => deadlines.complete(1), { message: "listener bug" });
  t.is(deadlines.parkedCount, 0);
  t.is(deadlines.liveCount, 0);
});
