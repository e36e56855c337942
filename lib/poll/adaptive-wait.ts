// AdaptiveWait: the pace of a ring follower, as a sans-IO state machine driven by the caller's clock.
// After a record the next wait re-reads the expected block every minSleepUs; each wait that ends with
// the block unchanged doubles that sleep up to maxSleepUs (the bound on the latency an idle follower
// adds). The follower's periodic task (a status read or copy) runs every periodMs while records flow
// and every idlePeriodMs once none came for idlePeriodMs; the first record snaps both back. Bounds:
// sleepUs in [minSleepUs, maxSleepUs], a wait's timeout in [1, idlePeriodMs] ms, checked on entry.
import { integerOption, invalidArgument } from "../errors.ts";

export interface AdaptiveWaitOptions {
  /** Sleep between re-reads right after a record (us). */
  minSleepUs: number;
  /** Longest sleep between re-reads while idle (us): the latency bound an idle follower adds. */
  maxSleepUs: number;
  /** Period of the periodic task while records arrive (ms). */
  periodMs: number;
  /** Period of the periodic task once no record came for this long (ms); at least periodMs. */
  idlePeriodMs: number;
}

/** What the next wait does: re-read every sleepUs, and return to the caller after timeoutMs at most. */
export interface WaitPace {
  sleepUs: number;
  timeoutMs: number;
}

/** Longest sleep a follower may be configured with (us): a record never waits longer to be seen. */
export const MAX_SLEEP_BOUND_US = 1_000_000;
/** Longest idle period of a periodic task (ms); also the longest a wait keeps JS away. */
export const MAX_IDLE_PERIOD_MS = 60_000;

export class AdaptiveWait {
  readonly options: Readonly<AdaptiveWaitOptions>;
  private sleep: number;
  private lastRecordMs: number;
  private lastPeriodicMs = Number.NEGATIVE_INFINITY;

  constructor(options: AdaptiveWaitOptions, nowMs: number) {
    const minSleepUs = integerOption("minSleepUs", options.minSleepUs, 0, 0, MAX_SLEEP_BOUND_US);
    const maxSleepUs = integerOption("maxSleepUs", options.maxSleepUs, 0, 1, MAX_SLEEP_BOUND_US);
    if (maxSleepUs < minSleepUs) throw invalidArgument("maxSleepUs", `at least minSleepUs (${minSleepUs} us)`, maxSleepUs);
    const periodMs = integerOption("periodMs", options.periodMs, 0, 1, MAX_IDLE_PERIOD_MS);
    const idlePeriodMs = integerOption("idlePeriodMs", options.idlePeriodMs, 0, 1, MAX_IDLE_PERIOD_MS);
    if (idlePeriodMs < periodMs) throw invalidArgument("idlePeriodMs", `at least periodMs (${periodMs} ms)`, idlePeriodMs);
    this.options = { minSleepUs, maxSleepUs, periodMs, idlePeriodMs };
    this.sleep = minSleepUs;
    this.lastRecordMs = nowMs; // a follower starts active: whatever it was started for may be on its way
  }

  /** The current sleep between re-reads (us). */
  get sleepUs(): number {
    return this.sleep;
  }

  /** No record for idlePeriodMs: the periodic task slows down to idlePeriodMs. */
  idle(nowMs: number): boolean {
    return nowMs - this.lastRecordMs >= this.options.idlePeriodMs;
  }

  /** The period of the periodic task right now. */
  periodMs(nowMs: number): number {
    return this.idle(nowMs) ? this.options.idlePeriodMs : this.options.periodMs;
  }

  /** A record (or any progress: pad, resync, epoch) was read: poll again at once, then wait short. */
  record(nowMs: number): void {
    this.sleep = this.options.minSleepUs;
    this.lastRecordMs = nowMs;
  }

  /** A wait ended: with the block changed (keep the pace) or unchanged (back off, up to the bound). */
  waited(changed: boolean): void {
    if (!changed) this.sleep = Math.min(this.options.maxSleepUs, Math.max(1, this.sleep * 2));
  }

  /** The periodic task is due (it never ran, or its period passed). */
  periodicDue(nowMs: number): boolean {
    return nowMs - this.lastPeriodicMs >= this.periodMs(nowMs);
  }

  /** The periodic task starts now. */
  periodicRan(nowMs: number): void {
    this.lastPeriodicMs = nowMs;
  }

  /** The next wait: re-read every sleepUs, back in the caller no later than the periodic task is due. */
  next(nowMs: number): WaitPace {
    const untilDueMs = Math.ceil(this.lastPeriodicMs + this.periodMs(nowMs) - nowMs);
    const timeoutMs = Math.min(this.options.idlePeriodMs, Math.max(1, untilDueMs));
    return { sleepUs: this.sleep, timeoutMs };
  }
}
