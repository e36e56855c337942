// The RingWriter's waiting calls, as pure bookkeeping (no I/O, no timers): flush() calls wait until
// the core's framesWritten reaches the frame count at their call (FIFO: those counts never decrease),
// append() calls wait for room (the core's roomGeneration to move past the one they saw). settle() is
// told the core's counts, and once the writer stopped, the error to reject the rest with.
// Bound: MAX_WAITING_CALLS per kind; beyond it a call fails with ERR_LUNLINK_QUEUE_FULL.
import type { LunlinkError } from "../errors.ts";

/** Bound on append() and flush() calls waiting at once (each kind). */
export const MAX_WAITING_CALLS = 65_536;

interface Waiter {
  /** flush: framesWritten to reach; append: the roomGeneration it saw. */
  mark: number;
  resolve: () => void;
  reject: (error: LunlinkError) => void;
}

export class WriterWaiters {
  private readonly flushes: Waiter[] = [];
  private readonly rooms: Waiter[] = [];

  /** Some append() waits for room: the core seals the filling record now instead of after maxDelayMs. */
  get roomWanted(): boolean {
    return this.rooms.length > 0;
  }

  /** Adds a waiting call; false (not added) when MAX_WAITING_CALLS of its kind already wait. */
  add(kind: "flush" | "room", mark: number, resolve: () => void, reject: (error: LunlinkError) => void): boolean {
    const waiters = kind === "flush" ? this.flushes : this.rooms;
    if (waiters.length >= MAX_WAITING_CALLS) return false;
    waiters.push({ mark, resolve, reject });
    return true;
  }

  /** Resolves flushes that are written and appends that have room; with `stopped`, rejects everything left. */
  settle(framesWritten: number, roomGeneration: number, stopped: LunlinkError | undefined): void {
    while (this.flushes.length > 0 && this.flushes[0]!.mark <= framesWritten) this.flushes.shift()!.resolve();
    if (this.rooms.length > 0 && this.rooms[0]!.mark !== roomGeneration) for (const waiter of this.rooms.splice(0)) waiter.resolve();
    if (stopped === undefined) return;
    for (const waiter of [...this.flushes.splice(0), ...this.rooms.splice(0)]) waiter.reject(stopped);
  }
}
