// AdaptiveWait: the pace of a ring follower, as a sans-IO state machine driven by the caller's clock.
// After a record the next wait re-reads the expected block every minSleepUs; a wait lasts about
// WATCH_REREADS re-reads, and each that ends with the block unchanged multiplies the sleep by
// SLEEP_GROWTH up to maxSleepUs (the latency an idle follower adds); at maxSleepUs a wait lasts until
// the periodic task is due. So an idle follower costs one native re-read per maxSleepUs and one JS
// turn per period, and a burst right after a record is seen within minSleepUs. The periodic task (a
// status read or copy) runs periodMs after a record, else every idlePeriodMs: it follows the records
// it reports. The first record snaps both back. Bounds: sleepUs in [minSleepUs, maxSleepUs], a
// wait's timeout in [1, idlePeriodMs] ms, checked on entry.
import { integerOption, invalidArgument } from "../errors.ts";

export interface AdaptiveWaitOptions {
  /** Sleep between re-reads right after a record (us). */
  minSleepUs: number;
  /** Longest sleep between re-reads while idle (us): the latency bound an idle follower adds. */
  maxSleepUs: number;
  /** The periodic task runs this long after a record (ms), not sooner after its last run. */
  periodMs: number;
  /** ... and this often while no record comes (ms); at least periodMs. */
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
/** Re-reads a wait below maxSleepUs lasts before JS backs the sleep off (a JS turn costs ~7 re-reads here). */
export const WATCH_REREADS = 4;
/** Factor by which an unchanged wait grows the sleep: 50 us reaches 16 ms in 3 waits (each wait back in JS costs ~7 re-reads). */
export const SLEEP_GROWTH = 8;

export class AdaptiveWait {
  readonly options: Readonly<AdaptiveWaitOptions>;
  private sleep: number;
  private lastPeriodicMs = Number.NEGATIVE_INFINITY;
  /** A record came since the periodic task last ran. */
  private recordPending = true; // a follower starts as if one had: its first periodic task runs at once

  constructor(options: AdaptiveWaitOptions) {
    const minSleepUs = integerOption("minSleepUs", options.minSleepUs, 0, 0, MAX_SLEEP_BOUND_US);
    const maxSleepUs = integerOption("maxSleepUs", options.maxSleepUs, 0, 1, MAX_SLEEP_BOUND_US);
    if (maxSleepUs < minSleepUs) throw invalidArgument("maxSleepUs", `at least minSleepUs (${minSleepUs} us)`, maxSleepUs);
    const periodMs = integerOption("periodMs", options.periodMs, 0, 1, MAX_IDLE_PERIOD_MS);
    const idlePeriodMs = integerOption("idlePeriodMs", options.idlePeriodMs, 0, 1, MAX_IDLE_PERIOD_MS);
    if (idlePeriodMs < periodMs) throw invalidArgument("idlePeriodMs", `at least periodMs (${periodMs} ms)`, idlePeriodMs);
    this.options = { minSleepUs, maxSleepUs, periodMs, idlePeriodMs };
    this.sleep = minSleepUs;
  }

  /** The current sleep between re-reads (us). */
  get sleepUs(): number {
    return this.sleep;
  }

  /** The period of the periodic task right now: periodMs with a record to report, else idlePeriodMs. */
  get periodMs(): number {
    return this.recordPending ? this.options.periodMs : this.options.idlePeriodMs;
  }

  /** A record (or any progress: pad, resync, epoch) was read: poll again at once, then wait short. */
  record(): void {
    this.sleep = this.options.minSleepUs;
    this.recordPending = true;
  }

  /** A wait ended: with the block changed (keep the pace) or unchanged (back off, up to the bound). */
  waited(changed: boolean): void {
    if (!changed) this.sleep = Math.min(this.options.maxSleepUs, Math.max(1, this.sleep * SLEEP_GROWTH));
  }

  /** The periodic task is due (it never ran, or its period passed). */
  periodicDue(nowMs: number): boolean {
    return nowMs - this.lastPeriodicMs >= this.periodMs;
  }

  /** The periodic task starts now. */
  periodicRan(nowMs: number): void {
    this.lastPeriodicMs = nowMs;
    this.recordPending = false;
  }

  /** The next wait: re-read every sleepUs, back in the caller to back off or when the periodic task is due. */
  next(nowMs: number): WaitPace {
    const untilDueMs = Math.ceil(this.lastPeriodicMs + this.periodMs - nowMs);
    const backOffMs = this.sleep < this.options.maxSleepUs ? Math.ceil((this.sleep * WATCH_REREADS) / 1000) : this.options.idlePeriodMs;
    const timeoutMs = Math.min(this.options.idlePeriodMs, backOffMs, Math.max(1, untilDueMs));
    return { sleepUs: this.sleep, timeoutMs: Math.max(1, timeoutMs) };
  }
}
