// Deadline tracking for one volume's in-flight requests. Requests share the volume's timeout, so
// insertion order is deadline order and one timer (armed for the oldest live request) is enough.
// A request past its deadline is rejected at once but stays tracked as "parked" until its thread
// returns: the volume is stalled while any request is parked. The timer is the only thing that
// keeps the event loop alive for pending I/O, so a thread stuck in the kernel never pins the process.
import { performance } from "node:perf_hooks";

export interface Tracked {
  readonly deadlineMs: number;
  /** Called once when the deadline passes before completion. */
  expire(): void;
}

export class DeadlineTracker {
  private readonly live = new Map<number, Tracked>();
  private readonly parked = new Set<number>();
  private timer: NodeJS.Timeout | undefined;

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

  add(id: number, tracked: Tracked): void {
    this.live.set(id, tracked);
    if (this.timer === undefined) this.arm(tracked.deadlineMs);
  }

  /** The request completed; returns false if it had already expired (its caller was told). */
  complete(id: number): boolean {
    if (this.live.delete(id)) {
      if (this.live.size === 0) this.disarm();
      return true;
    }
    if (this.parked.delete(id) && this.parked.size === 0) this.onRecover();
    return false;
  }

  private arm(deadlineMs: number): void {
    const delayMs = Math.max(0, Math.ceil(deadlineMs - performance.now()));
    this.timer = setTimeout(() => this.check(), delayMs);
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    this.timer = undefined;
    const nowMs = performance.now();
    let expired = 0;
    for (const [id, tracked] of this.live) {
      if (tracked.deadlineMs > nowMs) {
        this.arm(tracked.deadlineMs);
        break;
      }
      this.live.delete(id);
      this.parked.add(id);
      expired++;
      tracked.expire();
    }
    if (expired > 0) this.onStall(this.parked.size);
  }
}
