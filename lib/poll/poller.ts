// Poller: keeps a RingReader at the head of the peer's ring and delivers its frames. Following is
// follower.ts's loop (shared with the mirror): poll again at once after a record; otherwise wait in
// the addon's watch, the sleep backing off from pollMinUs to pollMaxMs while idle. The peer's status
// block is re-read statusPollMs after a record (in standby statusStandbyMs, in a record's turn), every
// statusIdleMs while none arrives (acks, epoch changes). Frames go to onFrame (zero-copy, valid during the
// call) and to an async iterator (copies, bounded by maxQueuedFrames: a slow consumer pauses polling;
// an iterator abandoned mid-queue drops what it left and releases the poll loop). A failure is never
// silent: it goes to "error" listeners, the iterator or finished(); with none of them, "error" is
// emitted anyway (an unhandled error event, which crashes loudly). A stopped or failed poller can
// be started again on the same reader (its position is kept): that is how supervision reopens it.
// standby(on): the owner (the link: its primary is up both ways) lets an idle poller re-read only every
// pollStandbyMaxMs; standby(false) snaps it back to pollMinUs at once, waking a watch asleep at the
// standby pace (Volume.wakeWatches) instead of waiting it out. The setting outlives restarts.
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import type { StatusBlock } from "../format/status.ts";
import { Background } from "../io/background.ts";
import { DEFAULT_FOLLOW_IDLE_MS, DEFAULT_POLL_MAX_MS, DEFAULT_POLL_MIN_US, DEFAULT_POLL_STANDBY_MAX_MS, MAX_FOLLOW_IDLE_MS } from "../defaults.ts";
import { integerOption, invalidArgument } from "../errors.ts";
import type { FrameVisitor, PollOutcome, RingReader } from "../ring/reader.ts";
import { AdaptiveWait, type AdaptiveWaitOptions } from "./adaptive-wait.ts";
import { follow } from "./follower.ts";

export interface PollerOptions {
  /** Shortest sleep between reads of the expected block while waiting (default 100 us). */
  pollMinUs?: number;
  /** Longest sleep (the bound on added latency when idle; default DEFAULT_POLL_MAX_MS). */
  pollMaxMs?: number;
  /** Sleep between reads in standby (standby(true); default DEFAULT_POLL_STANDBY_MAX_MS, at least pollMaxMs). */
  pollStandbyMaxMs?: number;
  /** The peer status block is re-read this long after a record arrived (default 50 ms)... */
  statusPollMs?: number;
  /** ... and this often while none arrives (default DEFAULT_FOLLOW_IDLE_MS, at least statusPollMs). */
  statusIdleMs?: number;
  /** In standby: re-read at the first record this long after the last read (default statusPollMs; in [statusPollMs, statusIdleMs]). */
  statusStandbyMs?: number;
  /** Frames kept for the async iterator before polling pauses (default 10000). */
  maxQueuedFrames?: number;
  onFrame?: FrameVisitor;
}

export interface Frame {
  seq: bigint;
  type: number;
  flags: number;
  payload: Uint8Array;
  receivedAtMs: number;
}

export interface PollerEvents {
  outcome: [PollOutcome];
  status: [StatusBlock];
  error: [Error];
}

export class Poller extends EventEmitter<PollerEvents> {
  readonly reader: RingReader;
  private readonly pace: AdaptiveWaitOptions;
  private readonly maxQueuedFrames: number;
  private readonly onFrame: FrameVisitor | undefined;
  private readonly task = new Background();
  private readonly queue: Frame[] = [];
  private queueWaiter: (() => void) | undefined;
  private drainWaiter: (() => void) | undefined;
  private iterating = false;
  private standbyOn = false;
  /** The pace of the running follow loop (standby() steers it). */
  private wait: AdaptiveWait | undefined;
  /** Someone awaits finished(): the failure reaches them. */
  private watched = false;

  constructor(reader: RingReader, options: PollerOptions = {}) {
    super();
    this.reader = reader;
    const minSleepUs = integerOption("pollMinUs", options.pollMinUs, DEFAULT_POLL_MIN_US, 0, 1_000_000);
    const maxSleepUs = integerOption("pollMaxMs", options.pollMaxMs, DEFAULT_POLL_MAX_MS, 1, 1000) * 1000;
    if (maxSleepUs < minSleepUs) throw invalidArgument("pollMaxMs", `at least pollMinUs (${minSleepUs} us)`, options.pollMaxMs);
    const periodMs = integerOption("statusPollMs", options.statusPollMs, 50, 1, MAX_FOLLOW_IDLE_MS);
    const idlePeriodMs = integerOption("statusIdleMs", options.statusIdleMs, Math.max(periodMs, DEFAULT_FOLLOW_IDLE_MS), periodMs, MAX_FOLLOW_IDLE_MS);
    const maxMs = maxSleepUs / 1000;
    const standbyMaxSleepUs = integerOption("pollStandbyMaxMs", options.pollStandbyMaxMs, Math.max(maxMs, DEFAULT_POLL_STANDBY_MAX_MS), maxMs, 1000) * 1000;
    const standbyPeriodMs = integerOption("statusStandbyMs", options.statusStandbyMs, periodMs, periodMs, idlePeriodMs);
    this.pace = { minSleepUs, maxSleepUs, periodMs, idlePeriodMs, standbyMaxSleepUs, standbyPeriodMs };
    this.maxQueuedFrames = integerOption("maxQueuedFrames", options.maxQueuedFrames, 10_000, 1, 10_000_000);
    this.onFrame = options.onFrame;
  }

  /** Records the writer has written that we have not read yet (from the last status read). */
  get lagRecords(): bigint {
    const head = this.reader.status?.headSeq;
    return head !== undefined && head > this.reader.seq ? head - this.reader.seq : 0n;
  }

  /** In standby (see standby()). */
  get inStandby(): boolean {
    return this.standbyOn;
  }

  /**
   * On: later watches re-read every pollStandbyMaxMs. Off: back to pollMinUs backing off to pollMaxMs
   * at once; a watch still asleep at the standby pace is woken (it re-reads, then the next one starts
   * at the normal pace). Kept across stop/start.
   */
  standby(on: boolean): void {
    this.standbyOn = on;
    if (this.wait?.standby(on) === true) this.reader.volume.wakeWatches();
  }

  start(): void {
    this.task.start(
      () => this.run(),
      (error) => {
        this.queueWaiter?.();
        if (this.listenerCount("error") > 0 || (!this.iterating && !this.watched)) this.emit("error", error);
      },
    );
  }

  /** Resolves when the poller has stopped; rejects with the error that stopped it. */
  finished(): Promise<void> {
    this.watched = true;
    return this.task.finished();
  }

  async stop(): Promise<void> {
    this.task.running = false;
    this.drainWaiter?.();
    await this.task.stop();
    this.queueWaiter?.();
  }

  /** Frames in order, copied; ends when the poller stops, throws if it failed. */
  async *frames(): AsyncGenerator<Frame> {
    this.iterating = true;
    try {
      for (;;) {
        const frame = this.queue.shift();
        if (frame !== undefined) {
          if (this.queue.length < this.maxQueuedFrames / 2) this.drainWaiter?.();
          yield frame;
          continue;
        }
        if (this.task.error !== undefined) throw this.task.error;
        if (!this.task.running) return;
        await new Promise<void>((resolve) => (this.queueWaiter = resolve));
        this.queueWaiter = undefined;
      }
    } finally {
      // Abandoned (break, return, throw in the consumer) or ended: frames left behind would reach a
      // later iterator out of their time, and a full queue would hold the poll loop forever.
      this.iterating = false;
      this.queue.length = 0;
      this.drainWaiter?.();
    }
  }

  private async run(): Promise<void> {
    const reader = this.reader;
    const visit: FrameVisitor = (seq, type, flags, bytes, offset, length) => {
      this.onFrame?.(seq, type, flags, bytes, offset, length);
      if (this.iterating || this.onFrame === undefined) {
        this.queue.push({ seq, type, flags, payload: bytes.slice(offset, offset + length), receivedAtMs: performance.now() });
      }
    };
    const wait = new AdaptiveWait(this.pace);
    wait.standby(this.standbyOn);
    this.wait = wait;
    await follow(
      { reader, pace: wait, running: () => this.task.running },
      {
        paused: () => (this.queue.length >= this.maxQueuedFrames ? new Promise<void>((resolve) => (this.drainWaiter = resolve)).then(() => (this.drainWaiter = undefined)) : undefined),
        poll: (fresh) => reader.poll(visit, fresh),
        after: (outcome) => {
          if (outcome !== "waiting") this.emit("outcome", outcome);
          if (this.queue.length > 0) this.queueWaiter?.();
        },
        periodic: async () => {
          const changed = await reader.refresh();
          if (changed !== undefined) this.emit("outcome", changed);
          if (reader.status !== undefined) this.emit("status", reader.status);
          return changed !== undefined;
        },
      },
    );
  }
}
