// RingWriter: frames -> write buffer -> one record -> send volume. The I/O shell around
// RingWriterCore (writer-core.ts), which makes every decision: (1) append() copies a frame into the
// filling record buffer (or a bounded per-class queue) -> (2) the core seals the record at
// flushThresholdBytes or after maxDelayMs -> (3) one O_DIRECT write at the head (pad + wrap at the ring
// end; flow control first) -> (4) status block (head, ack, delivered, heartbeat) -> sleep.
// The shell performs the core's actions: record writes are started and not awaited (up to the core's
// maxRecordsInFlight at once; each completion is reported with its seq and wakes the pump), every
// other action is awaited (the core issues it alone). It sleeps on the injected clock until the
// core's deadline or a notification (append, flush, close, peerAckChanged, a record completed), and
// settles callers (writer-waiters.ts); what open() decides about the volume is in writer-open.ts.
// The pump ends only once every write it started settled, so a writer reopened after a fault never
// races a write of the one before it.
// Fatal errors (I/O, another owner) stop the writer: 'error' is emitted when someone listens, else a
// process warning is logged unless run() is awaited; run() rejects with the error; pending append()
// and flush() calls reject with it; close() then returns at once with what was not written.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";

import type { FrameType } from "../format/layout.ts";
import type { StatusBlock } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { Volume } from "../io/volume.ts";
import { systemClock, type Clock } from "./clock.ts";
import { RingKeys } from "./keys.ts";
import { nowWallUs, stageTrace } from "./stage-trace.ts";
import { scanRing } from "./scan.ts";
import { readStatusSlots } from "./status.ts";
import { openSuperblock, writeSuperblock } from "./superblocks.ts";
import { RingWriterCore, type WriterAction, type WriterInput, type WriterState } from "./writer-core.ts";
import { carriedDelivered, checkWriterOwner, liveWriter, nextEpoch } from "./writer-open.ts";
import { MAX_WAITING_CALLS, WriterWaiters } from "./writer-waiters.ts";
import { resolveOptions, type RingWriterCounters, type RingWriterOptions, type WriterCloseReport } from "./writer-options.ts";

export type { Ack, RingWriterCounters, RingWriterOptions, WriterCloseReport } from "./writer-options.ts";
export { WriterState } from "./writer-core.ts";
export { MAX_WAITING_CALLS } from "./writer-waiters.ts";

export interface RingWriterEvents {
  error: [LunlinkError];
  flush: [seq: bigint, blocks: number];
  /** Every write the writer made to the volume (records, pads, status): what a mirror must copy. */
  write: [offsetBytes: number, lengthBytes: number, what: "record" | "pad" | "status" | "superblock"];
  /** close() finished (drained, or gave up at closeTimeoutMs): what was not written. */
  close: [WriterCloseReport];
  /** Cluster: a peer silent for peerDownMs stopped holding the ring back (true), or came back (false). */
  peerReleased: [node: number, released: boolean];
}

export class RingWriter extends EventEmitter<RingWriterEvents> {
  readonly volume: Volume;
  private readonly core: RingWriterCore;
  private readonly clock: Clock;
  private readonly keys: RingKeys | undefined;
  private readonly options: RingWriterOptions;
  private readonly closeTimeoutMs: number;
  private readonly waiters = new WriterWaiters();
  private wake: (() => void) | undefined;
  private pump: Promise<void> = Promise.resolve();
  /** Record writes started and not settled. Bound: the core's maxRecordsInFlight (it issues no more). */
  private readonly recordWrites = new Set<Promise<void>>();
  private closing: Promise<WriterCloseReport> | undefined;
  private runObserved = false;
  /** The fatal error was emitted or warned about (once). */
  private reported = false;

  private constructor(volume: Volume, core: RingWriterCore, clock: Clock, keys: RingKeys | undefined, options: RingWriterOptions, closeTimeoutMs: number) {
    super();
    this.volume = volume;
    this.core = core;
    this.clock = clock;
    this.keys = keys;
    this.options = options;
    this.closeTimeoutMs = closeTimeoutMs;
  }

  /** Opens the send volume for writing: checks ownership, starts a new epoch above every stamp on it. */
  static async open(volume: Volume, options: RingWriterOptions): Promise<RingWriter> {
    const resolved = resolveOptions(options);
    const clock = options.clock ?? systemClock;
    const keys = options.auth === undefined ? undefined : new RingKeys(options.auth);
    const { superblock } = await openSuperblock(volume, keys);
    checkWriterOwner(volume.path, superblock, keys !== undefined, options.nodeId, options.takeOver === true);
    const persisted = await persistedStatus(volume, superblock, keys);
    if (resolved.liveCheckMs > 0) {
      await new Promise<void>((resolve) => clock.setTimer(resolved.liveCheckMs, resolve));
      const live = liveWriter(volume.path, persisted, await persistedStatus(volume, superblock, keys), resolved.liveCheckMs, options.nodeId);
      if (live !== undefined) throw live;
    }
    const scan = await scanRing(volume, superblock.blockBytes, superblock.ringBlocks);
    const entropy = options.entropy ?? ((n: number) => new Uint8Array(randomBytes(n)));
    const { superblock: next, startSeq } = nextEpoch(superblock, scan, options.nodeId, keys, entropy);
    // The new epoch is durable before any record of it is written.
    await writeSuperblock(volume, next, keys);
    // What the previous writer left is still owed to the reader: tracked like our own records, so a
    // control record of an earlier epoch is not overwritten before the peer acked it.
    const core = new RingWriterCore({
      superblock: next,
      keys,
      options: resolved,
      nowMs: clock.nowMs(),
      seq: startSeq,
      headBlock: Number(next.epochStartBlock),
      oldestAtOpen: scan.lowestStartSeq,
      existing: scan.records,
      delivered: carriedDelivered(persisted),
      ...(persisted?.peers === undefined ? {} : { peerRows: persisted.peers }),
      alloc: (n) => volume.alloc(n),
      entropy,
    });
    const writer = new RingWriter(volume, core, clock, keys, options, resolved.closeTimeoutMs);
    // The new head is in the status block before open returns (the core's first action); a failure
    // here fails open() itself.
    const first = core.next(clock.nowMs(), writer.input());
    if (first.kind !== "write" || first.what !== "status") throw new Error(`assertion failed: first writer action ${first.kind}`);
    await writer.perform(first);
    writer.pump = writer.loop();
    return writer;
  }

  get epoch(): bigint {
    return this.core.superblock.epoch;
  }

  get state(): WriterState {
    return this.core.state;
  }

  get counters(): RingWriterCounters {
    return this.core.counters;
  }

  /** Bytes waiting: in the record buffers and in the class queues behind them (status: queue depth). */
  get queuedBytes(): number {
    return this.core.bufferedBytes;
  }

  /** Next sequence to be written. */
  get headSeq(): bigint {
    return this.core.headSeq;
  }

  get error(): LunlinkError | undefined {
    return this.core.error;
  }

  /**
   * Queues one frame without waiting: "queued" (in the write buffer, or in its class's queue),
   * "dropped" (heartbeat/data with a full queue and fullQueue "drop"; counted) or "full" (a control
   * frame, or fullQueue "wait": call append() to wait for room). No promise, no allocation while the
   * frame fits the write buffer: this is the hot path.
   */
  tryAppend(type: FrameType, payload: Uint8Array, flags = 0): "queued" | "dropped" | "full" {
    this.throwIfStopped("append");
    const result = this.core.append(this.core.batchEmpty || stageTrace !== undefined ? this.clock.nowMs() : 0, type, payload, flags);
    if (result === "queued") return result;
    if (result !== "dropped") this.kick();
    return result === "queued, due" ? "queued" : result;
  }

  /**
   * Queues one frame, waiting for room when its queue is full and the policy says wait (control
   * frames always). Resolves true once queued (not yet durable: see flush()), false if dropped;
   * rejects with the writer's fatal error, or ERR_LUNLINK_CLOSED once closing.
   */
  async append(type: FrameType, payload: Uint8Array, flags = 0): Promise<boolean> {
    for (;;) {
      const result = this.tryAppend(type, payload, flags);
      if (result !== "full") return result === "queued";
      await this.waitIn("room", this.core.roomGeneration);
    }
  }

  /** Resolves when everything appended so far is written (durable if the volume was opened dsync). */
  async flush(): Promise<void> {
    if (this.core.error !== undefined) throw this.core.error;
    const target = this.core.counters.framesAppended;
    if (this.core.framesWritten >= target) return;
    this.core.flushTarget = Math.max(this.core.flushTarget, target);
    await this.waitIn("flush", target);
  }

  /** Wakes an ack wait at once (instead of at the next ackPollMs): call when the peer's ack moved. */
  peerAckChanged(): void {
    this.kick();
  }

  /** The `standby` option's answer changed: the writer re-plans at once (leaving standby, a status held for a later record goes out now). */
  paceChanged(): void {
    this.kick();
  }

  /**
   * Drains what was appended and stops, within closeTimeoutMs even if the peer never acks or the
   * device hangs; resolves with what could not be written (never rejects; after a fatal error the
   * report carries it). Appends are refused from the call on.
   */
  close(): Promise<WriterCloseReport> {
    if (this.closing === undefined) {
      this.core.close(this.clock.nowMs(), this.closeTimeoutMs);
      this.kick();
      this.closing = new Promise<WriterCloseReport>((resolve) => {
        // The core stops itself at the deadline; this timer covers an I/O that hangs past it.
        const cancel = this.clock.setTimer(this.closeTimeoutMs, () => {
          const report = this.core.abandon();
          this.settleWaiters();
          this.kick();
          resolve(report);
        });
        void this.pump.then(() => {
          cancel();
          resolve(this.core.report ?? this.core.abandon());
        });
      }).then((report) => {
        this.emit("close", report);
        return report;
      });
    }
    return this.closing;
  }

  /** The writer's life: resolves once it stopped after close(), rejects with the fatal error that stopped it. */
  async run(): Promise<void> {
    this.runObserved = true;
    await this.pump;
    if (this.core.error !== undefined) throw this.core.error;
  }

  /** The pump: the core's actions until it says stop, then waits for the record writes it started. Never rejects. */
  private async loop(): Promise<void> {
    for (;;) {
      let action: WriterAction;
      try {
        action = this.core.next(this.clock.nowMs(), this.input());
      } catch (error) {
        this.failWith(error);
        action = { kind: "stop" };
      }
      if (action.kind === "stop") break;
      if (action.kind === "sleep") await this.sleep(action.untilMs);
      else if (action.kind === "write" && action.what === "record") this.startRecord(action);
      else await this.perform(action).catch((error: unknown) => this.failWith(error));
      for (const event of this.core.peerEvents.splice(0)) this.emit("peerReleased", event.node, event.released);
      this.settleWaiters();
    }
    while (this.recordWrites.size > 0) await Promise.all(this.recordWrites);
    this.settleWaiters();
  }

  /** Starts one record write beside those in flight; its completion (or failure) wakes the pump. */
  private startRecord(action: Extract<WriterAction, { what: "record" }>): void {
    if (stageTrace !== undefined) traceIssue(stageTrace, this.clock, action);
    const write = this.volume
      .write(action.offsetBytes, action.bytes)
      .then(
        () => {
          this.core.completed(this.clock.nowMs(), action.seq);
          stageTrace?.mark("written", action.seq);
          this.emit("write", action.offsetBytes, action.bytes.length, "record");
          this.emit("flush", action.seq, action.blocks);
        },
        (error: unknown) => this.failWith(error),
      )
      .catch((error: unknown) => this.failWith(error))
      .finally(() => {
        this.recordWrites.delete(write);
        this.settleWaiters();
        this.kick();
      });
    this.recordWrites.add(write);
  }

  /** Performs an action the core issued alone (pad, status, superblock read or write). */
  private async perform(action: Exclude<WriterAction, { kind: "sleep" | "stop" }>): Promise<void> {
    if (action.kind === "write") {
      await this.volume.write(action.offsetBytes, action.bytes);
      this.core.completed(this.clock.nowMs());
      this.emit("write", action.offsetBytes, action.bytes.length, action.what);
    } else if (action.kind === "readSuperblock") {
      const { superblock } = await openSuperblock(this.volume, this.keys);
      this.core.superblockRead(this.clock.nowMs(), superblock, this.volume.path);
      if (this.core.error !== undefined) this.failWith(this.core.error);
    } else {
      await writeSuperblock(this.volume, action.superblock, this.keys);
      this.core.completed(this.clock.nowMs());
      const B = action.superblock.blockBytes;
      this.emit("write", Number(action.superblock.volumeBlocks - 1n) * B, B, "superblock");
      this.emit("write", 0, B, "superblock");
    }
  }

  private input(): WriterInput {
    return {
      wallMs: this.clock.wallMs(),
      peerAck: this.options.peerAck?.(),
      ...(this.options.peerAcks === undefined ? {} : { peerAcks: this.options.peerAcks() }),
      ...(this.options.peerRows === undefined ? {} : { peerRows: this.options.peerRows() }),
      localAck: this.options.localAck?.(),
      delivered: this.options.delivered?.(),
      roomWanted: this.waiters.roomWanted,
      ...(this.options.standby === undefined ? {} : { standby: this.options.standby() }),
    };
  }

  private sleep(untilMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const cancel = this.clock.setTimer(untilMs - this.clock.nowMs(), () => {
        this.wake = undefined;
        resolve();
      });
      this.wake = () => {
        cancel();
        resolve();
      };
    });
  }

  private kick(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private waitIn(kind: "flush" | "room", mark: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (!this.waiters.add(kind, mark, resolve, reject)) throw new LunlinkError(ErrorCode.QueueFull, `${this.volume.path}: ${MAX_WAITING_CALLS} calls already wait on the ring writer`);
      this.settleWaiters(); // already stopped: rejected at once
      this.kick();
    });
  }

  /** Resolves flushes that are written and appends that have room; once stopped, rejects the rest. */
  private settleWaiters(): void {
    const report = this.core.report;
    const stopped = report === undefined ? undefined : (report.error ?? new LunlinkError(ErrorCode.Closed, `${this.volume.path}: the ring writer closed with ${report.unflushedFrames} frame(s) unwritten`, { path: this.volume.path }));
    this.waiters.settle(this.core.framesWritten, this.core.roomGeneration, stopped);
  }

  private throwIfStopped(what: string): void {
    if (this.core.error !== undefined) throw this.core.error;
    if (this.core.closing) throw new LunlinkError(ErrorCode.Closed, `${what} ${this.volume.path}: the ring writer is closed`, { path: this.volume.path });
  }

  private failWith(error: unknown): void {
    const stoppedBefore = this.core.report !== undefined && this.core.error === undefined;
    const failure = this.core.fail(error);
    this.settleWaiters();
    if (stoppedBefore || this.reported) return; // closed already: an I/O that hung past close() failed late
    this.reported = true;
    if (this.listenerCount("error") > 0) this.emit("error", failure);
    else if (!this.runObserved) process.emitWarning(`ring writer on ${this.volume.path} stopped: ${failure.message}`, { type: "LunlinkWarning", code: failure.code });
  }
}

/** A record write starts: when its first frame was appended, when it was sealed, and now (wall us). */
function traceIssue(trace: NonNullable<typeof stageTrace>, clock: Clock, action: Extract<WriterAction, { what: "record" }>): void {
  const nowMs = clock.nowMs();
  const wallUs = nowWallUs();
  trace.mark("enqueued", action.seq, action.seq + 1n, wallUs - (nowMs - action.enqueuedMs) * 1000);
  trace.mark("sealed", action.seq, action.seq + 1n, wallUs - (nowMs - action.sealedMs) * 1000);
  trace.mark("issued", action.seq, action.seq + 1n, wallUs);
}

/** The status already on the volume (its newer valid slot of this volume): delivered marks to carry forward. */
async function persistedStatus(volume: Volume, superblock: Superblock, keys: RingKeys | undefined): Promise<StatusBlock | undefined> {
  const { status } = await readStatusSlots(volume, superblock.blockBytes, keys?.statusMac);
  return status === undefined || status.volumeUuid !== superblock.volumeUuid ? undefined : status;
}
