// ClockTimer: the one timer of a node's links, the I/O half of LinkClock (paths.ts, sans-IO). Each
// turn hands the heartbeats due and the time to the owner, which heartbeats and ticks its peer links
// (a pair's one, or every peer of a cluster node), then arms the next turn. How late each turn ran is
// the event-loop delay sample, so measuring the loop costs no wake-up of its own (monitorEventLoopDelay's
// timer was 20 a second). Invariant: at most one timer armed; none after stop().
import { createHistogram, performance } from "node:perf_hooks";

import { LinkClock, type ClockTurn, type LinkTimers } from "./paths.ts";

export class ClockTimer {
  private readonly timers: Pick<LinkTimers, "primary" | "storage">;
  private readonly tickMs: number;
  private readonly onTurn: (turn: ClockTurn, nowMs: number) => void;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Event-loop delay, ns: how late each turn ran. */
  private readonly loopDelay = createHistogram();

  constructor(timers: Pick<LinkTimers, "primary" | "storage">, tickMs: number, onTurn: (turn: ClockTurn, nowMs: number) => void) {
    this.timers = timers;
    this.tickMs = tickMs;
    this.onTurn = onTurn;
  }

  /** The first turn, now (it sends both heartbeats), and every one after it. */
  start(): void {
    const now = performance.now();
    this.turn(new LinkClock(this.timers, this.tickMs, now), now);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Event-loop delay since start (ms). */
  get loopDelayMs(): { p50: number; p99: number; max: number } {
    return { p50: this.loopDelay.percentile(50) / 1e6, p99: this.loopDelay.percentile(99) / 1e6, max: this.loopDelay.max / 1e6 };
  }

  /** One turn of the clock (scheduled for `dueMs`): the owner's heartbeats and tick, and the timer for the next turn. */
  private turn(clock: LinkClock, dueMs: number): void {
    if (this.stopped) return;
    const now = performance.now();
    this.loopDelay.record(Math.max(1, Math.round((now - dueMs) * 1e6)));
    const turn = clock.turn(now);
    this.onTurn(turn, now);
    // The owner may have stopped the clock in this turn (a transition listener closing the link).
    if (this.stopped) return;
    this.timer = setTimeout(() => this.turn(clock, turn.nextMs), Math.max(1, Math.round(turn.nextMs - now)));
  }
}
