// AdaptiveWait: the pace of a ring follower, as a sans-IO state machine driven by the caller's clock.
// After a record the next wait re-reads the expected block every minSleepUs; a wait lasts about
// WATCH_REREADS re-reads, and each that ends with the block unchanged multiplies the sleep by
// SLEEP_GROWTH up to maxSleepUs (the latency an idle follower adds); at maxSleepUs a wait lasts until
// the periodic task is due. So an idle follower costs one native re-read per maxSleepUs and one JS
// turn per period, and a burst right after a record is seen within minSleepUs. While records come
// at a steady rate (a ping every 10 ms) the sleep stays below 1/GAP_SLEEP_FRACTION of their gap, for
// up to two gaps after the last one, so moderate traffic does not wait maxSleepUs. The periodic task (a
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

/** While records keep their gap, the sleep stays at most gap / GAP_SLEEP_FRACTION. */
export const GAP_SLEEP_FRACTION = 8;

export class AdaptiveWait {
  readonly options: Readonly<AdaptiveWaitOptions>;
  private sleep: number;
  private lastPeriodicMs = Number.NEGATIVE_INFINITY;
  /** When the last record came, and the gap before it (ms). */
  private lastRecordMs = Number.NEGATIVE_INFINITY;
  private gapMs = Number.POSITIVE_INFINITY;
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
  record(nowMs: number): void {
    this.sleep = this.options.minSleepUs;
    this.recordPending = true;
    this.gapMs = nowMs - this.lastRecordMs;
    this.lastRecordMs = nowMs;
  }

  /** The longest sleep right now: a fraction of the records' gap while they keep it, else maxSleepUs. */
  sleepBoundUs(nowMs: number): number {
    const { minSleepUs, maxSleepUs } = this.options;
    if (nowMs - this.lastRecordMs >= 2 * this.gapMs) return maxSleepUs;
    return Math.min(maxSleepUs, Math.max(minSleepUs, Math.floor((this.gapMs * 1000) / GAP_SLEEP_FRACTION)));
  }

  /** A wait ended: with the block changed (keep the pace) or unchanged (back off, up to the bound). */
  waited(nowMs: number, changed: boolean): void {
    if (!changed) this.sleep = Math.min(this.sleepBoundUs(nowMs), Math.max(1, this.sleep * SLEEP_GROWTH));
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
    // Below the bound: back in JS after a few re-reads to back off. At a gap-bound below maxSleepUs:
    // back when the records' rhythm has been broken (two gaps without one), to back off further.
    const boundUs = this.sleepBoundUs(nowMs);
    const rhythmEndsMs = Math.ceil(this.lastRecordMs + 2 * this.gapMs - nowMs);
    const backOffMs =
      this.sleep < boundUs ? Math.ceil((this.sleep * WATCH_REREADS) / 1000) : boundUs < this.options.maxSleepUs ? Math.max(1, rhythmEndsMs) : this.options.idlePeriodMs;
    const timeoutMs = Math.min(this.options.idlePeriodMs, backOffMs, Math.max(1, untilDueMs));
    return { sleepUs: this.sleep, timeoutMs: Math.max(1, timeoutMs) };
  }
}
