// Path state machine, sans-IO: the caller passes the time (ms, monotonic) and what it heard; this
// decides each path's state (up / suspect / down, with why) and which path carries traffic.
// Invariants: a path is up only while heartbeats arrive from the peer AND the peer echoes ours (a
// one-way failure is a failure); failback to the primary needs holdDownMs of continuous health
// (no flapping on a lossy link); time the caller itself was paused (GC, VM steal) longer than
// selfPauseMs is not counted as silence; with both paths down the link is "isolated" (reported,
// never acted on: fencing is the cluster manager's job).
import { PathId, PATH_NAMES } from "./message.ts";

export type PathState = "up" | "suspect" | "down";
export type Active = "primary" | "storage" | "isolated";
/** rx: nothing heard from the peer; tx: the peer does not echo our heartbeats (one-way failure). */
export type DownReason = "rx" | "tx" | "none";

export interface PathTimers {
  /** Heartbeat period on this path. */
  heartbeatMs: number;
  /** Silence (either direction) after which the path is suspect. */
  suspectMs: number;
  /** Silence after which the path is down. */
  downMs: number;
}

export interface LinkTimers {
  primary: PathTimers;
  storage: PathTimers;
  /** The primary must be up this long before traffic fails back to it. */
  holdDownMs: number;
  /** A gap between two ticks longer than this is our own pause, not the peer's silence. */
  selfPauseMs: number;
  /** After failback, data keeps using storage until its ring drained or this passed. */
  failbackDrainMs: number;
}

/**
 * Defaults: failover (cut -> data on storage) within 300 ms. The primary is suspect after 3 missed
 * 25 ms heartbeats (75 ms; data is then sent on both paths, the receiver dedupes) and down after
 * 150 ms; storage heartbeats every 100 ms, down after 1.5 s because a mirror may hiccup.
 */
export const DEFAULT_TIMERS: LinkTimers = {
  primary: { heartbeatMs: 25, suspectMs: 75, downMs: 150 },
  storage: { heartbeatMs: 100, suspectMs: 500, downMs: 1500 },
  holdDownMs: 1000,
  selfPauseMs: 100,
  failbackDrainMs: 500,
};

export class PathMonitor {
  readonly id: PathId;
  state: PathState = "down";
  reason: DownReason = "rx";
  /** Last time a heartbeat (or any message) arrived on this path. */
  lastHeardMs = Number.NEGATIVE_INFINITY;
  /** Last time the peer's echo of our heartbeats advanced. */
  lastEchoMs = Number.NEGATIVE_INFINITY;
  /** Since when the path has been continuously up (NaN while not up). */
  upSinceMs = Number.NaN;
  highestHeard = 0n;
  private highestEcho = 0n;
  private readonly timers: PathTimers;

  constructor(id: PathId, timers: PathTimers) {
    this.id = id;
    this.timers = timers;
  }

  get name(): (typeof PATH_NAMES)[number] {
    return PATH_NAMES[this.id]!;
  }

  /** Any message from the peer on this path proves the rx direction. */
  heard(nowMs: number): void {
    this.lastHeardMs = nowMs;
  }

  /** A heartbeat: `seq` is its number, `echo` the highest of ours the peer heard on this path. */
  heartbeat(nowMs: number, seq: bigint, echo: bigint): void {
    this.lastHeardMs = nowMs;
    if (seq > this.highestHeard) this.highestHeard = seq;
    if (echo > this.highestEcho) {
      this.highestEcho = echo;
      this.lastEchoMs = nowMs;
    }
  }

  /** The peer restarted (new session): its heartbeat numbers start again. */
  resetPeer(): void {
    this.highestHeard = 0n;
  }

  /**
   * Our own pause of `pausedMs` ended at `nowMs`: its silence does not count. Times already moved
   * by messages handled after the pause are not pushed past now.
   */
  shift(pausedMs: number, nowMs: number): void {
    this.lastHeardMs = Math.min(this.lastHeardMs + pausedMs, nowMs);
    this.lastEchoMs = Math.min(this.lastEchoMs + pausedMs, nowMs);
  }

  /** Recomputes the state; returns true if it changed. */
  evaluate(nowMs: number): boolean {
    const rxAge = nowMs - this.lastHeardMs;
    const txAge = nowMs - this.lastEchoMs;
    const age = Math.max(rxAge, txAge);
    const next: PathState = age < this.timers.suspectMs ? "up" : age < this.timers.downMs ? "suspect" : "down";
    // Silence from the peer is rx; hearing the peer while it does not echo us is tx (one-way).
    this.reason = next === "up" ? "none" : rxAge >= this.timers.suspectMs ? "rx" : "tx";
    if (next === this.state) return false;
    this.state = next;
    this.upSinceMs = next === "up" ? nowMs : next === "suspect" ? this.upSinceMs : Number.NaN;
    return true;
  }
}

export interface Transition {
  atMs: number;
  kind: "path" | "active" | "pause";
  /** For "path": the path's name; for "active": the new active path; for "pause": "self". */
  subject: string;
  from: string;
  to: string;
  detail: string;
}

/** Bound on the transitions kept for status and the demo's timeline. */
export const MAX_TRANSITIONS = 256;

export class LinkState {
  readonly timers: LinkTimers;
  readonly primary: PathMonitor;
  readonly storage: PathMonitor;
  active: Active = "isolated";
  failovers = 0;
  failbacks = 0;
  selfPauses = 0;
  /** Data still goes to storage until this time after a failback (the ring drains first). */
  drainUntilMs = Number.NEGATIVE_INFINITY;
  readonly transitions: Transition[] = [];
  private lastTickMs = Number.NaN;
  private everActive = false;

  constructor(timers: LinkTimers) {
    this.timers = timers;
    this.primary = new PathMonitor(PathId.Primary, timers.primary);
    this.storage = new PathMonitor(PathId.Storage, timers.storage);
  }

  path(id: PathId): PathMonitor {
    return id === PathId.Primary ? this.primary : this.storage;
  }

  /** Advances time: pauses are discounted, states re-evaluated, the active path chosen. */
  tick(nowMs: number): Transition[] {
    const out: Transition[] = [];
    if (!Number.isNaN(this.lastTickMs)) {
      const gapMs = nowMs - this.lastTickMs;
      if (gapMs > this.timers.selfPauseMs) {
        this.primary.shift(gapMs, nowMs);
        this.storage.shift(gapMs, nowMs);
        this.selfPauses++;
        out.push(this.note(nowMs, "pause", "self", "running", "running", `event loop paused ${Math.round(gapMs)} ms: silence during the pause ignored`));
      }
    }
    this.lastTickMs = nowMs;
    for (const path of [this.primary, this.storage]) {
      const before = path.state;
      if (path.evaluate(nowMs)) out.push(this.note(nowMs, "path", path.name, before, path.state, path.state === "up" ? "heartbeats both ways" : `reason ${path.reason}`));
    }
    const next = this.choose(nowMs);
    if (next !== this.active) {
      const from = this.active;
      if (from === "primary" && next === "storage") this.failovers++;
      if (from === "storage" && next === "primary") {
        this.failbacks++;
        this.drainUntilMs = nowMs + this.timers.failbackDrainMs;
      }
      this.active = next;
      this.everActive ||= next !== "isolated";
      out.push(this.note(nowMs, "active", next, from, next, this.describe()));
    }
    return out;
  }

  /** Paths data is sent on now: the active one, plus storage while the primary is suspect or draining. */
  dataPaths(nowMs: number, storageDrained: boolean): { primary: boolean; storage: boolean } {
    if (this.active === "primary") {
      const draining = nowMs < this.drainUntilMs && !storageDrained;
      if (draining) return { primary: false, storage: true };
      return { primary: true, storage: this.primary.state === "suspect" && this.storage.state !== "down" };
    }
    if (this.active === "storage") return { primary: false, storage: true };
    // Isolated: keep offering on both (whichever recovers first carries it).
    return { primary: true, storage: true };
  }

  private choose(nowMs: number): Active {
    const p = this.primary;
    const s = this.storage;
    const primaryHealthy = p.state === "up" && (!this.everActive || this.active === "primary" || nowMs - p.upSinceMs >= this.timers.holdDownMs);
    if (this.active === "primary" && p.state !== "down") return "primary";
    if (primaryHealthy) return "primary";
    if (s.state !== "down") return "storage";
    if (p.state === "up") return "primary"; // storage is gone: a young primary beats nothing
    return "isolated";
  }

  private describe(): string {
    return `primary ${this.primary.state}${this.primary.state === "up" ? "" : ` (${this.primary.reason})`}, storage ${this.storage.state}${this.storage.state === "up" ? "" : ` (${this.storage.reason})`}`;
  }

  private note(atMs: number, kind: Transition["kind"], subject: string, from: string, to: string, detail: string): Transition {
    const t: Transition = { atMs, kind, subject, from, to, detail };
    this.transitions.push(t);
    if (this.transitions.length > MAX_TRANSITIONS) this.transitions.shift();
    return t;
  }
}
