// Supervisor: what a mirror process does when its storage or link fails (DESIGN.md section 5). The
// core is sans-IO: it classifies a failure, decides retry or give up, says how long to back off
// (bounded exponential with jitter; the caller passes the random draw) and reports each change of
// state once (healthy -> faulted(kind) -> healthy), never each retry. Configuration faults (wrong
// pair, not owner, bad key, a refusal) end the job: retrying cannot fix them. The shell below it
// (untilRecovered, sleepUnless) is the few lines of waiting; the mirrors own the loop.
import { once } from "node:events";

import { ErrorCode, LunlinkError, integerOption } from "../errors.ts";
import type { Volume } from "../io/volume.ts";

/** Faults worth waiting out: the storage or the link may come back by itself. */
export type FaultKind = "stall" | "io-error" | "no-space" | "device-gone" | "link";
export type Health = "starting" | "healthy" | "faulted" | "failed";

export interface BackoffOptions {
  /** First retry delay (default 100 ms); doubles per consecutive failure up to retryMaxMs (default 5000 ms). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Each delay is drawn from [delay * (1 - jitterPercent/100), delay] (default 20). */
  jitterPercent?: number;
  /** Consecutive failed attempts before giving up (default 1000000: with the backoff, weeks). */
  maxRetries?: number;
}

export type ResolvedBackoff = Required<BackoffOptions>;

export function resolveBackoff(options: BackoffOptions): ResolvedBackoff {
  const retryMinMs = integerOption("retryMinMs", options.retryMinMs, 100, 1, 600_000);
  return {
    retryMinMs,
    retryMaxMs: integerOption("retryMaxMs", options.retryMaxMs, Math.max(5000, retryMinMs), retryMinMs, 3_600_000),
    jitterPercent: integerOption("jitterPercent", options.jitterPercent, 20, 0, 100),
    maxRetries: integerOption("maxRetries", options.maxRetries, 1_000_000, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** Codes that name a wrong setup, not a passing fault: reported once, never retried. */
const CONFIGURATION_CODES: ReadonlySet<string> = new Set([
  ErrorCode.WrongPair,
  ErrorCode.NotOwner,
  ErrorCode.BadKey,
  ErrorCode.WrongKey,
  ErrorCode.KeyRequired,
  ErrorCode.Downgrade,
  ErrorCode.BadConfig,
  ErrorCode.InvalidArgument,
  ErrorCode.VolumeTooSmall,
  ErrorCode.Misaligned,
  ErrorCode.NotFormatted,
  ErrorCode.SuperblockConflict,
  ErrorCode.PermissionDenied,
  ErrorCode.ReadOnly,
  ErrorCode.NoDirectIo,
  ErrorCode.NotAVolume,
  ErrorCode.BadPeerMessage,
  ErrorCode.PeerRefused,
]);

/** What kind of fault `error` is: one worth waiting out, a configuration fault, or a bug (crash). */
export function classifyFault(error: unknown): FaultKind | "configuration" | "bug" {
  if (!(error instanceof LunlinkError)) return "bug";
  switch (error.code) {
    case ErrorCode.IoStalled:
      return "stall";
    case ErrorCode.IoError:
    case ErrorCode.System:
      return "io-error";
    case ErrorCode.NoSpace:
      return "no-space";
    case ErrorCode.NotFound: // ENXIO, ENODEV: the device went away under an open descriptor
    case ErrorCode.ShortIo: // the volume ended early: truncated or resized under us
    case ErrorCode.Closed:
      return "device-gone";
    case ErrorCode.PeerLost:
    case ErrorCode.QueueFull:
    case ErrorCode.Busy:
      return "link";
  }
  return CONFIGURATION_CODES.has(error.code) ? "configuration" : "bug";
}

/** One change of state, reported once (a log line, an event, a JSON line). */
export interface HealthChange {
  component: string;
  health: Health;
  fault: FaultKind | null;
  /** The error code of the fault (or of the configuration fault that failed the job). */
  code: string | null;
  detail: string;
  /** Consecutive failed attempts when this change happened. */
  attempts: number;
}

export interface SupervisorCounters {
  faults: number;
  retries: number;
  /** Faulted -> healthy transitions: the component healed by itself. */
  recoveries: number;
  stalls: number;
  ioErrors: number;
  noSpace: number;
  deviceGone: number;
  linkDrops: number;
}

export type FaultDecision =
  | { action: "retry"; delayMs: number; waitForRecover: boolean; change: HealthChange | undefined }
  | { action: "fail"; change: HealthChange };

const COUNTER_BY_KIND: Record<FaultKind, keyof SupervisorCounters> = { stall: "stalls", "io-error": "ioErrors", "no-space": "noSpace", "device-gone": "deviceGone", link: "linkDrops" };

export class SupervisorCore {
  readonly component: string;
  readonly backoff: ResolvedBackoff;
  readonly counters: SupervisorCounters = { faults: 0, retries: 0, recoveries: 0, stalls: 0, ioErrors: 0, noSpace: 0, deviceGone: 0, linkDrops: 0 };
  health: Health = "starting";
  fault: FaultKind | null = null;
  lastError: { code: string; message: string; atMs: number } | null = null;
  /** Consecutive failed attempts since the component was last healthy. */
  attempts = 0;

  constructor(component: string, backoff: ResolvedBackoff) {
    this.component = component;
    this.backoff = backoff;
  }

  /** The delay before retry number `attempt` (1-based), `random` in [0, 1): bounded, jittered down. */
  delayMs(attempt: number, random: number): number {
    const { retryMinMs, retryMaxMs, jitterPercent } = this.backoff;
    const base = Math.min(retryMaxMs, retryMinMs * 2 ** Math.min(attempt - 1, 40));
    return Math.round(base * (1 - (jitterPercent / 100) * Math.min(Math.max(random, 0), 1)));
  }

  /** An attempt failed with `error`: retry (after delayMs, and once stalled volumes answer) or fail. */
  onFault(nowMs: number, error: unknown, random: number): FaultDecision {
    const kind = classifyFault(error);
    const code = error instanceof LunlinkError ? error.code : null;
    const message = error instanceof Error ? error.message : String(error);
    this.lastError = { code: code ?? "", message, atMs: nowMs };
    this.counters.faults++;
    if (kind === "configuration" || kind === "bug" || this.attempts >= this.backoff.maxRetries) {
      this.health = "failed";
      const why = kind === "configuration" ? "configuration fault, not retried" : kind === "bug" ? "unexpected error" : `gave up after ${this.attempts} retries`;
      return { action: "fail", change: { component: this.component, health: "failed", fault: kind === "configuration" || kind === "bug" ? null : kind, code, detail: `${why}: ${message}`, attempts: this.attempts } };
    }
    this.counters[COUNTER_BY_KIND[kind]]++;
    this.counters.retries++;
    this.attempts++;
    const changed = this.health !== "faulted" || this.fault !== kind;
    this.health = "faulted";
    this.fault = kind;
    return {
      action: "retry",
      delayMs: this.delayMs(this.attempts, random),
      waitForRecover: kind === "stall",
      change: changed ? { component: this.component, health: "faulted", fault: kind, code, detail: message, attempts: this.attempts } : undefined,
    };
  }

  /** The component did useful work end to end (a resync, a durable write): healthy again. */
  onHealthy(detail: string): HealthChange | undefined {
    if (this.health === "healthy") return undefined;
    if (this.health === "faulted") this.counters.recoveries++;
    const attempts = this.attempts;
    this.health = "healthy";
    this.fault = null;
    this.attempts = 0;
    return { component: this.component, health: "healthy", fault: null, code: null, detail, attempts };
  }

  /** For status reports (`--json`): where the component stands. */
  snapshot(): { health: Health; fault: FaultKind | null; attempts: number; lastError: SupervisorCore["lastError"] } & SupervisorCounters {
    return { health: this.health, fault: this.fault, attempts: this.attempts, lastError: this.lastError, ...this.counters };
  }
}

/** How often a wait for a stalled volume re-checks it besides its "recover" event. */
export const RECOVER_CHECK_MS = 1000;

/**
 * Resolves once none of `volumes` has a parked request, or `signal` aborts; never rejects. The
 * timer also keeps the process alive: a parked native request does not, and a CLI whose only
 * pending work is this wait would otherwise exit with its top-level await unsettled.
 */
export async function untilRecovered(volumes: readonly Volume[], signal: AbortSignal): Promise<void> {
  for (const volume of volumes) {
    while (volume.stalled && !signal.aborted) {
      const check = new AbortController();
      const cancel = (): void => check.abort();
      signal.addEventListener("abort", cancel, { once: true });
      try {
        await Promise.race([once(volume, "recover", { signal: check.signal }).catch(() => undefined), sleepUnless(RECOVER_CHECK_MS, check.signal)]);
      } finally {
        check.abort();
        signal.removeEventListener("abort", cancel);
      }
    }
  }
}

/** Sleeps `ms`, or less if `signal` aborts; never rejects. */
export function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Runs `work`, but gives up waiting after `ms`: resolves true if it settled in time. */
export async function settledWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
