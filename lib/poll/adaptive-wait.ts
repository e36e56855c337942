// AdaptiveWait: the pace of a ring follower, as a sans-IO state machine driven by the caller's clock.
// A wait is one native watch: it re-reads the expected block, sleeping between reads, and backs the
// sleep off by itself (paceAfter(): each sleep is kept WATCH_REREADS times its length, then grows by
// SLEEP_GROWTH) from minSleepUs after a record up to maxSleepUs (the latency an idle follower adds).
// JS sees a wait end only when the block changed or the periodic task is due, so an idle follower
// costs one native re-read per maxSleepUs and one JS turn per period. While records come at a steady
// rate (a ping every 10 ms) the sleep stays below 1/GAP_SLEEP_FRACTION of their gap, for up to two
// gaps after the last one, so moderate traffic does not wait maxSleepUs. The periodic task (a status
// read or copy) runs periodMs after a record, else every idlePeriodMs: it follows the records it
// reports. The first record snaps both back. Standby (standby(true): the link's primary is up, so the
// ring carries only heartbeats) replaces that schedule with a constant standbyMaxSleepUs; leaving it
// snaps back to minSleepUs, and the caller wakes a wait still running at the standby pace. In standby
// the periodic task rides the records: with a record to report it runs in the turn of the first record
// standbyPeriodMs after its last run (a link: every other heartbeat record), and a wait ends for it
// only idlePeriodMs after the last record (or its last run, with no record since).
// Bounds: sleepUs <= maxSleepUs of a wait, both in [minSleepUs, standbyMaxSleepUs]; a wait's timeout
// in [1, idlePeriodMs] ms, checked on entry.
import { MAX_FOLLOW_IDLE_MS } from "../defaults.ts";
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
  /** Sleep between re-reads in standby (us; at least maxSleepUs; default maxSleepUs: standby changes nothing). */
  standbyMaxSleepUs?: number | undefined;
  /** In standby, the periodic task runs at the first record this long after its last run (ms; in [periodMs, idlePeriodMs]; default periodMs). */
  standbyPeriodMs?: number | undefined;
}

/** What the next wait does: re-read from sleepUs backing off to maxSleepUs, back in the caller after timeoutMs at most. */
export interface WaitPace {
  sleepUs: number;
  maxSleepUs: number;
  timeoutMs: number;
}

/** Longest sleep a follower may be configured with (us): a record never waits longer to be seen. */
export const MAX_SLEEP_BOUND_US = 1_000_000;
/** A sleep is kept this many times its own length before it grows (mirrored by kWatchRereads in addon/pool.h). */
export const WATCH_REREADS = 4;
/** Factor by which the sleep grows (mirrored by kWatchGrowth in addon/pool.h): 50 us reaches 16 ms in ~15 ms. */
export const SLEEP_GROWTH = 8;

/** While records keep their gap, the sleep stays at most gap / GAP_SLEEP_FRACTION. */
export const GAP_SLEEP_FRACTION = 8;

/**
 * The sleep a watch that started at startUs has reached after elapsedUs: it keeps each sleep for
 * WATCH_REREADS times its length (at least 1 us), then multiplies it by SLEEP_GROWTH, up to boundUs.
 * The addon's watch (addon/pool.cc ExecuteWatch) runs the same schedule.
 */
export function paceAfter(startUs: number, boundUs: number, elapsedUs: number): number {
  let sleepUs = Math.min(startUs, boundUs);
  let phaseEndUs = WATCH_REREADS * Math.max(sleepUs, 1);
  // Bounded: the sleep grows by SLEEP_GROWTH per turn from >= 1 us to boundUs (<= MAX_SLEEP_BOUND_US).
  while (sleepUs < boundUs && elapsedUs >= phaseEndUs) {
    sleepUs = Math.min(boundUs, Math.max(1, sleepUs * SLEEP_GROWTH));
    phaseEndUs += WATCH_REREADS * sleepUs;
  }
  return sleepUs;
}

export class AdaptiveWait {
  readonly options: Readonly<AdaptiveWaitOptions & { standbyMaxSleepUs: number; standbyPeriodMs: number }>;
  private standbyOn = false;
  /** The sleep the next wait starts at. */
  private sleep: number;
  private lastPeriodicMs = Number.NEGATIVE_INFINITY;
  /** When the last record came, and the gap before it (ms). */
  private lastRecordMs = Number.NEGATIVE_INFINITY;
  private gapMs = Number.POSITIVE_INFINITY;
  /** A record came since the periodic task last ran. */
  private recordPending = true; // a follower starts as if one had: its first periodic task runs at once
  /** The wait next() started: when, and its pace. */
  private waitStartMs = Number.NaN;
  private waitPace: WaitPace | undefined;

  constructor(options: AdaptiveWaitOptions) {
    const minSleepUs = integerOption("minSleepUs", options.minSleepUs, 0, 0, MAX_SLEEP_BOUND_US);
    const maxSleepUs = integerOption("maxSleepUs", options.maxSleepUs, 0, 1, MAX_SLEEP_BOUND_US);
    if (maxSleepUs < minSleepUs) throw invalidArgument("maxSleepUs", `at least minSleepUs (${minSleepUs} us)`, maxSleepUs);
    const periodMs = integerOption("periodMs", options.periodMs, 0, 1, MAX_FOLLOW_IDLE_MS);
    const idlePeriodMs = integerOption("idlePeriodMs", options.idlePeriodMs, 0, 1, MAX_FOLLOW_IDLE_MS);
    if (idlePeriodMs < periodMs) throw invalidArgument("idlePeriodMs", `at least periodMs (${periodMs} ms)`, idlePeriodMs);
    const standbyMaxSleepUs = integerOption("standbyMaxSleepUs", options.standbyMaxSleepUs, maxSleepUs, maxSleepUs, MAX_SLEEP_BOUND_US);
    const standbyPeriodMs = integerOption("standbyPeriodMs", options.standbyPeriodMs, periodMs, periodMs, idlePeriodMs);
    this.options = { minSleepUs, maxSleepUs, periodMs, idlePeriodMs, standbyMaxSleepUs, standbyPeriodMs };
    this.sleep = minSleepUs;
  }

  /** The sleep the next wait starts at (us). */
  get sleepUs(): number {
    return this.sleep;
  }

  /** The period of the periodic task right now: periodMs (in standby standbyPeriodMs) with a record to report, else idlePeriodMs. */
  get periodMs(): number {
    if (!this.recordPending) return this.options.idlePeriodMs;
    return this.standbyOn ? this.options.standbyPeriodMs : this.options.periodMs;
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

  /**
   * The wait that next() started ended: with the block changed (its start pace is kept: a change
   * that is no record yet, a record being written, is read again soon) or unchanged (the next wait
   * starts where the watch's back-off left off).
   */
  waited(nowMs: number, changed: boolean): void {
    const pace = this.waitPace;
    if (pace === undefined) return;
    this.waitPace = undefined;
    this.sleep = changed ? pace.sleepUs : paceAfter(pace.sleepUs, pace.maxSleepUs, Math.max(0, nowMs - this.waitStartMs) * 1000);
  }

  /** The periodic task is due (it never ran, or its period passed). */
  periodicDue(nowMs: number): boolean {
    return nowMs - this.lastPeriodicMs >= this.periodMs;
  }

  /** In standby (the link's primary is up both ways: the ring carries only heartbeats). */
  get inStandby(): boolean {
    return this.standbyOn;
  }

  /**
   * Enters or leaves standby. On: later waits re-read every standbyMaxSleepUs. Off: the next wait
   * starts at minSleepUs backing off to maxSleepUs; returns true if a wait started in standby is still
   * running (the caller wakes it: Volume.wakeWatches), whose end then leaves the pace as set here.
   */
  standby(on: boolean): boolean {
    if (on === this.standbyOn) return false;
    this.standbyOn = on;
    if (on) return false;
    this.sleep = this.options.minSleepUs;
    const running = this.waitPace !== undefined;
    this.waitPace = undefined;
    return running;
  }

  /** The periodic task starts now. */
  periodicRan(nowMs: number): void {
    this.lastPeriodicMs = nowMs;
    this.recordPending = false;
  }

  /**
   * Starts the next wait: from the current sleep backing off to the bound; back in the caller when
   * the periodic task is due, when the records' rhythm is broken (two gaps without one: the bound
   * rises to maxSleepUs), or after idlePeriodMs.
   */
  next(nowMs: number): WaitPace {
    if (this.standbyOn) {
      // Heartbeat records only: no rhythm to keep, one re-read per standby sleep (a record snaps nothing back here; the link leaves standby on traffic).
      // The periodic task waits for a record's turn (a wait of its own would be a wake-up more per
      // read): the wait ends for it only idlePeriodMs after the last record, or after its last run
      // with no record since (the peer's records gone).
      const standbyUs = this.options.standbyMaxSleepUs;
      const sinceMs = this.recordPending ? Math.max(this.lastRecordMs, this.lastPeriodicMs) : this.lastPeriodicMs;
      const pace = { sleepUs: standbyUs, maxSleepUs: standbyUs, timeoutMs: Math.max(1, Math.min(this.options.idlePeriodMs, Math.ceil(sinceMs + this.options.idlePeriodMs - nowMs))) };
      this.waitStartMs = nowMs;
      this.waitPace = pace;
      return pace;
    }
    const boundUs = this.sleepBoundUs(nowMs);
    const untilDueMs = Math.ceil(this.lastPeriodicMs + this.periodMs - nowMs);
    const rhythmEndsMs = boundUs < this.options.maxSleepUs ? Math.ceil(this.lastRecordMs + 2 * this.gapMs - nowMs) : this.options.idlePeriodMs;
    const timeoutMs = Math.max(1, Math.min(this.options.idlePeriodMs, rhythmEndsMs, untilDueMs));
    const pace = { sleepUs: Math.min(this.sleep, boundUs), maxSleepUs: boundUs, timeoutMs };
    this.waitStartMs = nowMs;
    this.waitPace = pace;
    return pace;
  }
}
