// A fake Clock (lib/ring/clock.ts) for deterministic tests: time moves only when the test advances
// it; due timers fire in (time, creation) order, one at a time, with the microtasks they start run
// before the next one fires. wallMs is a fixed base plus the fake time, so written bytes replay too.
import type { Clock } from "../../lib/ring/clock.ts";

/** Bound on timers fired by one advance(): more means something re-arms a timer without time passing. */
const MAX_FIRINGS = 100_000;

interface Timer {
  atMs: number;
  id: number;
  fn: () => void;
}

/** Lets every pending microtask (and the I/O of an in-memory volume) run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  private now = 0;
  private nextId = 0;
  private timers: Timer[] = [];

  constructor(private readonly wallBaseMs = 1_800_000_000_000) {}

  nowMs(): number {
    return this.now;
  }

  wallMs(): number {
    return this.wallBaseMs + this.now;
  }

  setTimer(delayMs: number, fn: () => void): () => void {
    const timer = { atMs: this.now + Math.max(0, delayMs), id: this.nextId++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order and settling after each (at most MAX_FIRINGS). */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    await settle();
    for (let fired = 0; ; fired++) {
      if (fired >= MAX_FIRINGS) throw new Error(`FakeClock: more than ${MAX_FIRINGS} timers fired in one advance(${ms}): a timer loop`);
      let first: Timer | undefined;
      for (const t of this.timers) if (t.atMs <= end && (first === undefined || t.atMs < first.atMs || (t.atMs === first.atMs && t.id < first.id))) first = t;
      if (first === undefined) break;
      this.timers = this.timers.filter((t) => t !== first);
      this.now = Math.max(this.now, first.atMs);
      first.fn();
      await settle();
    }
    this.now = end;
  }
}
