// ClockTimer, the I/O half of LinkClock: at most one timer armed, none after stop(), also when the
// owner stops the clock from inside a turn (a transition listener that closes the link or node).
import test from "ava";

import { ClockTimer } from "../../lib/link/clock-timer.ts";
import { DEFAULT_TIMERS } from "../../lib/link/paths.ts";

const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

test("stopped from inside its turn, the clock arms no further timer", (t) => {
  let turns = 0;
  const before = timeouts();
  const clock: ClockTimer = new ClockTimer(DEFAULT_TIMERS, 35, () => {
    turns++;
    clock.stop();
  });
  clock.start();
  t.is(turns, 1, "start() runs the first turn at once");
  t.is(timeouts(), before, "no timer left armed after stop()");
});

test("running, the clock keeps exactly one timer armed; stop() clears it", (t) => {
  const before = timeouts();
  const clock = new ClockTimer(DEFAULT_TIMERS, 35, () => undefined);
  clock.start();
  t.is(timeouts(), before + 1, "one timer for the next turn");
  clock.stop();
  t.is(timeouts(), before, "none after stop()");
});
