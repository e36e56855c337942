// RingMirror: what every lunlink-driven mirror shares (local volume to volume, remote over TCP).
// Pipeline: follow the source ring (a RingReader, so only verified records move; the loop is
// lib/poll/follower.ts, the Poller's too) -> write each record's later blocks, then its first block
// (a reader on the destination never sees a header ahead of its payload) -> copy the status slots
// statusCopyMs after a record, every statusIdleMs while none arrives, and only when they changed
// (head capped at the records whose writes completed; unkeyed, the copy runs beside the
// follow loop and waits for no write) and the superblock (copy B, sync, copy A, sync) when the epoch changes. A full resync runs at start and
// after an overrun; how it copies is the subclass's (whole ring, or only blocks whose checksums
// differ). Writes go to a BlockSink (a Volume, or a TCP session) in whole blocks of the source's size.
// A mirror has no key (an array has none either): on a keyed ring it checks the plaintext framing
// only (stamps, header CRC32C), copies ciphertext as is, and holds back a status slot whose head it
// has not copied yet instead of rewriting it (a keyed status cannot be re-sealed without the key).
// Supervised (lib/io/supervisor.ts, reported through health.ts): a stall, EIO, ENOSPC or a lost link ends the attempt; the mirror
// reports it once, waits for the stalled volume to answer and backs off, then re-reads the source
// superblock, reopens its reader with fresh buffers (a parked request may still own the old ones)
// and resyncs, by itself. stop() returns within closeTimeoutMs and says what it could not flush.
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import { AuthMode, RING_START_BLOCK, RecordKind, STATUS_SLOT_BLOCKS } from "../format/layout.ts";
import { decodeStatus, encodeStatus } from "../format/status.ts";
import { decodeSuperblock, type Superblock } from "../format/superblock.ts";
import { Background } from "../io/background.ts";
import { DEFAULT_FOLLOW_IDLE_MS, DEFAULT_POLL_MAX_MS, DEFAULT_POLL_MIN_US, MAX_FOLLOW_IDLE_MS } from "../defaults.ts";
import { ErrorCode, LunlinkError, integerOption } from "../errors.ts";
import { SupervisorCore, settledWithin, sleepUnless, untilRecovered, type FaultReason, type RecoveryOptions, type StateChange } from "../io/supervisor.ts";
import type { Volume } from "../io/volume.ts";
import { follow } from "../poll/follower.ts";
import { stageTrace } from "../ring/stage-trace.ts";
import { RingReader } from "../ring/reader.ts";
import { openSuperblock } from "../ring/superblocks.ts";
import { healthChange, mirrorRecovery, type BackoffOptions, type HealthChange } from "./health.ts";
import type { BlockSink } from "./sink.ts";
import { WritePump, type RingPosition } from "./write-pump.ts";
import { mirrorReaderNode } from "./region.ts";

export interface RingMirrorOptions extends BackoffOptions {
  /** Status slots are copied this long after a record was copied (default 10 ms)... */
  statusCopyMs?: number;
  /** ... and this often while none arrives (default DEFAULT_FOLLOW_IDLE_MS, at least statusCopyMs). */
  statusIdleMs?: number;
  /** Watch sleep between reads of the next source block while idle (default DEFAULT_POLL_MIN_US, doubling to pollMaxMs). */
  pollMinUs?: number;
  pollMaxMs?: number;
  /** Bytes per request during a resync (default 1 MiB). */
  resyncChunkBytes?: number;
  /** stop() waits at most this long for the last writes, status copy and sync (default 5000 ms). */
  closeTimeoutMs?: number;
}

export interface ResolvedMirrorOptions {
  statusCopyMs: number;
  statusIdleMs: number;
  pollMinUs: number;
  pollMaxMs: number;
  resyncChunkBytes: number;
  closeTimeoutMs: number;
  recovery: RecoveryOptions;
}

export function resolveMirrorOptions(options: RingMirrorOptions): ResolvedMirrorOptions {
  const statusCopyMs = integerOption("statusCopyMs", options.statusCopyMs, 10, 1, MAX_FOLLOW_IDLE_MS);
  return {
    statusCopyMs,
    statusIdleMs: integerOption("statusIdleMs", options.statusIdleMs, Math.max(statusCopyMs, DEFAULT_FOLLOW_IDLE_MS), statusCopyMs, MAX_FOLLOW_IDLE_MS),
    pollMinUs: integerOption("pollMinUs", options.pollMinUs, DEFAULT_POLL_MIN_US, 0, 1_000_000),
    pollMaxMs: integerOption("pollMaxMs", options.pollMaxMs, DEFAULT_POLL_MAX_MS, 1, 1000),
    resyncChunkBytes: integerOption("resyncChunkBytes", options.resyncChunkBytes, 1024 * 1024, 4096, 64 * 1024 * 1024),
    closeTimeoutMs: integerOption("closeTimeoutMs", options.closeTimeoutMs, 5000, 0, 600_000),
    recovery: mirrorRecovery(options),
  };
}

/** What stop() could not finish within its bound. */
export interface MirrorCloseReport {
  /** True when every record copied was written, the status copied and the destination synced. */
  flushed: boolean;
  /** Record bytes read from the source and not yet written to the destination. */
  pendingBytes: number;
  /** Records the source's status names that the mirror had not read yet (as of its last status read). */
  lagRecords: bigint;
  /** Requests still parked in the kernel on the mirror's volumes. */
  parkedRequests: number;
  detail: string;
}

export interface MirrorCounters {
  records: number;
  blocksCopied: number;
  /** Blocks a checksum resync found already equal on the destination (not sent). */
  blocksSkipped: number;
  resyncs: number;
  statusCopies: number;
  superblockCopies: number;
  /** performance.now() of the last record copied, for lag. */
  lastCopyMs: number;
  /** Date.now() of the last completed resync or record copy (wall clock, for status). */
  lastSuccessWallMs: number;
  /** How long the last resync took, in ms (ring, status, superblock, sync). */
  lastResyncMs: number;
}

export interface MirrorProgress {
  phase: "resync" | "done";
  blocksDone: number;
  blocksTotal: number;
  /** Bytes written to (or sent to) the destination in this resync. */
  bytes: number;
}

export interface MirrorEvents {
  record: [seq: bigint, blocks: number];
  resync: [];
  progress: [MirrorProgress];
  /** Remote mode: the session to the server came up, or an established one went down (with why). */
  connection: [state: "up" | "down", detail: string];
  /** The mirror's health changed (faulted, healthy again, failed): once per change, not per retry. */
  state: [HealthChange];
  error: [Error];
}

/** What a destination must be to receive a copy of `source`: big enough, fine-grained enough, and not another volume's. */
export interface SourceIdentity {
  volumeUuid: string;
  blockBytes: number;
  volumeBlocks: bigint;
}

/**
 * Refuses a destination that cannot hold the source or is formatted as another volume or pair (the
 * classic miswiring: the peer's own send volume), unless `force`. A blank destination is accepted.
 */
export async function checkDestination(source: SourceIdentity, sourceName: string, destination: Volume, force: boolean): Promise<void> {
  const needed = source.volumeBlocks * BigInt(source.blockBytes);
  if (destination.geometry.sizeBytes < needed) {
    throw new LunlinkError(ErrorCode.VolumeTooSmall, `mirror ${sourceName} -> ${destination.path}: the destination holds ${destination.geometry.sizeBytes} bytes, the source volume needs ${needed}`, { path: destination.path });
  }
  if (destination.geometry.logicalBlockSize > source.blockBytes) {
    throw new LunlinkError(ErrorCode.Misaligned, `mirror ${sourceName} -> ${destination.path}: the destination's ${destination.geometry.logicalBlockSize}-byte sectors are larger than the source's ${source.blockBytes}-byte blocks`, { path: destination.path });
  }
  if (force) return;
  try {
    const { superblock: existing } = await openSuperblock(destination);
    if (existing.volumeUuid !== source.volumeUuid) {
      throw new LunlinkError(
        ErrorCode.WrongPair,
        `mirror ${sourceName} -> ${destination.path}: the destination is volume ${existing.volumeUuid} of pair ${existing.pairUuid} (writer node ${existing.writerNode}), not a copy of ${source.volumeUuid}; use --force to overwrite it`,
        { path: destination.path },
      );
    }
  } catch (error) {
    if (!(error instanceof LunlinkError) || error.code !== ErrorCode.NotFormatted) throw error;
  }
}

export abstract class RingMirror extends EventEmitter<MirrorEvents> {
  readonly source: Volume;
  readonly counters: MirrorCounters = { records: 0, blocksCopied: 0, blocksSkipped: 0, resyncs: 0, statusCopies: 0, superblockCopies: 0, lastCopyMs: 0, lastSuccessWallMs: 0, lastResyncMs: 0 };
  protected superblock: Superblock;
  protected readonly blockBytes: number;
  protected readonly options: ResolvedMirrorOptions;
  protected reader: RingReader | undefined;
  protected readonly task = new Background();
  readonly supervisor: SupervisorCore;
  private stopping = new AbortController();
  private resyncStartMs = 0;
  /** The write pump of the current attempt (for what stop() could not flush). */
  private pump: WritePump | undefined;
  /**
   * The pump whose written head caps the status copy in this attempt (undefined during a resync: the
   * copy then follows a drain), and the reader's position when it started.
   */
  private livePump: { pump: WritePump; start: RingPosition } | undefined;
  /** True once follow() ended with everything written, the status copied and the sink synced. */
  private flushedOnStop = false;
  /** The source's head in the reader's epoch, from the status slots the last copy read. */
  private sourceHeadSeq: bigint | undefined;
  /** The status slots last written to the sink in this attempt (undefined: unknown, write again). */
  private lastStatusCopy: Uint8Array | undefined;
  /**
   * Two buffers of both status slots, allocated once per attempt (a status copy runs a few times a
   * second: no native allocation each time): one holds lastStatusCopy, the next read goes to the other.
   * A new attempt takes new ones: a request parked on the old ones may still own them.
   */
  private statusBuffers: readonly [Uint8Array, Uint8Array] | undefined;
  /** The unkeyed status copy running beside the follow loop, if any (at most one). */
  private statusCopy: StatusCopy | undefined;

  protected constructor(source: Volume, superblock: Superblock, options: ResolvedMirrorOptions, component: string) {
    super();
    this.source = source;
    this.superblock = superblock;
    this.blockBytes = superblock.blockBytes;
    this.options = options;
    this.supervisor = new SupervisorCore(component, performance.now(), options.recovery);
  }

  /** Where this mirror's writes go right now. */
  protected abstract get sink(): BlockSink;

  /** Copies the whole source volume onto the destination, in an order safe for a live reader. */
  abstract resync(): Promise<void>;

  /** One attempt of the job start() runs (follow() for a local mirror, a session of it for a remote one); supervised. */
  protected abstract attempt(): Promise<void>;

  /** The volumes whose parked requests a retry waits for. */
  protected abstract get volumes(): readonly Volume[];

  /** Called before each retry, after the wait: a remote mirror counts a reconnect. */
  protected retrying(_reason: FaultReason, _error: Error): void {}

  /** Resyncs, then follows the source ring until stop(), healing itself after storage or link faults. */
  start(): void {
    if (this.task.running) return;
    this.stopping = new AbortController();
    this.flushedOnStop = false;
    this.task.start(
      () => this.supervise(),
      (error) => {
        if (this.listenerCount("error") > 0) this.emit("error", error);
      },
    );
  }

  /** Resolves when following has stopped; rejects with the error that stopped it. */
  finished(): Promise<void> {
    return this.task.finished();
  }

  /**
   * Stops following, waiting at most closeTimeoutMs for the last writes and sync, and says what it
   * could not flush; rejects with the error that had stopped the mirror, if any.
   */
  async stop(): Promise<MirrorCloseReport> {
    this.stopping.abort();
    const ended = await settledWithin(this.task.stop(), this.options.closeTimeoutMs);
    if (this.task.error !== undefined) throw this.task.error;
    const pendingBytes = this.pump?.unwrittenBytes ?? 0;
    const parkedRequests = this.volumes.reduce((n, v) => n + (v.stalled ? v.inFlight : 0), 0);
    const lagRecords = this.lagRecords;
    const flushed = ended && this.flushedOnStop;
    const why = ended ? "the copy in progress was cut or had failed before its final sync" : `the last writes and sync did not finish within ${this.options.closeTimeoutMs} ms`;
    const detail = flushed
      ? "every record copied is durable on the destination"
      : `${why}: ${pendingBytes} record bytes read and not written, ${lagRecords} record(s) not yet copied${parkedRequests > 0 ? `, ${parkedRequests} request(s) parked` : ""}`;
    return { flushed, pendingBytes, lagRecords, parkedRequests, detail };
  }

  /** Runs attempts until one returns or stop(); between them waits out the fault (reported once per change). */
  private async supervise(): Promise<void> {
    let first = true;
    while (this.task.running) {
      try {
        if (!first) await this.reopen();
        first = false;
        await this.attempt();
        return;
      } catch (error) {
        if (!this.task.running) return; // stopped: a cut attempt is not a failure
        const e = error instanceof Error ? error : new Error(String(error));
        const { next, change } = this.supervisor.failed(performance.now(), e, false);
        this.report(change, e.message);
        const fault = this.supervisor.fault;
        if (next.kind === "stop") {
          if (fault?.kind === "config" || !(e instanceof LunlinkError)) throw e;
          throw new LunlinkError(e.code, `${this.supervisor.component}: gave up after ${this.supervisor.attempts - 1} retries: ${e.message}`, { cause: e });
        }
        if (next.kind === "recover") {
          await untilRecovered(this.volumes, this.stopping.signal);
          this.supervisor.recovered(performance.now()); // stalled -> retrying: still faulted, not reported
        } else await sleepUnless(next.delayMs, this.stopping.signal);
        if (this.task.running) this.retrying(fault?.reason ?? "bug", e);
      }
    }
  }

  /** Before a retry: re-reads the source superblock (the source may have moved on to a new epoch). */
  private async reopen(): Promise<void> {
    const { superblock } = await openSuperblock(this.source);
    if (superblock.blockBytes !== this.blockBytes || superblock.volumeBlocks !== this.superblock.volumeBlocks) {
      throw new LunlinkError(
        ErrorCode.SuperblockConflict,
        `${this.supervisor.component} ${this.source.path}: the source was reformatted (${superblock.volumeBlocks} blocks of ${superblock.blockBytes} bytes, was ${this.superblock.volumeBlocks} of ${this.blockBytes}); restart the mirror`,
        { path: this.source.path },
      );
    }
    this.superblock = superblock;
  }

  /** The mirror did useful work end to end (a resync completed): healthy again, reported once. */
  protected healthy(detail: string): void {
    this.report(this.supervisor.opened(performance.now()), detail);
  }

  /** A change of the core's state as one `state` event. */
  private report(change: StateChange | undefined, detail: string): void {
    if (change !== undefined) this.emit("state", healthChange(change, detail));
  }

  /** Records the source has and the destination does not yet (from the source status block, as last read). */
  get lagRecords(): bigint {
    const statusHead = this.reader?.status?.headSeq;
    const head = this.sourceHeadSeq === undefined || (statusHead !== undefined && statusHead > this.sourceHeadSeq) ? statusHead : this.sourceHeadSeq;
    const at = this.reader?.seq;
    return head !== undefined && at !== undefined && head > at ? head - at : 0n;
  }

  /** Ring chunks [start, end) in ring blocks, from the ring end down: a record's later blocks land first. */
  protected resyncChunks(chunkBlocks: number): [number, number][] {
    const chunks: [number, number][] = [];
    for (let end = Number(this.superblock.ringBlocks); end > 0; end -= chunkBlocks) chunks.push([Math.max(0, end - chunkBlocks), end]);
    return chunks;
  }

  /** The progress record a resync reports through, and the start of its clock. */
  protected startResync(): MirrorProgress {
    this.resyncStartMs = performance.now();
    return { phase: "resync", blocksDone: 0, blocksTotal: Number(this.superblock.ringBlocks), bytes: 0 };
  }

  /** After the ring: status, superblock, sync; counted and announced. */
  protected async finishResync(progress: MirrorProgress): Promise<void> {
    await this.copyStatus();
    await this.copySuperblock();
    await this.sink.flush();
    this.counters.resyncs++;
    this.counters.lastSuccessWallMs = Date.now();
    this.counters.lastResyncMs = performance.now() - this.resyncStartMs;
    this.emit("progress", { ...progress, phase: "done" });
    this.emit("resync");
    this.healthy("resync complete");
  }

  /** Resync, then copy every new record as it lands, until the task stops (or the sink fails). */
  protected async follow(): Promise<void> {
    await this.settleStatusCopy(); // a copy of the attempt before may still own a status buffer
    this.lastStatusCopy = undefined; // a new attempt (maybe a new session or destination): write it again
    this.statusBuffers = undefined;
    this.livePump = undefined;
    // Capture the head first: whatever lands during the resync is copied by both, which is harmless.
    this.reader = await RingReader.open(this.source, { nodeId: mirrorReaderNode(this.superblock), start: "head", framingOnly: true });
    await this.resync();
    const reader = this.reader;
    const noFrames = (): void => {};
    const B = this.blockBytes;
    // Destination writes overlap the next source reads (write-pump.ts); every superblock or resync
    // step first drains them, and a status copy caps its head at the pump's written head (a keyed
    // one drains: its slots cannot be re-sealed), so the copied head never names a record not yet written.
    // A fresh pump (and reader) per attempt: buffers a stalled request may still own are never reused.
    const pump = new WritePump(this.sink, B, (bytes) => this.source.alloc(bytes), (seq, blocks) => {
      this.counters.records++;
      this.counters.blocksCopied += blocks;
      this.counters.lastCopyMs = performance.now();
      this.counters.lastSuccessWallMs = Date.now();
      this.emit("record", seq, blocks);
      stageTrace?.mark("mirror-written", seq);
    });
    this.pump = pump;
    this.livePump = { pump, start: { seq: reader.seq, block: reader.block } };
    const ringBlocks = Number(this.superblock.ringBlocks);
    const copyRecord = (record: Uint8Array, ringBlock: number, seq: bigint): Promise<void> => {
      if (stageTrace !== undefined) traceRead(stageTrace, record, seq);
      return pump.add((RING_START_BLOCK + ringBlock) * B, record, seq, positionPast(record, ringBlock, seq, B, ringBlocks));
    };
    const o = this.options;
    await follow(
      { reader, pace: { minSleepUs: o.pollMinUs, maxSleepUs: o.pollMaxMs * 1000, periodMs: o.statusCopyMs, idlePeriodMs: o.statusIdleMs }, running: () => this.task.running },
      {
        poll: (fresh) => reader.poll(noFrames, fresh, copyRecord),
        after: async (outcome) => {
          if (outcome === "overrun") {
            await pump.drain();
            await this.resync(); // the source lapped the mirror: copy everything again
          } else if (outcome === "epoch") {
            await pump.drain();
            await this.adoptEpoch();
          }
        },
        periodic: async () => {
          // Unkeyed, no drain: the head copied is capped at what the pump has written (copyStatus).
          // Keyed, a slot cannot be re-sealed with a lower head, only held back: drain so it is not held back under traffic.
          if (this.superblock.authMode === AuthMode.Keyed) await pump.drain();
          pump.throwIfFailed();
          // A session lost after its last write was sent (the server drops what it had not applied,
          // say a record's first block) fails here, not at the next write: a mirror at the head of
          // an idle source writes nothing more, and would wait forever with the copy short.
          const lost = this.sink.lost?.();
          if (lost !== undefined) throw lost;
          // One read of the status slots serves both: the copy, and noticing a new epoch (the
          // writer restarted while the mirror waited at a slot it will never fill). Unkeyed, the
          // copy runs beside the loop (it needs no drain): the loop keeps reading records while
          // it reads and writes the slots; its outcome (a newer epoch, or its error) is taken by
          // the next periodic step, and a copy still in flight then skips that one.
          let newerEpoch = false;
          if (this.superblock.authMode === AuthMode.Keyed) newerEpoch = await this.copyStatus(true);
          else {
            const previous = this.statusCopy;
            if (previous !== undefined && !previous.settled) return false;
            this.statusCopy = undefined;
            if (previous !== undefined) newerEpoch = await previous.outcome; // settled: rethrows the copy's error
            if (!newerEpoch) this.statusCopy = startStatusCopy(this.copySlots(true));
          }
          if (!newerEpoch) return false;
          await pump.drain();
          const adopted = (await reader.refresh()) === "epoch";
          if (adopted) await this.adoptEpoch(); // the new superblock reaches the destination before its status
          await this.copyStatus();
          return adopted;
        },
      },
    );
    await pump.drain();
    await this.settleStatusCopy();
    await this.copyStatus();
    await this.sink.flush();
    this.flushedOnStop = true;
  }

  /** Waits for a status copy running beside the loop (its error is left to the copy that follows: it would meet it again). */
  private async settleStatusCopy(): Promise<void> {
    const copy = this.statusCopy;
    this.statusCopy = undefined;
    await copy?.outcome.catch(() => undefined);
  }

  private async adoptEpoch(): Promise<void> {
    this.superblock = (await openSuperblock(this.source)).superblock;
    await this.copySuperblock();
  }

  /**
   * Copies both status slots. The head they name is capped at what the mirror has copied: a reader
   * of the destination must not learn of records that are not there yet (it would take their absence
   * for damage and skip them). `unchangedSkipped`: slots equal to the last ones written are not
   * written again (an idle source rewrites its status a few times a second, not every statusCopyMs).
   * Returns true when a slot names an epoch newer than the reader's: with unchangedSkipped nothing is
   * then copied (the caller adopts the epoch, superblock first, and copies again).
   */
  protected async copyStatus(unchangedSkipped = false): Promise<boolean> {
    await this.settleStatusCopy(); // one copy at a time: they share the status buffers
    return this.copySlots(unchangedSkipped);
  }

  /** copyStatus() itself, with no copy beside it (the caller made sure). */
  private async copySlots(unchangedSkipped: boolean): Promise<boolean> {
    const B = this.blockBytes;
    const buffers = (this.statusBuffers ??= [this.source.alloc(2 * B), this.source.alloc(2 * B)]);
    const slots = buffers[0] === this.lastStatusCopy ? buffers[1] : buffers[0];
    await this.source.read(STATUS_SLOT_BLOCKS[0] * B, slots);
    const reader = this.reader;
    // The head a reader of the destination may learn: past the last record on the destination. With
    // writes pending that is the pump's written head (or, before its first write, none: the position
    // the follow started at); with none, the reader's position (past records it jumped over too).
    const live = this.livePump;
    const cap = reader === undefined ? undefined : live === undefined || live.pump.idle ? { seq: reader.seq, block: reader.block } : (live.pump.writtenHead ?? live.start);
    const keyed = this.superblock.authMode === AuthMode.Keyed;
    const ahead = [false, false];
    let newerEpoch = false;
    if (reader !== undefined && cap !== undefined) {
      for (let i = 0; i < 2; i++) {
        const slot = slots.subarray(i * B, (i + 1) * B);
        const decoded = decodeStatus(slot, keyed ? "unverified" : undefined);
        if (!decoded.ok) continue;
        if (decoded.status.epoch > reader.epoch) newerEpoch = true;
        if (decoded.status.epoch === reader.epoch && (this.sourceHeadSeq === undefined || decoded.status.headSeq > this.sourceHeadSeq)) this.sourceHeadSeq = decoded.status.headSeq;
        if (decoded.status.epoch !== reader.epoch || decoded.status.headSeq <= cap.seq) continue;
        // Keyed: the next copy (statusCopyMs later) sends it, once the records it names are there.
        if (keyed) ahead[i] = true;
        else encodeStatus({ ...decoded.status, headSeq: cap.seq, headBlock: BigInt(cap.block) }, slot);
      }
    }
    if (unchangedSkipped && newerEpoch) return true; // not copied: the caller adopts the epoch first
    if (!ahead[0] && !ahead[1]) {
      const last = this.lastStatusCopy;
      if (unchangedSkipped && last !== undefined && Buffer.compare(last, slots) === 0) return newerEpoch;
      this.lastStatusCopy = undefined; // unknown until the write succeeds
      await this.sink.write(STATUS_SLOT_BLOCKS[0] * B, slots);
      this.lastStatusCopy = slots;
    } else {
      this.lastStatusCopy = undefined;
      if (!ahead[0] || !ahead[1]) {
        const i = ahead[0] ? 1 : 0;
        await this.sink.write(STATUS_SLOT_BLOCKS[i] * B, slots.subarray(i * B, (i + 1) * B));
      }
    }
    this.counters.statusCopies++;
    return newerEpoch;
  }

  /**
   * Copy B, sync, copy A, sync: a reader of the destination never sees A ahead of B. What is copied
   * is the source's newer copy: a writer opening an epoch writes its B, syncs, then its A, so between
   * the two the source's A still holds the epoch before while openSuperblock (and so this mirror's
   * adoptEpoch) already reads the new one from B. Copying A alone then left the destination a whole
   * epoch behind for good (its readers waited at the new epoch's first record until the writer's next
   * restart, as a loaded test run showed).
   */
  protected async copySuperblock(): Promise<void> {
    const B = this.blockBytes;
    const lastOffset = Number(this.superblock.volumeBlocks - 1n) * B;
    const block = await newerSuperblockBlock(this.source, B, lastOffset);
    await this.sink.write(lastOffset, block);
    await this.sink.flush();
    await this.sink.write(0, block);
    await this.sink.flush();
    this.counters.superblockCopies++;
  }
}

/**
 * The source's superblock block to copy: copy A or copy B, whichever decodes with the higher epoch
 * (A on a tie, and when neither decodes: the destination then gets what the source has, and a
 * reader of it says what is wrong). Keyed volumes are decoded unverified (a mirror has no key):
 * the epoch only chooses between the writer's two copies, the bytes are copied as they are.
 */
async function newerSuperblockBlock(source: Volume, blockBytes: number, lastOffset: number): Promise<Uint8Array> {
  const a = source.alloc(blockBytes);
  const b = source.alloc(blockBytes);
  await source.read(0, a);
  await source.read(lastOffset, b);
  const epochOf = (block: Uint8Array): bigint => {
    const decoded = decodeSuperblock(block);
    return decoded.ok ? decoded.superblock.epoch : -1n;
  };
  return epochOf(b) > epochOf(a) ? b : a;
}

/** A status copy started beside the follow loop: whether it settled, and its outcome (newer epoch seen). */
interface StatusCopy {
  outcome: Promise<boolean>;
  settled: boolean;
}

function startStatusCopy(copy: Promise<boolean>): StatusCopy {
  const state: StatusCopy = { outcome: copy, settled: false };
  copy.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

/** Where block 0 of a record holds its kind (docs/format.md, record header). */
const RECORD_KIND_OFFSET = 21;

/** The reader's position past a verified record at `ringBlock` (lib/ring/decide.ts past(): a pad continues at the ring start). */
export function positionPast(record: Uint8Array, ringBlock: number, seq: bigint, blockBytes: number, ringBlocks: number): RingPosition {
  if (record[RECORD_KIND_OFFSET] === RecordKind.Pad) return { seq: seq + 1n, block: 0 };
  const block = ringBlock + record.length / blockBytes;
  return { seq: seq + 1n, block: block >= ringBlocks ? 0 : block };
}

/** Where block 0 of a record holds the writer's timestamp, ms (docs/format.md, record header). */
const RECORD_TIMESTAMP_OFFSET = 64;

/** The mirror read a record: now, and when its writer sealed it (the header's timestamp, ms). */
function traceRead(trace: NonNullable<typeof stageTrace>, record: Uint8Array, seq: bigint): void {
  trace.mark("mirror-read", seq);
  const sealedMs = new DataView(record.buffer, record.byteOffset, record.byteLength).getBigUint64(RECORD_TIMESTAMP_OFFSET, true);
  trace.mark("sealed", seq, seq + 1n, Number(sealedMs) * 1000);
}
