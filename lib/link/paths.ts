// Path state machine, sans-IO: the caller passes the time (ms, monotonic) and what it heard; this
// decides each path's state (up / suspect / down, with why) and which path carries traffic.
// Invariants: a path is up only while heartbeats arrive from the peer AND the peer echoes ours (a
// one-way failure is a failure); failback to the primary needs holdDownMs of continuous health
// (no flapping on a lossy link); time the caller itself was paused (GC, VM steal) longer than
// selfPauseMs is not counted as silence; with both paths down the link is "isolated" (reported,
// never acted on: fencing is the cluster manager's job).
// LinkCore (below) is the whole link protocol, sans-IO: sessions (adoption, a peer's restart), the
// paths each message goes on, control (numbered, acked on the path it came by, retransmitted on the
// active path), data dedupe and data order across a failback (below); the Link shell only moves bytes
// and time into it (LinkOutput).
// Failback order: the ring is slower than UDP, so data the sender moved back to the primary would
// overtake data still in the ring (one bench run: 344 probes reordered over 20 failbacks). Every data
// message on the primary carries, in its ack field, the highest data seq the sender put on storage
// alone; the receiver holds primary data (in order, bounded by HOLD_* and failbackDrainMs) until the
// ring has delivered up to that seq, then releases it. Loss on the ring costs at most failbackDrainMs
// once, never a standing delay: after a timeout the receiver stops waiting for what it gave up on.
// Broadcasts (a cluster node's one message to every peer, message.ts) are numbered by the sending node,
// not by this pair: the core sends its peer's copy on the paths data goes on (the ring frame is the
// node's one frame for all) and delivers each broadcast seq once per sender session, whichever path
// brings it first. They take no part in failback order (no hold): like IP broadcast, unordered.
import { FAULT_LOG_INTERVAL_MS, LogLimiter } from "./log-limiter.ts";
import { ControlReceiver, ControlSender } from "./control.ts";
import { decodeHeader, MessageKind, PathId, PATH_NAMES, type MessageHeader } from "./message.ts";
import type { OpenResult } from "./seal.ts";
import { SequenceWindow } from "./window.ts";

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
  /**
   * After failback, data keeps using storage until its ring drained or this passed; the receiver
   * holds primary data at most this long for ring data sent before it (failback order).
   */
  failbackDrainMs: number;
}

/**
 * Defaults: failover (cut -> data on storage) within 300 ms, with the fewest wake-ups an idle node
 * can afford (README "Link", timer arithmetic). The primary is suspect after 3 missed 35 ms
 * heartbeats (105 ms; data then goes on both paths, the receiver dedupes) and down after 4 (140 ms;
 * control moves, and downMs + heartbeatMs = 175 ms stays the bound `lunlink doctor` checks): a cut
 * costs at most suspectMs + one clock turn (35 ms) + the storage path's delivery from idle (~50 ms)
 * = 190 ms, 110 ms inside the bound. The receiver's poller in standby (pollStandbyMaxMs 100 ms while
 * the primary is up: LinkCore.storageStandby) is woken at its own suspect turn, itself within
 * suspectMs + one clock turn of the cut, so the bound holds; it adds at most the skew between the two
 * ends' detection (one turn, 35 ms) to the first record. Storage heartbeats every 250 ms, suspect after 3 missed, down
 * after 1.5 s (6 missed) because a mirror may hiccup; storage is the fallback, so its heartbeat
 * rate does not enter the failover bound.
 */
export const DEFAULT_TIMERS: LinkTimers = {
  primary: { heartbeatMs: 35, suspectMs: 105, downMs: 140 },
  storage: { heartbeatMs: 250, suspectMs: 750, downMs: 1500 },
  holdDownMs: 1000,
  selfPauseMs: 100,
  failbackDrainMs: 500,
};

/** Deadlines closer than this to a clock turn are served in that turn: one wake-up, not two ~1 ms apart. */
export const CLOCK_COALESCE_MS = 2;

/** The storage heartbeat may be this share of its period late, to ride a turn made for the primary or the tick. */
export const STORAGE_SHARE = 0.25;

/** What one turn of the link's clock does: send a heartbeat on each path that is due, tick, sleep until nextMs. */
export interface ClockTurn {
  primary: boolean;
  storage: boolean;
  nextMs: number;
}

/**
 * The link's one clock, sans-IO: both heartbeats and the state machine's tick share one timer (an
 * idle node wakes once per primary heartbeat, not three times: issue #13 section 4). Every turn
 * ticks; a heartbeat is due every heartbeatMs of its path, keeping its cadence when a turn is a
 * little late and restarting it (one heartbeat, never a burst) after a long pause; turns are at most
 * tickMs apart. The storage heartbeat (the tolerant path: suspect after several periods) waits up to
 * STORAGE_SHARE of its period for a turn the primary or the tick makes anyway, so it needs no wake-up
 * of its own. The first turn (at construction time) sends both heartbeats.
 */
export class LinkClock {
  private readonly primaryMs: number;
  private readonly storageMs: number;
  private readonly tickMs: number;
  private nextPrimaryMs: number;
  private nextStorageMs: number;

  constructor(timers: Pick<LinkTimers, "primary" | "storage">, tickMs: number, nowMs: number) {
    for (const [name, value] of [["primary.heartbeatMs", timers.primary.heartbeatMs], ["storage.heartbeatMs", timers.storage.heartbeatMs], ["tickMs", tickMs]] as const) {
      if (!(value > 0)) throw new Error(`assertion failed: LinkClock ${name} ${value}`);
    }
    this.primaryMs = timers.primary.heartbeatMs;
    this.storageMs = timers.storage.heartbeatMs;
    this.tickMs = tickMs;
    this.nextPrimaryMs = nowMs;
    this.nextStorageMs = nowMs;
  }

  /** The turn at nowMs: which heartbeats to send (then tick), and when the next turn is due. */
  turn(nowMs: number): ClockTurn {
    const primary = nowMs + CLOCK_COALESCE_MS >= this.nextPrimaryMs;
    const storage = nowMs + CLOCK_COALESCE_MS >= this.nextStorageMs;
    if (primary) this.nextPrimaryMs = LinkClock.following(this.nextPrimaryMs, this.primaryMs, nowMs);
    if (storage) this.nextStorageMs = LinkClock.following(this.nextStorageMs, this.storageMs, nowMs);
    // The turn made anyway (primary heartbeat or tick) serves the storage heartbeat if it is not too late for it.
    const anywayMs = Math.min(this.nextPrimaryMs, nowMs + this.tickMs);
    return { primary, storage, nextMs: anywayMs <= this.nextStorageMs + STORAGE_SHARE * this.storageMs ? anywayMs : this.nextStorageMs };
  }

  /** The deadline after `dueMs`: one period on (cadence kept), or a period from now after a pause. */
  private static following(dueMs: number, periodMs: number, nowMs: number): number {
    const next = dueMs + periodMs;
    return next > nowMs + CLOCK_COALESCE_MS ? next : nowMs + periodMs;
  }
}

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

  /**
   * Any message from the peer on this path proves the rx direction. `nowMs` is when it arrived: a
   * heartbeat the UDP thread held comes later with an earlier time than a message read at once, so
   * the latest time is kept, never moved back.
   */
  heard(nowMs: number): void {
    if (nowMs > this.lastHeardMs) this.lastHeardMs = nowMs;
  }

  /** A heartbeat (arrived at nowMs): `seq` is its number, `echo` the highest of ours the peer heard on this path. */
  heartbeat(nowMs: number, seq: bigint, echo: bigint): void {
    this.heard(nowMs);
    if (seq > this.highestHeard) this.highestHeard = seq;
    if (echo > this.highestEcho) {
      this.highestEcho = echo;
      if (nowMs > this.lastEchoMs) this.lastEchoMs = nowMs;
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

/** What LinkCore asks its shell to do. Calls happen during the core's own calls; payloads are views valid only then. */
export interface LinkOutput {
  /** Transmit a message on a path; false if the path did not take it (socket error, ring down or full). */
  send(path: PathId, header: MessageHeader, payload?: Uint8Array): boolean;
  /** framed: the data message's header carried the superpacket mark (message.ts FRAMED_KIND_BIT); never for held data. */
  data(payload: Uint8Array, path: PathId, framed: boolean): void;
  control(payload: Uint8Array): void;
  /** The peer started a new session (authenticated): sealed datagrams are bound to it from now on. */
  peerSession(session: bigint, restarted: boolean): void;
  /** Acks made room in the control window: the shell may submit waiting messages. */
  controlRoom(): void;
  transition(t: Transition): void;
  log(event: string, fields: Record<string, unknown>): void;
}

/** Sealed UDP datagrams refused, by reason, and those not yet bound to our session. */
export interface RefusedCounters {
  /** Tag did not verify (forged, corrupted, wrong key). */
  authFailures: number;
  /** Authentic but already seen (replayed) or from an older session. */
  replays: number;
  /** Not sealed although keys are configured (downgrade attempt). */
  downgrades: number;
  /** Data/control sealed before the peer knew our session (only heartbeats are taken unbound). */
  unbound: number;
}


export interface LinkIdentity {
  nodeId: number;
  peerNodeId: number;
  /** This run's session (strictly higher on every start). */
  session: bigint;
  /** Control retransmission timeout. */
  controlRtoMs: number;
}

/** Counters the core keeps (the shell adds what only it sees: socket errors, sealing refusals). */
export interface CoreCounters {
  sent: { primary: number; storage: number };
  received: { primary: number; storage: number };
  dataDelivered: number;
  dataDuplicates: number;
  dataTooOld: number;
  dataDroppedStorage: number;
  controlDelivered: number;
  malformed: number;
  strays: number;
  staleSession: number;
  peerRestarts: number;
  /** Primary data held until the ring delivered what was sent before it (failback order). */
  dataHeldForOrder: number;
  /** Holds ended by failbackDrainMs or the HOLD_* bounds instead of the ring catching up. */
  holdsGivenUp: number;
}

/** Bounds of the failback-order hold (primary data waiting for the ring): messages and payload bytes. */
export const HOLD_MAX_MESSAGES = 1024;
export const HOLD_MAX_BYTES = 2 * 1024 * 1024;

/** Primary data held for order: payloads back to back in one preallocated buffer, a FIFO. */
class HeldData {
  /** Allocated at the first hold (most links never fail back), then reused. */
  private bytes = new Uint8Array(0);
  private readonly seqs: bigint[] = [];
  private readonly needs: bigint[] = [];
  private readonly lengths: number[] = [];
  private usedBytes = 0;
  /** When the oldest held message gives up waiting. */
  deadlineMs = Number.POSITIVE_INFINITY;

  get count(): number {
    return this.seqs.length;
  }

  fits(length: number): boolean {
    return this.seqs.length < HOLD_MAX_MESSAGES && this.usedBytes + length <= HOLD_MAX_BYTES;
  }

  push(nowMs: number, holdMs: number, seq: bigint, needs: bigint, payload: Uint8Array): void {
    if (this.seqs.length === 0) this.deadlineMs = nowMs + holdMs;
    if (this.bytes.length === 0) this.bytes = new Uint8Array(HOLD_MAX_BYTES);
    this.bytes.set(payload, this.usedBytes);
    this.usedBytes += payload.length;
    this.seqs.push(seq);
    this.needs.push(needs);
    this.lengths.push(payload.length);
  }

  /** Hands out, in order, every held message whose wait is over (all of them if `all`), then compacts. */
  release(heard: bigint, all: boolean, each: (seq: bigint, needs: bigint, payload: Uint8Array) => void): void {
    let n = 0;
    let offset = 0;
    while (n < this.seqs.length && (all || this.needs[n]! <= heard)) {
      each(this.seqs[n]!, this.needs[n]!, this.bytes.subarray(offset, offset + this.lengths[n]!));
      offset += this.lengths[n]!;
      n++;
    }
    if (n === 0) return;
    this.bytes.copyWithin(0, offset, this.usedBytes);
    this.usedBytes -= offset;
    this.seqs.splice(0, n);
    this.needs.splice(0, n);
    this.lengths.splice(0, n);
    this.deadlineMs = this.seqs.length === 0 ? Number.POSITIVE_INFINITY : this.deadlineMs;
  }
}

export class LinkCore {
  readonly paths: LinkState;
  readonly id: LinkIdentity;
  readonly counters: CoreCounters = {
    sent: { primary: 0, storage: 0 },
    received: { primary: 0, storage: 0 },
    dataDelivered: 0,
    dataDuplicates: 0,
    dataTooOld: 0,
    dataDroppedStorage: 0,
    controlDelivered: 0,
    malformed: 0,
    strays: 0,
    staleSession: 0,
    peerRestarts: 0,
    dataHeldForOrder: 0,
    holdsGivenUp: 0,
  };
  /** The peer's session (0: none heard yet). */
  peerSession = 0n;
  readonly refused: RefusedCounters = { authFailures: 0, replays: 0, downgrades: 0, unbound: 0 };
  private readonly refusalLog = new LogLimiter(FAULT_LOG_INTERVAL_MS);
  readonly controlOut = new ControlSender();
  readonly controlIn = new ControlReceiver();
  private readonly window = new SequenceWindow();
  /** Receiver: the peer node's broadcast seqs seen (its own numbering, apart from this pair's data). */
  private readonly broadcastWindow = new SequenceWindow();
  private readonly heartbeatSeq = [0n, 0n];
  private dataSeq = 0n;
  /** Sender: the highest data seq only the storage path took (primary data carries it as ack). */
  private storageOnlySeq = 0n;
  /** Receiver: the highest peer data seq heard on storage, or given up on after a hold timed out. */
  private storageHeard = 0n;
  private readonly held = new HeldData();
  /** When a message other than a heartbeat last came on storage (data, control, acks, broadcasts). */
  private storageTrafficMs = Number.NEGATIVE_INFINITY;

  constructor(timers: LinkTimers, id: LinkIdentity) {
    this.paths = new LinkState(timers);
    this.id = id;
  }

  /** One message from a path (bytes[offset, offset+length)); whatever it causes goes to `out`. */
  receive(nowMs: number, bytes: Uint8Array, offset: number, length: number, arrivedOn: PathId, out: LinkOutput): void {
    const decoded = decodeHeader(bytes, offset, length);
    if (!decoded.ok) {
      this.counters.malformed++;
      return;
    }
    const h = decoded.header;
    if (h.node !== this.id.peerNodeId) {
      this.counters.strays++;
      return;
    }
    if (h.session !== this.peerSession) {
      if (h.session < this.peerSession) {
        this.counters.staleSession++;
        return;
      }
      this.adopt(h.session, out);
    }
    const path = this.paths.path(arrivedOn);
    if (arrivedOn === PathId.Primary) this.counters.received.primary++;
    else this.counters.received.storage++;
    path.heard(nowMs);
    if (arrivedOn === PathId.Storage && h.kind !== MessageKind.Heartbeat && nowMs > this.storageTrafficMs) this.storageTrafficMs = nowMs;
    const payload = bytes.subarray(decoded.payloadOffset, offset + length);
    switch (h.kind) {
      case MessageKind.Heartbeat:
        path.heartbeat(nowMs, h.seq, h.ack);
        return;
      case MessageKind.ControlAck:
        this.acked(h.ack, out);
        return;
      case MessageKind.Control: {
        this.acked(h.ack, out);
        this.controlIn.receive(h.seq, payload, (p) => {
          this.counters.controlDelivered++;
          out.control(p);
        });
        // Ack on the path it came by (it works) right away: the sender's window moves on.
        this.transmit(arrivedOn, this.header(MessageKind.ControlAck, 0n, this.controlIn.delivered, arrivedOn), undefined, out);
        return;
      }
      case MessageKind.Data: {
        if (arrivedOn === PathId.Storage) {
          this.deliverData(h.seq, payload, arrivedOn, out, this.window, h.framed);
          if (h.seq > this.storageHeard) this.storageHeard = h.seq;
          this.held.release(this.storageHeard, false, (seq, _needs, p) => this.deliverData(seq, p, PathId.Primary, out));
          return;
        }
        // Primary: wait for the ring if it still carries data sent before this (or others wait already).
        if (this.held.count > 0 || h.ack > this.storageHeard) {
          if (!this.held.fits(payload.length)) this.giveUpHold(out);
          if (this.held.count > 0 || h.ack > this.storageHeard) {
            this.counters.dataHeldForOrder++;
            this.held.push(nowMs, this.paths.timers.failbackDrainMs, h.seq, h.ack, payload);
            return;
          }
        }
        this.deliverData(h.seq, payload, arrivedOn, out, this.window, h.framed);
        return;
      }
      case MessageKind.Broadcast:
        this.deliverData(h.seq, payload, arrivedOn, out, this.broadcastWindow);
        return;
    }
  }

  /** Data (or a broadcast, in its own window) once: duplicates and seqs below the window are counted, not delivered. */
  private deliverData(seq: bigint, payload: Uint8Array, path: PathId, out: LinkOutput, window = this.window, framed = false): void {
    const verdict = window.check(seq);
    if (verdict === "duplicate") this.counters.dataDuplicates++;
    else if (verdict === "old") this.counters.dataTooOld++;
    else {
      this.counters.dataDelivered++;
      out.data(payload, path, framed);
    }
  }

  /** Releases every held message and stops waiting for the ring data they waited for (lost or late). */
  private giveUpHold(out: LinkOutput): void {
    if (this.held.count === 0) return;
    this.counters.holdsGivenUp++;
    this.held.release(this.storageHeard, true, (seq, needs, p) => {
      if (needs > this.storageHeard) this.storageHeard = needs;
      this.deliverData(seq, p, PathId.Primary, out);
    });
  }

  /**
   * A sealed UDP datagram after the Opener: unbound data and control (sealed before the peer knew
   * our session, e.g. captured before a restart of ours) count as liveness only and are dropped;
   * refusals are counted and logged at most once per FAULT_LOG_INTERVAL_MS per reason (LogLimiter).
   */
  receiveSealed(nowMs: number, opened: OpenResult, from: string, out: LinkOutput): void {
    if (opened.ok) {
      if (!opened.bound && opened.message[1] !== MessageKind.Heartbeat) this.refused.unbound++;
      else this.receive(nowMs, opened.message, 0, opened.message.length, PathId.Primary, out);
      return;
    }
    const reason = opened.reason === "version" ? "downgrades" : opened.reason === "replay" ? "replays" : "authFailures";
    this.refused[reason]++;
    const admitted = this.refusalLog.admit(reason, nowMs);
    if (!admitted.log) return;
    const why = { downgrades: "not sealed although keys are configured (downgrade)", replays: "replayed or from an older session", authFailures: "authentication failed (forged, corrupted or another key)" }[reason];
    out.log("udp-refused", { from, reason: why, total: this.refused[reason], suppressed: admitted.suppressed });
  }

  /** A heartbeat on `path` (its number, and our echo of the peer's). */
  heartbeat(path: PathId, out: LinkOutput): void {
    const seq = ++this.heartbeatSeq[path]!;
    this.transmit(path, this.header(MessageKind.Heartbeat, seq, this.paths.path(path).highestHeard, path), undefined, out);
  }

  /** One data message on the paths data goes on now; false if none took it. */
  sendData(nowMs: number, payload: Uint8Array, storageDrained: boolean, out: LinkOutput, framed = false): boolean {
    const paths = this.paths.dataPaths(nowMs, storageDrained);
    const seq = ++this.dataSeq;
    // The primary copy names the last data the ring alone carries: the receiver keeps order behind it.
    const primary = paths.primary && this.transmit(PathId.Primary, this.dataHeader(seq, this.storageOnlySeq, PathId.Primary, framed), payload, out);
    const storage = paths.storage && this.transmit(PathId.Storage, this.dataHeader(seq, 0n, PathId.Storage, framed), payload, out);
    if (storage && !primary) this.storageOnlySeq = seq;
    return primary || storage;
  }

  /**
   * This peer's copy of the node's broadcast `seq` on the paths data goes on now (the storage copy is
   * the node's one ring frame, LinkOutput.send decides); false if none took it.
   */
  sendBroadcast(nowMs: number, seq: bigint, payload: Uint8Array, storageDrained: boolean, out: LinkOutput): boolean {
    if (seq <= 0n) throw new Error(`assertion failed: broadcast seq ${seq}`);
    const paths = this.paths.dataPaths(nowMs, storageDrained);
    const primary = paths.primary && this.transmit(PathId.Primary, this.header(MessageKind.Broadcast, seq, 0n, PathId.Primary), payload, out);
    const storage = paths.storage && this.transmit(PathId.Storage, this.header(MessageKind.Broadcast, seq, 0n, PathId.Storage), payload, out);
    return primary || storage;
  }

  /** Numbers and sends one control message; false (nothing sent) while the window is full. */
  submitControl(nowMs: number, payload: Uint8Array, out: LinkOutput): boolean {
    const entry = this.controlOut.submit(payload, nowMs);
    if (entry === undefined) return false;
    this.transmitControl(entry.seq, entry.payload, out);
    return true;
  }

  /**
   * May the storage follower sleep at its standby pace (pollStandbyMaxMs)? Only while the primary is
   * up both ways (a one-way cut is a missing echo: suspect) and active, storage carried nothing but
   * heartbeats for a storage heartbeat period (control or data on the ring keep the normal pace), and
   * the peer's failback drain is over: after a failback the peer puts data on the ring alone for up
   * to failbackDrainMs (dataPaths), from its own failback, which comes within the two ends' detection
   * skew of ours (primary.suspectMs bounds it). A drain read at the standby pace cost each packet in it
   * up to pollStandbyMaxMs, and its late acks kept the peer draining longer. The peer writes data on
   * the ring otherwise only once its own end turns suspect, at most one clock turn before ours does
   * (DEFAULT_POLL_STANDBY_MAX_MS).
   */
  storageStandby(nowMs: number): boolean {
    const p = this.paths;
    const peerDrainOverMs = p.drainUntilMs + p.timers.primary.suspectMs;
    return p.primary.state === "up" && p.active === "primary" && nowMs - this.storageTrafficMs >= p.timers.storage.heartbeatMs && nowMs >= peerDrainOverMs;
  }

  /** Advances time: path states and the active path (transitions), control retransmissions. */
  tick(nowMs: number, out: LinkOutput): void {
    for (const t of this.paths.tick(nowMs)) out.transition(t);
    if (nowMs >= this.held.deadlineMs) this.giveUpHold(out);
    for (const entry of this.controlOut.due(nowMs, this.id.controlRtoMs)) this.transmitControl(entry.seq, entry.payload, out);
  }

  /** A newer session of the peer: adopt it; if it replaced an older one, the peer restarted. */
  private adopt(session: bigint, out: LinkOutput): void {
    const restarted = this.peerSession !== 0n;
    if (restarted) this.counters.peerRestarts++;
    // Held data of the old session goes out first (it is authentic and in order); the new one starts clean.
    this.giveUpHold(out);
    this.storageHeard = 0n;
    this.peerSession = session;
    this.window.reset();
    this.broadcastWindow.reset();
    this.controlIn.reset();
    // The restarted peer expects control seq 1 again: renumber what it never acked.
    this.controlOut.restart();
    this.paths.primary.resetPeer();
    this.paths.storage.resetPeer();
    out.peerSession(session, restarted);
  }

  private acked(ack: bigint, out: LinkOutput): void {
    if (this.controlOut.acked(ack) > 0) out.controlRoom();
  }

  /** Control goes on the active path (both while isolated: whichever recovers first carries it). */
  private transmitControl(seq: bigint, payload: Uint8Array, out: LinkOutput): void {
    const active = this.paths.active;
    if (active !== "storage") this.transmit(PathId.Primary, this.header(MessageKind.Control, seq, this.controlIn.delivered, PathId.Primary), payload, out);
    if (active !== "primary") this.transmit(PathId.Storage, this.header(MessageKind.Control, seq, this.controlIn.delivered, PathId.Storage), payload, out);
  }

  private transmit(path: PathId, header: MessageHeader, payload: Uint8Array | undefined, out: LinkOutput): boolean {
    const taken = out.send(path, header, payload);
    if (taken) {
      if (path === PathId.Primary) this.counters.sent.primary++;
      else this.counters.sent.storage++;
    } else if (path === PathId.Storage && (header.kind === MessageKind.Data || header.kind === MessageKind.Broadcast)) {
      this.counters.dataDroppedStorage++;
    }
    return taken;
  }

  private header(kind: MessageKind, seq: bigint, ack: bigint, path: PathId): MessageHeader {
    return { kind, path, node: this.id.nodeId, session: this.id.session, seq, ack };
  }

  /** A data message's header; framed: its payload is a vnet-framed TCP superpacket (the mark in the kind byte). */
  private dataHeader(seq: bigint, ack: bigint, path: PathId, framed: boolean): MessageHeader {
    const header = this.header(MessageKind.Data, seq, ack, path);
    if (framed) header.framed = true;
    return header;
  }
}
