// Supervision of one I/O component (the ring writer on the send volume, the poller on the
// receive volume): when it fails, decide what the fault is, wait (for the volume's `recover` after a
// stall, or a bounded, jittered exponential backoff after an error), reopen, and report every state
// change once (not every retry). SupervisorCore is the sans-IO decision table, driven by the
// caller's clock; Supervisor is the thin async loop around it. Invariants: configuration faults
// (not owner, wrong pair, wrong key...) are never retried; a stalled volume gets no new I/O from a
// retry until every parked request returned; the delay between attempts is at most backoffMaxMs.
import { EventEmitter } from "node:events";
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
}

export const DEFAULT_RECOVERY: Required<RecoveryOptions> = { backoffMinMs: 200, backoffMaxMs: 5000, backoffJitter: 0.2, reopenVolumeAfter: 3 };

/**
 * opening: first open; up: working; stalled: a request passed ioTimeoutMs and is still parked in the
 * kernel, waiting for the device to answer; retrying: an I/O error (EIO, ENOSPC, short I/O, device
 * gone), reopening with backoff; failed: a configuration fault, not retried; closed.
 */
export type ComponentState = "opening" | "up" | "stalled" | "retrying" | "failed" | "closed";
export type FaultKind = "stall" | "io" | "config";

/** Errors a retry cannot fix: the operator must (another writer, another pair, another key). */
const CONFIG_CODES: ReadonlySet<string> = new Set([
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
]);

/** Stall (wait for the device), I/O fault (back off and reopen), or configuration fault (report, stop). */
export function classifyFault(error: unknown, volumeStalled: boolean): FaultKind {
  const code = error instanceof LunlinkError ? error.code : undefined;
  if (code !== undefined && CONFIG_CODES.has(code)) return "config";
  if (code === ErrorCode.IoStalled || volumeStalled) return "stall";
  // IO_ERROR, NO_SPACE, SHORT_IO, NOT_FOUND, BUSY, SYSTEM, damaged superblocks, anything unexpected:
  // worth another try after a pause.
  return "io";
}

export interface Fault {
  kind: FaultKind;
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
}

export type NextStep = { kind: "reopen"; delayMs: number } | { kind: "recover" } | { kind: "stop" };

export interface SupervisorCounters {
  /** Times the component went from up to a fault. */
  faults: number;
  /** Times it came back up. */
  recoveries: number;
  /** Reopen attempts that failed. */
  failedAttempts: number;
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
  readonly counters: SupervisorCounters = { faults: 0, recoveries: 0, failedAttempts: 0 };
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
    const kind = classifyFault(error, volumeStalled);
    this.fault = {
      kind,
      code: error instanceof LunlinkError ? error.code : ErrorCode.System,
      message: error instanceof Error ? error.message : String(error),
      atMs: nowMs,
    };
    if (this.state === "up") {
      this.counters.faults++;
      this.downSinceMs = nowMs;
      if (nowMs - this.sinceMs >= this.options.backoffMaxMs) this.attempts = 0;
    } else if (this.state !== "opening") {
      this.counters.failedAttempts++;
    }
    if (Number.isNaN(this.downSinceMs)) this.downSinceMs = nowMs;
    this.attempts++;
    const to: ComponentState = kind === "config" ? "failed" : kind === "stall" ? "stalled" : "retrying";
    const change = this.state === to ? undefined : this.move(nowMs, to);
    if (change !== undefined) change.fault = this.fault;
    if (kind === "config") return { next: { kind: "stop" }, change };
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
    const change: StateChange = { component: this.component, from: this.state, to, atMs: nowMs };
    this.state = to;
    this.sinceMs = nowMs;
    return change;
  }
}

function resolveRecovery(o: RecoveryOptions): Required<RecoveryOptions> {
  const r = { ...DEFAULT_RECOVERY, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as Required<RecoveryOptions>;
  if (!Number.isInteger(r.backoffMinMs) || r.backoffMinMs < 1 || r.backoffMinMs > 600_000) throw invalidArgument("backoffMinMs", "an integer in 1..600000", r.backoffMinMs);
  if (!Number.isInteger(r.backoffMaxMs) || r.backoffMaxMs < r.backoffMinMs || r.backoffMaxMs > 600_000) throw invalidArgument("backoffMaxMs", `an integer in ${r.backoffMinMs}..600000`, r.backoffMaxMs);
  if (typeof r.backoffJitter !== "number" || !(r.backoffJitter >= 0 && r.backoffJitter <= 1)) throw invalidArgument("backoffJitter", "a number in 0..1", r.backoffJitter);
  if (!Number.isInteger(r.reopenVolumeAfter) || r.reopenVolumeAfter < 1 || r.reopenVolumeAfter > 1000) throw invalidArgument("reopenVolumeAfter", "an integer in 1..1000", r.reopenVolumeAfter);
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
  fault: { kind: FaultKind; code: string; message: string } | null;
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
  private wakeUp: (() => void) | undefined;
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
      fault: c.fault === undefined ? null : { kind: c.fault.kind, code: c.fault.code, message: c.fault.message },
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
    this.wakeUp?.();
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

  /** Until no request is parked on the volume: its `recover` event, re-checked every backoffMaxMs. */
  private async waitForRecover(): Promise<void> {
    while (!this.closed && this.volume()?.stalled === true) {
      const volume = this.volume()!;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          volume.off("recover", done);
          this.wakeUp = undefined;
          resolve();
        };
        const timer = setTimeout(done, this.core.backoffMs(Number.POSITIVE_INFINITY));
        volume.on("recover", done);
        this.wakeUp = done;
      });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = undefined;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private note(change: StateChange | undefined): void {
    if (change !== undefined) this.emit("change", change);
  }
}
