// The time a ring component sees, passed in: the system clock in production, a fake clock in tests,
// so a seeded simulation replays exactly. nowMs is monotonic (decisions); wallMs is display only
// (record timestamps, status wallClockMs) and never steers anything.
import { performance } from "node:perf_hooks";

export interface Clock {
  /** Monotonic milliseconds (CLOCK_MONOTONIC via performance.now on the system clock). */
  nowMs(): number;
  /** Wall-clock milliseconds since 1970, for display fields only. */
  wallMs(): number;
  /** Calls `fn` once, no earlier than `delayMs` from now; returns a function that cancels it. */
  setTimer(delayMs: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
  setTimer: (delayMs, fn) => {
    const timer = setTimeout(fn, Math.max(0, delayMs));
    return () => clearTimeout(timer);
  },
};
