// The mirrors' words for the one supervisor core (lib/io/supervisor.ts): a state change becomes a
// HealthChange (starting -> healthy -> faulted(reason) -> healthy, or failed), the `state` line the
// mirror CLI prints, once per change. A view only: every decision is the core's. Also the mirrors'
// option names for its backoff (retryMinMs, retryMaxMs, jitterPercent, maxRetries) and their
// defaults, and the reasons that end a mirror (a changed layout, an unexpected error).
import { integerOption } from "../errors.ts";
import type { ComponentState, FaultReason, RecoveryOptions, StateChange, SupervisorCore, SupervisorCounters } from "../io/supervisor.ts";

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

/** A mirror cannot copy a source whose layout changed, and crashes on a bug rather than loop on it. */
export const MIRROR_FATAL_REASONS: readonly FaultReason[] = ["layout", "bug"];

/** The mirror's option names -> the core's recovery options. */
export function mirrorRecovery(options: BackoffOptions): RecoveryOptions {
  const retryMinMs = integerOption("retryMinMs", options.retryMinMs, 100, 1, 600_000);
  return {
    backoffMinMs: retryMinMs,
    backoffMaxMs: integerOption("retryMaxMs", options.retryMaxMs, Math.max(5000, retryMinMs), retryMinMs, 3_600_000),
    backoffJitter: integerOption("jitterPercent", options.jitterPercent, 20, 0, 100) / 100,
    maxRetries: integerOption("maxRetries", options.maxRetries, 1_000_000, 0, Number.MAX_SAFE_INTEGER),
    fatalReasons: MIRROR_FATAL_REASONS,
  };
}

/** One change of state, reported once (a log line, an event, a JSON line). */
export interface HealthChange {
  component: string;
  health: Health;
  /** Why it is faulted, or why retries ran out; null when healthy or on a configuration fault or a bug. */
  fault: FaultReason | null;
  /** The error code of the fault (or of the configuration fault that failed the job). */
  code: string | null;
  detail: string;
  /** Consecutive failed attempts when this change happened. */
  attempts: number;
}

export function healthOf(state: ComponentState): Health {
  return state === "up" ? "healthy" : state === "stalled" || state === "retrying" ? "faulted" : state === "failed" ? "failed" : "starting";
}

/** The core's change in the mirror's words; `detail` says what a return to healthy did. */
export function healthChange(change: StateChange, detail: string): HealthChange {
  const health = healthOf(change.to);
  const fault = change.fault;
  if (health === "healthy" || fault === undefined) return { component: change.component, health, fault: null, code: null, detail, attempts: change.attempts };
  let why = fault.message;
  if (health === "failed") {
    why =
      fault.kind !== "config"
        ? `gave up after ${change.attempts - 1} retries: ${fault.message}`
        : fault.reason === "bug"
          ? `unexpected error: ${fault.message}`
          : `configuration fault, not retried: ${fault.message}`;
  }
  const named = health === "faulted" || fault.kind !== "config";
  return { component: change.component, health, fault: named ? fault.reason : null, code: fault.code, detail: why, attempts: change.attempts };
}

/** For status reports (`--json`): where the component stands. */
export function healthSnapshot(core: SupervisorCore): { health: Health; fault: FaultReason | null; attempts: number; lastError: { code: string; message: string; atMs: number } | null } & SupervisorCounters {
  const last = core.lastFault;
  return {
    health: healthOf(core.state),
    fault: core.fault === undefined || core.fault.kind === "config" ? null : core.fault.reason,
    attempts: core.attempts,
    lastError: last === undefined ? null : { code: last.code, message: last.message, atMs: last.atMs },
    ...core.counters,
  };
}
