// Deadline tracking for one volume's in-flight requests, with one timer for all of them. The timer is created once and kept:
// it is ref'd (keeping the event loop alive) only while a live request waits, and when it fires it
// expires what is overdue and re-arms for the oldest live request. No timer is created or cleared
// per request (that cost shows at 4 KiB queue depth 1).
// A request past its deadline is rejected at once. If it had not started, `expire` cancels it and
// returns false: it is forgotten. Otherwise it stays tracked as "parked" until its thread returns:
// the volume is stalled while any request is parked. A parked thread never pins the process: only
// live requests ref the timer. State is updated before any callback runs, so a throwing listener
// cannot leave a request half-tracked.
import { performance } from "node:perf_hooks";

export interface Tracked {
  readonly deadlineMs: number;
  /** Called once when the deadline passes before completion; false: it was cancelled, not parked. */
  expire(): boolean | void;
}

export class DeadlineTracker {
  private readonly live = new Map<number, Tracked>();
  private readonly parked = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private timerDueMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly onStall: (parked: number) => void,
    private readonly onRecover: () => void,
  ) {}

  get parkedCount(): number {
    return this.parked.size;
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** True while the request waits within its deadline (neither expired nor completed). */
  isLive(id: number): boolean {
    return this.live.has(id);
  }

  add(id: number, tracked: Tracked): void {
    this.live.set(id, tracked);
    // The armed timer (if any) must fire no later than this deadline.
    if (this.timer === undefined || this.timerDueMs > tracked.deadlineMs) this.arm(tracked.deadlineMs);
    else if (this.live.size === 1) this.timer.ref();
  }

  /** The request completed; returns false if it had already expired (its caller was told). */
  complete(id: number): boolean {
    if (this.live.delete(id)) {
      if (this.live.size === 0) this.timer?.unref();
      return true;
    }
    if (this.parked.delete(id) && this.parked.size === 0) this.onRecover();
    return false;
  }

  private arm(deadlineMs: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDueMs = deadlineMs;
    this.timer = setTimeout(() => this.check(), Math.max(0, Math.ceil(deadlineMs - performance.now())));
  }

  private check(): void {
    this.timer = undefined;
    this.timerDueMs = Number.POSITIVE_INFINITY;
    const nowMs = performance.now();
    let expired = 0;
    let nextMs = Number.POSITIVE_INFINITY;
    // Deadlines differ (a watch waits longer than a read), so look at every live request: at most
    // the volume's queue, and this runs only when a deadline is due.
    for (const [id, tracked] of this.live) {
      if (tracked.deadlineMs > nowMs) {
        nextMs = Math.min(nextMs, tracked.deadlineMs);
        continue;
      }
      this.live.delete(id);
      if (tracked.expire() === false) continue;
      this.parked.add(id);
      expired++;
    }
    if (nextMs !== Number.POSITIVE_INFINITY) this.arm(nextMs);
    if (expired > 0) this.onStall(this.parked.size);
  }
}
