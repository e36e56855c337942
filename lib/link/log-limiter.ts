// The one rate limiter for log lines about refused or damaged input (sealed UDP datagrams in
// LinkCore, ring faults in the node): at most one line per key per interval, however fast an
// attacker or a broken device produces them; the counters still count every one. Pure: the caller
// passes the time.

/** A reason (UDP refusal, ring fault) is logged at most this often; the counters count every one. */
export const FAULT_LOG_INTERVAL_MS = 1000;

/** What admit() says: write a line now (with how many were held back since the last one), or not. */
export type Admission = { log: true; suppressed: number } | { log: false };

export class LogLimiter {
  readonly intervalMs: number;
  private readonly last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(intervalMs: number) {
    if (!(intervalMs > 0)) throw new Error(`assertion failed: a log interval of ${intervalMs} ms`);
    this.intervalMs = intervalMs;
  }

  /** One more event for `key` at `nowMs`: log it if the key's last line is at least intervalMs old. Keys are a fixed set (reasons), so the map is bounded by it. */
  admit(key: string, nowMs: number): Admission {
    const entry = this.last.get(key);
    if (entry !== undefined && nowMs - entry.atMs < this.intervalMs) {
      entry.suppressed++;
      return { log: false };
    }
    this.last.set(key, { atMs: nowMs, suppressed: 0 });
    return { log: true, suppressed: entry?.suppressed ?? 0 };
  }
}
