// LinkClock, the link's one timer (heartbeats on both paths and the tick in one wake-up), driven by a
// fake clock: the default timers wake an idle node once per primary heartbeat; cadence is kept when a
// turn runs a little late; a long pause restarts each heartbeat once (no burst); deadlines within
// CLOCK_COALESCE_MS share a turn; the gap between turns never exceeds tickMs.
import test from "ava";
import fc from "fast-check";

import { DEFAULT_LINK_TICK_MS } from "../../lib/defaults.ts";
import { CLOCK_COALESCE_MS, DEFAULT_TIMERS, LinkClock, STORAGE_SHARE } from "../../lib/link/paths.ts";

/** Runs the clock as the Link shell does (each turn at the nextMs the previous one named, plus `lateMs(i)`), for `durationMs`. */
function run(clock: LinkClock, startMs: number, durationMs: number, lateMs: (turn: number) => number = () => 0): { turns: number[]; primary: number[]; storage: number[] } {
  const out = { turns: [] as number[], primary: [] as number[], storage: [] as number[] };
  let now = startMs;
  for (let i = 0; now <= startMs + durationMs; i++) {
    if (i > 100_000) throw new Error("runaway clock");
    const turn = clock.turn(now);
    out.turns.push(now);
    if (turn.primary) out.primary.push(now);
    if (turn.storage) out.storage.push(now);
    if (!(turn.nextMs > now)) throw new Error(`next turn ${turn.nextMs} not after ${now}`);
    now = turn.nextMs + lateMs(i);
  }
  return out;
}

test("defaults: one wake-up per primary heartbeat; the storage heartbeat rides primary turns; both sent at the first turn", (t) => {
  t.is(DEFAULT_LINK_TICK_MS, DEFAULT_TIMERS.primary.heartbeatMs, "the tick shares the primary heartbeat's wake-up");
  const r = run(new LinkClock(DEFAULT_TIMERS, DEFAULT_LINK_TICK_MS, 1000), 1000, 10_000);
  t.is(r.primary[0], 1000);
  t.is(r.storage[0], 1000);
  t.is(r.turns.length, r.primary.length, "every turn sends a primary heartbeat: no turn of its own for the tick or storage");
  t.is(r.primary.length, Math.floor(10_000 / DEFAULT_TIMERS.primary.heartbeatMs) + 1);
  // Storage every 250 ms, served by the primary turn at or after it (at most one primary period late).
  t.true(r.storage.length >= Math.floor(10_000 / (DEFAULT_TIMERS.storage.heartbeatMs + DEFAULT_TIMERS.primary.heartbeatMs)), `${r.storage.length} storage heartbeats`);
  t.true(r.storage.length <= 10_000 / DEFAULT_TIMERS.storage.heartbeatMs + 1, `${r.storage.length} storage heartbeats`);
});

test("the storage heartbeat rides the primary's turns (at most STORAGE_SHARE of its period late, cadence kept); alone, it wakes the clock on time", (t) => {
  const timers = { primary: { heartbeatMs: 40, suspectMs: 120, downMs: 160 }, storage: { heartbeatMs: 250, suspectMs: 750, downMs: 1500 } };
  const r = run(new LinkClock(timers, 40, 0), 0, 1000);
  t.deepEqual(r.storage, [0, 280, 520, 760, 1000], "each at the first primary turn at or after 0, 250, 500, 750, 1000");
  t.is(r.turns.length, r.primary.length, "no turn of its own");
  for (const [i, at] of r.storage.entries()) t.true(at - i * 250 <= STORAGE_SHARE * 250, `storage heartbeat ${i} at ${at}`);
  // Slow primary and tick: nothing else wakes the clock near the storage deadline, so it does, on time.
  const alone = { primary: { heartbeatMs: 1000, suspectMs: 3000, downMs: 4000 }, storage: timers.storage };
  const s = run(new LinkClock(alone, 1000, 0), 0, 1000);
  t.deepEqual(s.storage, [0, 250, 500, 750, 1000]);
  t.deepEqual(s.turns, [0, 250, 500, 750, 1000]);
});

test("a turn a little late keeps the cadence (the next deadline is a period after the last one, not after now)", (t) => {
  const timers = { primary: { heartbeatMs: 40, suspectMs: 120, downMs: 160 }, storage: { heartbeatMs: 240, suspectMs: 720, downMs: 1500 } };
  const clock = new LinkClock(timers, 40, 0);
  t.like(clock.turn(0), { primary: true, storage: true, nextMs: 40 });
  t.like(clock.turn(41.5), { primary: true, storage: false, nextMs: 80 }, "1.5 ms late: the next heartbeat is still due at 80");
  t.like(clock.turn(80.3), { primary: true, nextMs: 120 });
});

test("after a pause, each heartbeat is sent once and restarts a period later: no burst of missed ones", (t) => {
  const clock = new LinkClock(DEFAULT_TIMERS, DEFAULT_LINK_TICK_MS, 0);
  clock.turn(0);
  const late = clock.turn(1000); // the loop was stopped for a second
  t.true(late.primary && late.storage);
  t.is(late.nextMs, 1000 + DEFAULT_TIMERS.primary.heartbeatMs);
  const next = clock.turn(late.nextMs);
  t.true(next.primary);
  t.false(next.storage, "storage restarted at 1000: due at 1250, not at once again");
});

test("deadlines within CLOCK_COALESCE_MS share one turn; tickMs bounds the gap between turns", (t) => {
  // Primary 30, storage 31: the storage deadline 1 ms after a primary turn is served in it.
  const timers = { primary: { heartbeatMs: 30, suspectMs: 90, downMs: 120 }, storage: { heartbeatMs: 31, suspectMs: 93, downMs: 200 } };
  const clock = new LinkClock(timers, 100, 0);
  clock.turn(0);
  const turn = clock.turn(30);
  t.true(31 - 30 <= CLOCK_COALESCE_MS);
  t.true(turn.primary && turn.storage, "storage due at 31 taken at 30");
  // Slow heartbeats, fast tick: the tick alone wakes the clock every tickMs.
  const slow = new LinkClock({ primary: { heartbeatMs: 1000, suspectMs: 3000, downMs: 4000 }, storage: { heartbeatMs: 1000, suspectMs: 3000, downMs: 4000 } }, 25, 0);
  const r = run(slow, 0, 1000);
  t.deepEqual(r.turns.slice(0, 5), [0, 25, 50, 75, 100]);
  t.deepEqual(r.primary, [0, 1000]);
});

test("property: under any lateness, no burst of heartbeats (at most one per period) and no scheduled gap longer than tickMs", (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(
      fc.integer({ min: 5, max: 200 }),
      fc.integer({ min: 5, max: 2000 }),
      fc.integer({ min: 5, max: 200 }),
      fc.array(fc.double({ min: 0, max: 300, noNaN: true }), { minLength: 1, maxLength: 50 }),
      (primaryMs, storageMs, tickMs, lateness) => {
        const timers = { primary: { heartbeatMs: primaryMs, suspectMs: 3 * primaryMs, downMs: 4 * primaryMs }, storage: { heartbeatMs: storageMs, suspectMs: 3 * storageMs, downMs: 6 * storageMs } };
        const clock = new LinkClock(timers, tickMs, 0);
        const r = run(clock, 0, 5000, (i) => lateness[i % lateness.length]!);
        // Deadlines are at least a period apart and served no earlier than CLOCK_COALESCE_MS before
        // theirs: over a run of T ms, at most (T + CLOCK_COALESCE_MS) / period + 1 heartbeats (no burst).
        const spanMs = r.turns.at(-1)!;
        for (const [sent, period] of [[r.primary, primaryMs], [r.storage, storageMs]] as const) {
          if (sent.length > Math.floor((spanMs + CLOCK_COALESCE_MS) / period) + 1) return false;
        }
        // Scheduled gaps (the lateness added is the loop's, not the clock's) stay within tickMs.
        let now = 0;
        const probe = new LinkClock(timers, tickMs, 0);
        for (let i = 0; i < 200; i++) {
          const turn = probe.turn(now);
          if (turn.nextMs - now > tickMs + 1e-9) return false;
          now = turn.nextMs + lateness[i % lateness.length]!;
        }
        return true;
      },
      ),
    ),
  );
});
