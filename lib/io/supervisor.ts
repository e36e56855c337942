// Supervision of one I/O component (the ring writer and poller of a storage path, a mirror's copy,
// push or serve): when it fails, decide what the fault is (one table: error code -> reason -> stall,
// retry or stop), wait (for the volume's `recover` after a stall, or a bounded, jittered exponential
// backoff after an error), reopen, and report every state change once (not every retry).
// SupervisorCore is the sans-IO decision table, driven by the caller's clock; Supervisor is the thin
// async loop around it (a mirror, which owns its loop, uses the core and the wait helpers below).
// Invariants: configuration faults (not owner, wrong pair, wrong key...) are never retried; a stalled
// volume gets no new I/O from a retry until every parked request returned; the delay between attempts
// is at most backoffMaxMs; at most maxRetries failed attempts in a row.
import { EventEmitter, once } from "node:events";
import { performance } from "node:perf_hooks";

import { ErrorCode, LunlinkError, invalidArgument } from "../errors.ts";
import type { Volume } from "../io/volume.ts";

export interface RecoveryOptions {
  /** First delay after a failed (re)open or an I/O error (default 200 ms). */
  backoffMinMs?: number;
  /** Bound of the doubling delay (default 5000 ms): a healed device is used again within this. */
  backoffMaxMs?: number;
  /** Fraction of each delay taken off at random, 0..1 (default 0.2): two nodes do not retry in step. */
  backoffJitter?: number;
  /** Faults in a row (the first one and failed reopens) after which the volume handle is closed and opened again by path (default 3). */
  reopenVolumeAfter?: number;
  /** Faults in a row that are retried before the component gives up and fails (default 1000000: with the backoff, weeks). */
  maxRetries?: number;
  /**
   * Reasons that stop the component besides "configuration" (default none): a mirror stops on a
   * source whose layout changed ("layout") and on an unexpected error ("bug"); a storage path,
   * which must keep the link up, retries both.
   */
  fatalReasons?: readonly FaultReason[];
}

export const DEFAULT_RECOVERY: Required<RecoveryOptions> = { backoffMinMs: 200, backoffMaxMs: 5000, backoffJitter: 0.2, reopenVolumeAfter: 3, maxRetries: 1_000_000, fatalReasons: [] };

/**
 * opening: first open; up: working; stalled: a request passed ioTimeoutMs and is still parked in the
 * kernel, waiting for the device to answer; retrying: an I/O error (EIO, ENOSPC, short I/O, device
 * gone), reopening with backoff; failed: a configuration fault, not retried; closed.
 */
export type ComponentState = "opening" | "up" | "stalled" | "retrying" | "failed" | "closed";
/** What the supervisor does: wait for the device (stall), back off and reopen (io), or report and stop (config). */
export type FaultKind = "stall" | "io" | "config";
/** Why, for reports and counters: finer than the kind, same decision for every reason of one kind. */
export type FaultReason = "stall" | "io-error" | "no-space" | "device-gone" | "link" | "layout" | "configuration" | "bug";

/**
 * The one table: error code -> reason. A code not listed (and an error that is no LunlinkError) is a
 * "bug". "layout" (a volume too small, misaligned, unformatted, its superblocks in conflict) may be
 * a passing state of a volume being formatted: retried unless the component lists it as fatal.
 */
const REASON_BY_CODE: ReadonlyMap<string, FaultReason> = new Map<string, FaultReason>([
  [ErrorCode.IoStalled, "stall"],
  [ErrorCode.IoError, "io-error"],
  [ErrorCode.System, "io-error"],
  [ErrorCode.NoSpace, "no-space"],
  [ErrorCode.NotFound, "device-gone"], // ENXIO, ENODEV: the device went away under an open descriptor
  [ErrorCode.ShortIo, "device-gone"], // the volume ended early: truncated or resized under us
  [ErrorCode.Closed, "device-gone"],
  [ErrorCode.PeerLost, "link"],
  [ErrorCode.QueueFull, "link"],
  [ErrorCode.Busy, "link"],
  [ErrorCode.VolumeTooSmall, "layout"],
  [ErrorCode.Misaligned, "layout"],
  [ErrorCode.NotFormatted, "layout"],
  [ErrorCode.SuperblockConflict, "layout"],
  // A retry cannot fix these: the operator must (another writer, another pair, another key).
  ...[
    ErrorCode.NotOwner,
    ErrorCode.WrongPair,
    ErrorCode.WrongKey,
    ErrorCode.Downgrade,
    ErrorCode.KeyRequired,
    ErrorCode.BadKey,
    ErrorCode.BadConfig,
    ErrorCode.PermissionDenied,
    ErrorCode.NotAVolume,
    ErrorCode.NoDirectIo,
    ErrorCode.ReadOnly,
    ErrorCode.InvalidArgument,
    ErrorCode.FrameTooLarge,
    ErrorCode.KeyExhausted,
    ErrorCode.BadPeerMessage,
    ErrorCode.PeerRefused,
  ].map((code): [string, FaultReason] => [code, "configuration"]),
]);

/** Reason -> counter, and the kind of every reason that is not fatal by the component's choice. */
const REASONS: Record<FaultReason, { kind: FaultKind; counter: keyof SupervisorCounters }> = {
  stall: { kind: "stall", counter: "stalls" },
  "io-error": { kind: "io", counter: "ioErrors" },
  "no-space": { kind: "io", counter: "noSpace" },
  "device-gone": { kind: "io", counter: "deviceGone" },
  link: { kind: "io", counter: "linkDrops" },
  layout: { kind: "io", counter: "otherFaults" },
  configuration: { kind: "config", counter: "otherFaults" },
  bug: { kind: "io", counter: "otherFaults" },
};

/** Why `error` happened; any error while a request is parked on the component's volume is a stall. */
export function faultReason(error: unknown, volumeStalled = false): FaultReason {
  const reason = (error instanceof LunlinkError ? REASON_BY_CODE.get(error.code) : undefined) ?? "bug";
  return volumeStalled && reason !== "configuration" ? "stall" : reason;
}

/** Stall (wait for the device), I/O fault (back off and reopen), or configuration fault (report, stop). */
export function classifyFault(error: unknown, volumeStalled: boolean, fatalReasons: readonly FaultReason[] = []): FaultKind {
  const reason = faultReason(error, volumeStalled);
  return fatalReasons.includes(reason) ? "config" : REASONS[reason].kind;
}

export interface Fault {
  kind: FaultKind;
  reason: FaultReason;
  code: string;
  message: string;
  atMs: number;
}

export interface StateChange {
  component: string;
  from: ComponentState;
  to: ComponentState;
  atMs: number;
  fault?: Fault;
  /** On a return to up: how long the component was down (first fault to up again). */
  outageMs?: number;
  /** Faults in a row so far (the first one and failed reopens); on a move to failed with an I/O fault: retries ran out. */
  attempts: number;
}

export type NextStep = { kind: "reopen"; delayMs: number } | { kind: "recover" } | { kind: "stop" };

export interface SupervisorCounters {
  /** Times the component went from up to a fault. */
  faults: number;
  /** Times it came back up. */
  recoveries: number;
  /** Reopen attempts that failed. */
  failedAttempts: number;
  /** Faults that were retried (waited out or backed off), of any reason. */
  retries: number;
  /** Every fault (the first one and failed reopens) by reason. */
  stalls: number;
  ioErrors: number;
  noSpace: number;
  deviceGone: number;
  linkDrops: number;
  /** Layout, configuration and unexpected faults. */
  otherFaults: number;
}

/** The decision table, sans-IO: (now, what happened) -> next step and at most one state change. */
export class SupervisorCore {
  readonly component: string;
  state: ComponentState = "opening";
  sinceMs: number;
  fault: Fault | undefined;
  /** Attempts since the component was last up (drives the backoff). */
  attempts = 0;
  /** Start of the current outage (first fault), NaN while up. */
  downSinceMs = Number.NaN;
  lastOutageMs: number | undefined;
  nextAttemptAtMs: number | undefined;
  /** The last fault, kept after the component is up again (status reports). */
  lastFault: Fault | undefined;
  readonly counters: SupervisorCounters = { faults: 0, recoveries: 0, failedAttempts: 0, retries: 0, stalls: 0, ioErrors: 0, noSpace: 0, deviceGone: 0, linkDrops: 0, otherFaults: 0 };
  private readonly options: Required<RecoveryOptions>;
  private readonly random: () => number;

  constructor(component: string, nowMs: number, options: RecoveryOptions = {}, random: () => number = Math.random) {
    this.component = component;
    this.sinceMs = nowMs;
    this.options = resolveRecovery(options);
    this.random = random;
  }

  /**
   * The component is (again) working. The backoff is not reset yet: a component that fails again
   * before it stayed up for backoffMaxMs (a full file system lets the reopen write its superblock,
   * then the next record fails) keeps backing off instead of flapping at backoffMinMs.
   */
  opened(nowMs: number): StateChange | undefined {
    this.nextAttemptAtMs = undefined;
    if (this.state === "up") return undefined;
    const change = this.move(nowMs, "up");
    if (!Number.isNaN(this.downSinceMs)) {
      this.counters.recoveries++;
      this.lastOutageMs = nowMs - this.downSinceMs;
      change.outageMs = this.lastOutageMs;
    }
    this.downSinceMs = Number.NaN;
    this.fault = undefined;
    return change;
  }

  /**
   * The component failed (while up, or an attempt to reopen it). `volumeStalled`: a request on its
   * volume is parked in the kernel. Returns what to do next and the state change, if any.
   */
  failed(nowMs: number, error: unknown, volumeStalled: boolean): { next: NextStep; change: StateChange | undefined } {
    if (this.state === "closed") return { next: { kind: "stop" }, change: undefined };
    const reason = faultReason(error, volumeStalled);
    const kind = classifyFault(error, volumeStalled, this.options.fatalReasons);
    this.fault = {
      kind,
      reason,
      code: error instanceof LunlinkError ? error.code : ErrorCode.System,
      message: error instanceof Error ? error.message : String(error),
      atMs: nowMs,
    };
    this.lastFault = this.fault;
    this.counters[REASONS[reason].counter]++;
    if (this.state === "up") {
      this.counters.faults++;
      this.downSinceMs = nowMs;
      if (nowMs - this.sinceMs >= this.options.backoffMaxMs) this.attempts = 0;
    } else if (this.state !== "opening") {
      this.counters.failedAttempts++;
    }
    if (Number.isNaN(this.downSinceMs)) this.downSinceMs = nowMs;
    this.attempts++;
    const gaveUp = kind !== "config" && this.attempts > this.options.maxRetries;
    const to: ComponentState = kind === "config" || gaveUp ? "failed" : kind === "stall" ? "stalled" : "retrying";
    const change = this.state === to ? undefined : this.move(nowMs, to);
    if (change !== undefined) change.fault = this.fault;
    if (to === "failed") return { next: { kind: "stop" }, change };
    this.counters.retries++;
    if (kind === "stall") {
      this.nextAttemptAtMs = undefined;
      return { next: { kind: "recover" }, change };
    }
    const delayMs = this.backoffMs(this.attempts);
    this.nextAttemptAtMs = nowMs + delayMs;
    return { next: { kind: "reopen", delayMs }, change };
  }

  /** The stalled volume answered again: reopen now (an I/O error after that backs off as usual). */
  recovered(nowMs: number): StateChange | undefined {
    if (this.state !== "stalled") return undefined;
    this.attempts = 0;
    return this.move(nowMs, "retrying");
  }

  /** Should the next attempt close the volume handle and open it again by path? */
  get reopenVolume(): boolean {
    return this.attempts >= this.options.reopenVolumeAfter || this.fault?.code === ErrorCode.NotFound;
  }

  close(nowMs: number): StateChange | undefined {
    if (this.state === "closed") return undefined;
    return this.move(nowMs, "closed");
  }

  /** Delay before attempt n (1-based): min(max, min * 2^(n-1)), minus up to `jitter` of it at random. */
  backoffMs(attempt: number): number {
    const { backoffMinMs, backoffMaxMs, backoffJitter } = this.options;
    const base = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
    return Math.round(base * (1 - backoffJitter * this.random()));
  }

  private move(nowMs: number, to: ComponentState): StateChange {
    const change: StateChange = { component: this.component, from: this.state, to, atMs: nowMs, attempts: this.attempts };
    this.state = to;
    this.sinceMs = nowMs;
    return change;
  }
}

function resolveRecovery(o: RecoveryOptions): Required<RecoveryOptions> {
  const r = { ...DEFAULT_RECOVERY, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as Required<RecoveryOptions>;
  if (!Number.isInteger(r.backoffMinMs) || r.backoffMinMs < 1 || r.backoffMinMs > 600_000) throw invalidArgument("backoffMinMs", "an integer in 1..600000", r.backoffMinMs);
  if (!Number.isInteger(r.backoffMaxMs) || r.backoffMaxMs < r.backoffMinMs || r.backoffMaxMs > 3_600_000) throw invalidArgument("backoffMaxMs", `an integer in ${r.backoffMinMs}..3600000`, r.backoffMaxMs);
  if (typeof r.backoffJitter !== "number" || !(r.backoffJitter >= 0 && r.backoffJitter <= 1)) throw invalidArgument("backoffJitter", "a number in 0..1", r.backoffJitter);
  if (!Number.isInteger(r.reopenVolumeAfter) || r.reopenVolumeAfter < 1 || r.reopenVolumeAfter > 1000) throw invalidArgument("reopenVolumeAfter", "an integer in 1..1000", r.reopenVolumeAfter);
  if (!Number.isSafeInteger(r.maxRetries) || r.maxRetries < 0) throw invalidArgument("maxRetries", "an integer >= 0", r.maxRetries);
  if (!Array.isArray(r.fatalReasons) || r.fatalReasons.some((reason) => !(reason in REASONS))) throw invalidArgument("fatalReasons", `a list of ${Object.keys(REASONS).join(", ")}`, r.fatalReasons);
  return r;
}

/** One life of a component: what failed() resolves with (undefined: stopped without a fault) and how to stop it. */
export interface Incarnation {
  failed: Promise<Error | undefined>;
  close(): Promise<void>;
}

export interface SupervisorEvents {
  change: [StateChange];
}

/** What a status display needs about one component. */
export interface ComponentReport {
  component: string;
  state: ComponentState;
  /** How long it has been in this state. */
  forMs: number;
  fault: { kind: FaultKind; reason: FaultReason; code: string; message: string } | null;
  /** Requests parked in the kernel on its volume (a stall). */
  parked: number;
  attempts: number;
  nextAttemptInMs: number | null;
  lastOutageMs: number | null;
  counters: SupervisorCounters;
}

/**
 * The async shell: opens the component, waits for it to fail, asks the core what to do, waits
 * (abortable by close) and reopens. `volume()` is the component's current volume (its stall state
 * and `recover` event); `open(reopenVolume)` returns a running incarnation or throws.
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly core: SupervisorCore;
  private readonly volume: () => Volume | undefined;
  private readonly open: (reopenVolume: boolean) => Promise<Incarnation>;
  private current: Incarnation | undefined;
  private loop: Promise<void> | undefined;
  private closed = false;
  /** Aborted by close(): ends every wait of the loop. */
  private readonly stopping = new AbortController();
  private stopped!: () => void;
  /** Resolves on close(): a component that stops without an error must not keep the loop waiting. */
  private readonly closing = new Promise<undefined>((resolve) => (this.stopped = () => resolve(undefined)));

  constructor(component: string, volume: () => Volume | undefined, open: (reopenVolume: boolean) => Promise<Incarnation>, options: RecoveryOptions = {}, random?: () => number) {
    super();
    this.core = new SupervisorCore(component, performance.now(), options, random);
    this.volume = volume;
    this.open = open;
  }

  get up(): boolean {
    return this.core.state === "up";
  }

  /** Takes over a component opened by the caller (the first open, whose errors the caller reports itself). */
  adopt(first: Incarnation): void {
    if (this.loop !== undefined) throw new Error("assertion failed: supervisor started twice");
    this.current = first;
    this.note(this.core.opened(performance.now()));
    this.loop = this.run(first);
  }

  report(): ComponentReport {
    const now = performance.now();
    const c = this.core;
    return {
      component: c.component,
      state: c.state,
      forMs: Math.round(now - c.sinceMs),
      fault: c.fault === undefined ? null : { kind: c.fault.kind, reason: c.fault.reason, code: c.fault.code, message: c.fault.message },
      parked: this.parked,
      attempts: c.attempts,
      nextAttemptInMs: c.nextAttemptAtMs === undefined ? null : Math.max(0, Math.round(c.nextAttemptAtMs - now)),
      lastOutageMs: c.lastOutageMs === undefined ? null : Math.round(c.lastOutageMs),
      counters: { ...c.counters },
    };
  }

  /** Requests parked on the volume, as its last `stall` event said (0 once it recovered). */
  parked = 0;

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.note(this.core.close(performance.now()));
    this.stopped();
    this.stopping.abort();
    await this.current?.close().catch(() => undefined);
    await this.loop;
  }

  private async run(first: Incarnation): Promise<void> {
    let incarnation: Incarnation | undefined = first;
    while (!this.closed) {
      let error: Error | undefined;
      if (incarnation !== undefined) {
        error = await Promise.race([incarnation.failed, this.closing]);
        if (this.closed) return;
        await incarnation.close().catch(() => undefined);
        this.current = undefined;
        error ??= new LunlinkError(ErrorCode.System, `${this.core.component}: stopped without an error`);
      }
      const { next, change } = this.core.failed(performance.now(), error, this.volume()?.stalled === true);
      this.note(change);
      if (next.kind === "stop") return;
      if (next.kind === "recover") {
        await this.waitForRecover();
        if (this.closed) return;
        this.note(this.core.recovered(performance.now()));
      } else {
        await this.sleep(next.delayMs);
      }
      // Attempts follow each other without a new state change until one succeeds or the fault changes.
      incarnation = undefined;
      while (!this.closed && incarnation === undefined) {
        try {
          incarnation = await this.open(this.core.reopenVolume);
        } catch (attemptError) {
          if (this.closed) return;
          const step = this.core.failed(performance.now(), attemptError, this.volume()?.stalled === true);
          this.note(step.change);
          if (step.next.kind === "stop") return;
          if (step.next.kind === "recover") {
            await this.waitForRecover();
            this.note(this.core.recovered(performance.now()));
          } else await this.sleep(step.next.delayMs);
        }
      }
      if (this.closed) {
        await incarnation?.close().catch(() => undefined);
        return;
      }
      this.current = incarnation;
      this.note(this.core.opened(performance.now()));
    }
  }

  /** Until no request is parked on the volume (its `recover` event, re-checked every RECOVER_CHECK_MS) or close(). */
  private async waitForRecover(): Promise<void> {
    const volume = this.volume();
    if (volume !== undefined) await untilRecovered([volume], this.stopping.signal);
  }

  private sleep(ms: number): Promise<void> {
    return sleepUnless(ms, this.stopping.signal);
  }

  private note(change: StateChange | undefined): void {
    if (change !== undefined) this.emit("change", change);
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
