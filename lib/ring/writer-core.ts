// RingWriterCore: every decision of the ring writer, with no I/O and no timers (sans-IO). The shell
// (writer.ts) asks next(nowMs, input) for an action, performs it, reports the outcome (completed /
// superblockRead / fail) and asks again; "sleep" means nothing to do before untilMs, a new input or
// a completion. Invariants: up to maxRecordsInFlight record writes in flight at once (consecutive
// ring positions, issued in seq order, completing in any order: O_DSYNC writes in flight together
// share device flushes); every other action (pad, status, owner check, rekey) is issued only with no
// record in flight and is then the only action in flight (next() refuses to run while it is), so the
// status head names only records whose writes all completed (a contiguous prefix); sequences
// strictly increase; a record holding a control frame is not overwritten before the peer acked it (in
// a cluster: every peer that still holds the ring, see peer-holds.ts); every queue has a named bound.
// records-in-flight.ts keeps the books of writes in flight (head, issue position, the lone action).
import { FRAME_HEADER_BYTES, FrameType, MAX_FRAME_BYTES, RING_START_BLOCK, STATUS_SLOT_BLOCKS, payloadCapacity } from "../format/layout.ts";
import { RecordBuilder, encodePad } from "../format/record.ts";
import type { RecordCipher } from "../format/record-cipher.ts";
import { encodeStatus, type PeerRow } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { uuidBytes } from "../format/uuid.ts";
import { ErrorCode, LunlinkError, invalidArgument } from "../errors.ts";
import { Fifo } from "./fifo.ts";
import { MAX_SEQ, type RingKeys } from "./keys.ts";
import { PeerHolds, newer } from "./peer-holds.ts";
import { RecordsInFlight } from "./records-in-flight.ts";
import type { Ack, PeerAckInput, ResolvedWriterOptions, RingWriterCounters, WriterCloseReport } from "./writer-options.ts";

/**
 * The machine's states. The writing/checking/rekeying states have I/O in flight: writingRecord up to
 * maxRecordsInFlight record writes, every other one exactly one I/O (alone).
 * idle -> batching -> (awaitingAck) -> writingPad? -> rekeying? -> writingRecord -> idle|batching;
 * writingStatus and checkingOwner between records; closed and failed are terminal.
 */
export const WriterState = {
  /** Nothing buffered: sleeps until an append, the status interval or the owner check. */
  Idle: "idle",
  /** Frames buffered: sealed at flushThresholdBytes, after maxDelayMs, or at once on flush/close/overflow. */
  Batching: "batching",
  /** A sealed record's ring space holds an unacked record that may not be overwritten: waits for the ack. */
  AwaitingAck: "awaitingAck",
  /** Record writes in flight (up to maxRecordsInFlight); another record may still be issued beside them. */
  WritingRecord: "writingRecord",
  /** The pad block that ends a lap. */
  WritingPad: "writingPad",
  WritingStatus: "writingStatus",
  /** Re-reading the superblock: has another writer taken the volume? */
  CheckingOwner: "checkingOwner",
  /** Writing a new epoch's superblock (keyed: fresh record key). */
  Rekeying: "rekeying",
  Closed: "closed",
  Failed: "failed",
} as const;
export type WriterState = (typeof WriterState)[keyof typeof WriterState];

export type WriterAction =
  | { kind: "write"; what: "record"; offsetBytes: number; bytes: Uint8Array; seq: bigint; blocks: number; enqueuedMs: number; sealedMs: number }
  | { kind: "write"; what: "pad" | "status"; offsetBytes: number; bytes: Uint8Array }
  | { kind: "readSuperblock" }
  | { kind: "writeSuperblock"; superblock: Superblock }
  | { kind: "sleep"; untilMs: number }
  | { kind: "stop" };

/** What the shell reads from its callbacks at each step (the acks move under the writer). */
export interface WriterInput {
  wallMs: number;
  /** The peer's ack of our records (frees ring space). */
  peerAck: Ack | undefined;
  /**
   * Cluster: every peer's ack of our ring and its storage heartbeat (replaces peerAck when given).
   * A record is acked when every peer still holding the ring acked it (peerDownMs releases a peer).
   */
  peerAcks?: readonly PeerAckInput[];
  /** Cluster: this node's rows about its peers (their rings' ack and delivered marks) for the status block. */
  peerRows?: readonly PeerRow[];
  /** Highest (epoch, seq) received from the peer: the status block's ack. */
  localAck: Ack | undefined;
  /** Highest authenticated (epoch, seq) delivered from the peer: the status block's delivered mark. */
  delivered: Ack | undefined;
  /** An append() waits for room: seal the filling record now instead of after maxDelayMs. */
  roomWanted: boolean;
  /** Standby (RingWriterOptions.standby): the status at the standby pace. */
  standby?: boolean;
}

export type AppendResult = "queued" | "queued, due" | "dropped" | "full";

export interface WriterCoreInit {
  superblock: Superblock;
  keys: RingKeys | undefined;
  options: ResolvedWriterOptions;
  nowMs: number;
  /** Next sequence and ring block (relative) to write. */
  seq: bigint;
  headBlock: number;
  /** Oldest record start found at open (0n: none). */
  oldestAtOpen: bigint;
  /** Records already on the ring, oldest first: still owed to the reader. */
  existing: readonly Indexed[];
  /** The delivered mark persisted in the volume's status block at open (kept, never lowered). */
  delivered: Ack | undefined;
  /** Cluster: the peer rows persisted at open (their delivered marks are kept, never lowered). */
  peerRows?: readonly PeerRow[];
  alloc: (lengthBytes: number) => Uint8Array;
  /** Random bytes for a rekey's fresh salt (tests inject a seeded source). */
  entropy: (lengthBytes: number) => Uint8Array;
}

export interface Indexed {
  seq: bigint;
  startBlock: number;
  blocks: number;
  noOverwrite: boolean;
}

interface Pending {
  type: number;
  flags: number;
  payload: Uint8Array;
}

/** A record buffer and its builder: maxRecordsInFlight + 1 of them (the in-flight ones and the filling one). */
interface RecordSlot {
  builder: RecordBuilder;
  buffer: Uint8Array;
  /** When its first frame was appended and when it was sealed (the stage trace's enqueued and sealed). */
  enqueuedMs: number;
  sealedMs: number;
}

interface ClassQueue {
  frames: Fifo<Pending>;
  /** Payload plus frame header bytes queued: bounded by queueLimitBytes. */
  bytes: number;
}

const CLASS_ORDER = [FrameType.Heartbeat, FrameType.Control, FrameType.Data] as const;
/** Idle time after the last record before the new head goes to the status block. */
export const STATUS_IDLE_MS = 5;
/**
 * A record written this long after the one before it (an idle link's heartbeat record: no
 * conversation follows it) has its status written at once, in the turn its write completed: waiting
 * STATUS_IDLE_MS would cost a timer wake-up of its own (issue #13 section 4).
 */
export const STATUS_LONE_RECORD_GAP_MS = 100;

export class RingWriterCore {
  readonly counters: RingWriterCounters = { framesAppended: 0, framesDropped: 0, records: 0, pads: 0, bytesWritten: 0, statusWrites: 0, overwrittenUnacked: 0, ackWaits: 0, rekeys: 0, peersReleased: 0, peersReturned: 0 };
  /** Frames that reached the volume: flush() waits until this passes counters.framesAppended at its call. */
  framesWritten = 0;
  /** Bumped whenever room opens for a waiting append (a fresh record buffer, a refill). */
  roomGeneration = 0;
  private stateNow: WriterState = WriterState.Idle;
  private superblockNow: Superblock;
  private readonly keys: RingKeys | undefined;
  private cipher: RecordCipher | undefined;
  private readonly o: ResolvedWriterOptions;
  private readonly uuid: Uint8Array;
  private readonly blockBytes: number;
  private readonly ringBlocks: number;
  private readonly entropy: (lengthBytes: number) => Uint8Array;
  /** Every record buffer (maxRecordsInFlight + 1); `filling`, `outgoing`, `records` and `spare` share them out. */
  private readonly slots: RecordSlot[];
  /** Largest payload a frame may carry. */
  readonly frameCapacityBytes: number;
  private filling: RecordSlot;
  /** Buffers free for the next filling record. */
  private readonly spare: RecordSlot[];
  /** The sealed record going out (awaiting room, pad, rekey or a free place in the pipeline), or undefined. */
  private outgoing: RecordSlot | undefined;
  /**
   * The writes in flight: record writes issued and not yet retired (bound: maxRecordsInFlight), the
   * head (the first record not yet written: every write below it completed), the issue position, and
   * the non-record action in flight (the state it entered), if any: it runs alone.
   */
  private readonly records: RecordsInFlight<RecordSlot, WriterState>;
  private fillingSinceMs = 0;
  private readonly queues = new Map<number, ClassQueue>();
  private queuedBytes = 0;
  /** Records on the ring not yet freed, in the order the head meets them. Bound: 2 x ringBlocks (one start per block, with margin). */
  private readonly index: Fifo<Indexed>;
  private readonly statusBlock: Uint8Array;
  private readonly padBlock: Uint8Array;
  private statusGeneration = 0n;
  private heartbeat = 0n;
  private statusStale = false;
  private lastStatusMs: number;
  private lastRecordMs: number;
  /** Time between the last two record completions (ms). */
  private recordGapMs = 0;
  private nextOwnerCheckMs: number;
  private readonly oldestAtOpen: bigint;
  private blocksSinceOpen = 0;
  private deliveredMark: Ack | undefined;
  /** Cluster: which peers hold the ring back, and their delivered marks as written. */
  private readonly peers: PeerHolds;
  /** The record an ack wait is on (ackWaits counts each record waited on once). */
  private waitingOnSeq: bigint | undefined;
  private closeDeadlineMs: number | undefined;
  private failure: LunlinkError | undefined;
  private closeReport: WriterCloseReport | undefined;

  constructor(init: WriterCoreInit) {
    this.superblockNow = init.superblock;
    this.keys = init.keys;
    this.cipher = init.keys?.recordCipher(init.superblock);
    this.o = init.options;
    this.uuid = uuidBytes(init.superblock.volumeUuid);
    this.blockBytes = init.superblock.blockBytes;
    this.ringBlocks = Number(init.superblock.ringBlocks);
    this.entropy = init.entropy;
    const maxBlocks = Math.min(init.options.maxRecordBlocks, this.ringBlocks - 1);
    this.slots = [];
    for (let i = 0; i <= init.options.maxRecordsInFlight; i++) {
      const buffer = init.alloc(maxBlocks * this.blockBytes);
      this.slots.push({ buffer, builder: new RecordBuilder(buffer, this.blockBytes, maxBlocks), enqueuedMs: 0, sealedMs: 0 });
    }
    this.filling = this.slots[0]!;
    this.spare = this.slots.slice(1);
    this.records = new RecordsInFlight(init.options.maxRecordsInFlight, this.ringBlocks, init.seq, init.headBlock);
    this.frameCapacityBytes = Math.min(MAX_FRAME_BYTES, payloadCapacity(this.blockBytes, maxBlocks) - FRAME_HEADER_BYTES);
    this.statusBlock = init.alloc(this.blockBytes);
    this.padBlock = init.alloc(this.blockBytes);
    this.oldestAtOpen = init.oldestAtOpen > 0n ? init.oldestAtOpen : init.seq;
    this.deliveredMark = init.delivered;
    this.peers = new PeerHolds(init.options.peerDownMs, init.peerRows ?? [], this.counters);
    this.index = new Fifo<Indexed>(2 * this.ringBlocks, Math.max(16, init.existing.length));
    // In the order the head will meet them (from headBlock on, wrapping), not by seq: records left by
    // older laps and epochs need not lie in seq order, and freeRange() takes them from the front.
    const ahead = (r: Indexed) => (r.startBlock - init.headBlock + this.ringBlocks) % this.ringBlocks;
    for (const record of [...init.existing].sort((a, b) => ahead(a) - ahead(b))) this.index.push(record);
    // Every queued frame costs at least its header against queueLimitBytes: the frame count is bounded too.
    const framesLimit = Math.floor(init.options.queueLimitBytes / FRAME_HEADER_BYTES) + 1;
    for (const type of CLASS_ORDER) this.queues.set(type, { frames: new Fifo<Pending>(framesLimit), bytes: 0 });
    // The first status write (the new epoch's head) is due at once: open() performs it.
    this.lastStatusMs = Number.NEGATIVE_INFINITY;
    this.lastRecordMs = init.nowMs;
    this.nextOwnerCheckMs = init.nowMs + init.options.ownerCheckMs;
  }

  get state(): WriterState {
    return this.stateNow;
  }

  /** Cluster: peers released or back since the shell last looked (it reports them). */
  get peerEvents(): { node: number; released: boolean }[] {
    return this.peers.events;
  }

  /** Cluster: nodes released now (no longer holding the ring back). */
  get releasedPeers(): number[] {
    return this.peers.released;
  }

  get superblock(): Superblock {
    return this.superblockNow;
  }

  get headSeq(): bigint {
    return this.records.headSeq;
  }

  get error(): LunlinkError | undefined {
    return this.failure;
  }

  get closing(): boolean {
    return this.closeDeadlineMs !== undefined;
  }

  /** Bytes waiting to be written: the filling record, the sealed one going out, those in flight, and the class queues. */
  get bufferedBytes(): number {
    let bytes = this.current().bytes + (this.outgoing?.builder.bytes ?? 0) + this.queuedBytes;
    for (let i = 0; i < this.records.length; i++) bytes += this.records.at(i)!.slot.builder.bytes;
    return bytes;
  }

  /** Record writes issued and not yet retired (at most maxRecordsInFlight). */
  get recordsInFlight(): number {
    return this.records.length;
  }

  /** True when the next append starts a batch (then it needs the time: append's nowMs). */
  get batchEmpty(): boolean {
    return this.current().frames === 0;
  }

  /**
   * One frame in: "queued" ("queued, due": the pump should look again, a record may be due),
   * "dropped" (counted) or "full" (wait for roomGeneration to move). No allocation on the hot path;
   * `nowMs` is read only when batchEmpty (the shell skips the clock otherwise) and, for the stage
   * trace only, as a threshold seal's time.
   */
  append(nowMs: number, type: number, payload: Uint8Array, flags: number): AppendResult {
    if (type !== FrameType.Heartbeat && type !== FrameType.Control && type !== FrameType.Data) throw invalidArgument("type", "1 (heartbeat), 2 (control) or 3 (data)", type);
    const capacity = this.frameCapacityBytes;
    if (payload.length > capacity) throw new LunlinkError(ErrorCode.FrameTooLarge, `a frame of ${payload.length} bytes does not fit a record (at most ${capacity})`);
    const builder = this.current();
    if (this.queuedBytes === 0 && builder.fits(payload.length)) {
      if (builder.frames === 0) this.fillingSinceMs = nowMs;
      builder.append(type, flags, payload, type === FrameType.Control && this.o.controlWaitsForAck);
      this.counters.framesAppended++;
      if (builder.bytes < this.o.flushThresholdBytes) return builder.frames === 1 ? "queued, due" : "queued";
      // At the threshold the record is sealed now, not when the pump next looks (it may be writing a
      // status block): records end at the threshold whatever the pump's timing. Not while the other
      // buffer is still going out: then this one keeps filling up to maxRecordBlocks.
      if (this.canSeal()) this.seal(nowMs);
      return "queued, due";
    }
    // Back-pressured data waits for the next record buffer instead of being copied aside; heartbeat
    // and control go to their queues so they overtake waiting data at the next record.
    if (type === FrameType.Data && this.o.fullQueue === "wait") return "full";
    const queue = this.queues.get(type)!;
    const cost = payload.length + FRAME_HEADER_BYTES;
    if (queue.bytes + cost > this.o.queueLimitBytes || queue.frames.full) {
      if (type !== FrameType.Control && this.o.fullQueue === "drop") {
        this.counters.framesDropped++;
        return "dropped";
      }
      return "full";
    }
    queue.frames.push({ type, flags, payload: payload.slice() });
    queue.bytes += cost;
    this.queuedBytes += cost;
    this.counters.framesAppended++;
    return "queued, due";
  }

  /** Starts draining: no more appends; stop once everything is written, or at nowMs + timeoutMs. */
  close(nowMs: number, timeoutMs: number): void {
    if (this.closeDeadlineMs === undefined) this.closeDeadlineMs = nowMs + timeoutMs;
  }

  /**
   * The next action. Throws if a non-record action is still in flight (it runs alone by
   * construction); with records in flight it may return another record write, or a sleep that a
   * completion ends.
   */
  next(nowMs: number, input: WriterInput): WriterAction {
    if (this.records.alone !== undefined) throw new Error(`assertion failed: next() with ${this.records.alone} in flight`);
    const action = this.decide(nowMs, input);
    if (action.kind !== "sleep" && action.kind !== "stop" && !(action.kind === "write" && action.what === "record")) this.records.startAlone(this.stateNow);
    return action;
  }

  /**
   * A write or superblock write returned by next() completed. `seq`: the record's (records may
   * complete in any order); absent: the one action in flight (the non-record action, or the only
   * record write). The head moves over records only once every write below them completed.
   */
  completed(nowMs: number, seq?: bigint): void {
    if (this.closeReport !== undefined) {
      this.records.endAlone();
      return; // abandoned at the close timeout (or failed) while this I/O was in flight
    }
    const was = this.records.alone;
    if (was === undefined) {
      this.recordCompleted(nowMs, seq);
      this.stateNow = this.restingState();
      return;
    }
    if (seq !== undefined) throw new Error(`assertion failed: completed(record ${seq}) with ${was} in flight`);
    this.records.endAlone();
    if (was === WriterState.WritingPad) {
      // A pad is a record a reader must pass too: held like one (as at open, where the scan indexes pads).
      this.index.push({ seq: this.records.headSeq, startBlock: this.records.headBlock, blocks: 1, noOverwrite: false });
      this.records.padWritten();
      this.counters.pads++;
    } else if (was === WriterState.WritingStatus) {
      this.lastStatusMs = nowMs;
      this.counters.statusWrites++;
    } else if (was === WriterState.Rekeying) {
      this.cipher = this.keys!.recordCipher(this.superblockNow);
      this.counters.rekeys++;
    } else {
      throw new Error(`assertion failed: completed() in state ${was}`);
    }
    this.stateNow = this.restingState();
  }

  /** Marks the record done; retires the completed prefix of the records in flight (the head moves over it). */
  private recordCompleted(nowMs: number, seq: bigint | undefined): void {
    this.records.complete(seq);
    for (let head = this.records.retire(); head !== undefined; head = this.records.retire()) {
      const builder = head.slot.builder;
      this.counters.records++;
      this.counters.bytesWritten += head.blocks * this.blockBytes;
      this.blocksSinceOpen += head.blocks;
      this.framesWritten += builder.frames;
      builder.reset();
      this.spare.push(head.slot);
      this.statusStale = true;
      this.recordGapMs = nowMs - this.lastRecordMs;
      this.lastRecordMs = nowMs;
    }
  }

  /** The owner check's superblock read returned: another writer or epoch on it stops this one. */
  superblockRead(nowMs: number, found: Pick<Superblock, "epoch" | "writerNode">, path: string): void {
    if (this.closeReport !== undefined) {
      this.records.endAlone();
      return;
    }
    if (this.stateNow !== WriterState.CheckingOwner) throw new Error(`assertion failed: superblockRead() in state ${this.stateNow}`);
    this.records.endAlone();
    this.nextOwnerCheckMs = nowMs + this.o.ownerCheckMs;
    this.stateNow = this.restingState();
    if (found.epoch !== this.superblockNow.epoch || found.writerNode !== this.superblockNow.writerNode) {
      const why =
        found.writerNode === this.superblockNow.writerNode
          ? `another writer with node id ${found.writerNode} opened this ring (epoch ${found.epoch}, ours ${this.superblockNow.epoch}): two nodes configured with the same id?`
          : `node ${found.writerNode} took the volume over (epoch ${found.epoch}, ours ${this.superblockNow.epoch})`;
      this.fail(new LunlinkError(ErrorCode.NotOwner, `${path}: ${why}; this writer stops`, { path }));
    }
  }

  /**
   * A fatal error (I/O, not owner): stop; what was not written is reported, buffers are let go.
   * Records still in flight are abandoned: their completions are ignored, so the head (and the
   * status) never moves over a failed write; what they held counts as not written.
   */
  fail(error: unknown): LunlinkError {
    this.records.endAlone();
    if (this.failure !== undefined) return this.failure;
    const failure = error instanceof LunlinkError ? error : new LunlinkError(ErrorCode.System, String(error), { cause: error });
    if (this.closeReport !== undefined) return failure; // already closed (abandoned): nothing left to stop
    this.failure = failure;
    this.finish(WriterState.Failed);
    return this.failure;
  }

  /** What close() reports: set once the machine stopped (closed or failed). */
  get report(): WriterCloseReport | undefined {
    return this.closeReport;
  }

  /** Stops where it stands (close timeout with an I/O still in flight): the rest is reported unflushed. */
  abandon(): WriterCloseReport {
    if (this.closeReport === undefined) this.finish(WriterState.Closed);
    return this.closeReport!;
  }

  private decide(nowMs: number, input: WriterInput): WriterAction {
    if (input.peerAcks !== undefined) this.peers.track(nowMs, input.peerAcks);
    for (let step = 0; ; step++) {
      if (step > 2 * CLASS_ORDER.length + 4) throw new Error("assertion failed: the writer core did not settle");
      if (this.closeReport !== undefined) return { kind: "stop" };
      if (this.closeDeadlineMs !== undefined && nowMs >= this.closeDeadlineMs) {
        this.finish(WriterState.Closed);
        return { kind: "stop" };
      }
      // Not before the first status write: open() just wrote the superblock, and open() expects the
      // status first (a slow open under CPU pressure used to find the owner check due already).
      // Both wait for the records in flight to drain (they run alone), and no record is issued meanwhile.
      if (nowMs >= this.nextOwnerCheckMs && this.lastStatusMs !== Number.NEGATIVE_INFINITY) return this.drained(nowMs) ?? this.enter(WriterState.CheckingOwner, { kind: "readSuperblock" });
      // The storage heartbeat goes first once per interval, even under a flood of records.
      const statusIntervalMs = input.standby === true ? this.o.standbyStatusIntervalMs : this.o.statusIntervalMs;
      if (nowMs >= this.lastStatusMs + statusIntervalMs) return this.drained(nowMs) ?? this.writeStatus(input);
      if (this.outgoing !== undefined) return this.sendOutgoing(nowMs, input);
      const builder = this.current();
      if (builder.frames > 0 && this.canSeal() && this.recordDue(nowMs, builder, input)) {
        this.seal(nowMs);
        continue;
      }
      if (this.queuedBytes > 0 && this.refill(nowMs)) continue;
      // Records in flight: the status, the close and the batch deadline wait for the drain (a completion wakes the shell).
      if (!this.records.drained) return this.awaitRecords(nowMs);
      // Status: on the heartbeat interval, and once the writer has been idle STATUS_IDLE_MS with a new
      // head (not after every record: under load that would double the writes, and a status write
      // must not sit in front of the next record of a conversation); after a lone record, at once,
      // but in standby only standbyStatusGapMs after the last status (else a later record brings it).
      const statusDueAtMs = Math.min(this.statusIdleAtMs(input), this.lastStatusMs + statusIntervalMs);
      if (nowMs >= statusDueAtMs || (this.closeDeadlineMs !== undefined && this.statusStale)) return this.writeStatus(input);
      if (this.closeDeadlineMs !== undefined && builder.frames === 0 && this.queuedBytes === 0) {
        this.finish(WriterState.Closed);
        return { kind: "stop" };
      }
      this.stateNow = builder.frames > 0 ? WriterState.Batching : WriterState.Idle;
      const batchDueAtMs = builder.frames > 0 ? this.fillingSinceMs + this.o.maxDelayMs : Number.POSITIVE_INFINITY;
      // A due owner check runs at the next next() call; only past its slack does it wake the writer itself.
      return { kind: "sleep", untilMs: Math.min(batchDueAtMs, statusDueAtMs, this.nextOwnerCheckMs + this.o.ownerCheckSlackMs, this.closeDeadlineMs ?? Number.POSITIVE_INFINITY) };
    }
  }

  /** When a stale status goes out by itself (not on the interval): STATUS_IDLE_MS after a record, at once after a lone one (in standby: not within standbyStatusGapMs of the last status). */
  private statusIdleAtMs(input: WriterInput): number {
    if (!this.statusStale) return Number.POSITIVE_INFINITY;
    if (this.recordGapMs < STATUS_LONE_RECORD_GAP_MS) return this.lastRecordMs + STATUS_IDLE_MS;
    if (input.standby === true && this.lastRecordMs < this.lastStatusMs + this.o.standbyStatusGapMs) return Number.POSITIVE_INFINITY;
    return this.lastRecordMs;
  }

  /**
   * Can the filling record be sealed? Only with nothing sealed waiting and a free place in the
   * pipeline (so a spare buffer is left to fill): with one record in flight at most, a record grows
   * while the previous write is in flight, as before; with more, it grows while the pipeline is full.
   */
  private canSeal(): boolean {
    return this.outgoing === undefined && !this.records.full;
  }

  /** The filling record goes out; a spare buffer starts filling. */
  private seal(nowMs: number): void {
    const next = this.spare.pop();
    if (next === undefined) throw new Error("assertion failed: no spare record buffer to seal into");
    this.filling.enqueuedMs = this.fillingSinceMs;
    this.filling.sealedMs = nowMs;
    this.outgoing = this.filling;
    this.filling = next;
    this.roomGeneration++;
  }

  /** undefined when no record is in flight (the caller's action may run alone), else the wait for them. */
  private drained(nowMs: number): WriterAction | undefined {
    return this.records.drained ? undefined : this.awaitRecords(nowMs);
  }

  /**
   * Waiting for record writes in flight: each completion wakes the shell (it calls next() after
   * completed()), and so does an append that makes a record due (flushThresholdBytes). The sleep's own
   * deadline is a re-check after statusIntervalMs (a write that hangs fails by the volume's
   * ioTimeoutMs), or close's deadline.
   */
  private awaitRecords(nowMs: number): WriterAction {
    this.stateNow = WriterState.WritingRecord;
    return { kind: "sleep", untilMs: Math.min(nowMs + this.o.statusIntervalMs, this.closeDeadlineMs ?? Number.POSITIVE_INFINITY) };
  }

  /**
   * With records in flight, maxDelayMs does not seal a record: it grows until flushThresholdBytes (or
   * until the pipeline drains), so a second write goes out only when the bytes to carry outrun one
   * write per flush. Sealing every few packets beside writes in flight multiplied records (and the
   * CPU per record: write, mirror copy, reader poll) with no gain (bench link under load).
   */
  private recordDue(nowMs: number, builder: RecordBuilder, input: WriterInput): boolean {
    return (
      this.closeDeadlineMs !== undefined ||
      input.roomWanted ||
      this.flushTarget > this.framesWritten ||
      builder.bytes >= this.o.flushThresholdBytes ||
      (this.records.drained && nowMs - this.fillingSinceMs >= this.o.maxDelayMs) ||
      !builder.fits(0) ||
      this.queuedBytes > 0
    );
  }

  /** Highest counters.framesAppended a flush() waits for (set by the shell). */
  flushTarget = 0;

  /**
   * The sealed record: end the lap if it does not fit, free its space, rekey if due, write it. The
   * pad and the rekey wait for the records in flight to drain (they run alone: a pad's seq follows the
   * last record's, and a new epoch's superblock is durable before its first record, as at open), so
   * the records in flight always lie in one lap, below issueBlock: a record issued at issueBlock
   * never overlaps one still being written.
   */
  private sendOutgoing(nowMs: number, input: WriterInput): WriterAction {
    const slot = this.outgoing!;
    const builder = slot.builder;
    const blocks = builder.blocks;
    const wraps = this.records.wraps(blocks);
    if (wraps || this.records.full) {
      const wait = this.drained(nowMs);
      if (wait !== undefined) return wait;
    }
    // Ending the lap frees everything up to the ring end: a reader following this lap skips it.
    const blocking = this.freeRange(this.records.issueBlock, wraps ? this.ringBlocks - this.records.issueBlock : blocks, input.peerAcks === undefined ? input.peerAck : this.peers.holdingAck(input.peerAcks));
    if (blocking !== undefined) return this.awaitAck(nowMs, blocking);
    if (this.records.issueSeq >= MAX_SEQ) throw new LunlinkError(ErrorCode.OutOfRange, `sequence ${this.records.issueSeq} reached 2^63; reformat the volume`); // the shell fails with it
    if (this.keys !== undefined && this.records.issueSeq - this.superblockNow.epochStartSeq >= this.o.rekeyAfterRecords) return this.drained(nowMs) ?? this.rekey();
    const B = this.blockBytes;
    if (wraps) {
      encodePad(this.padBlock, B, { volumeUuid: this.uuid, epoch: this.superblockNow.epoch, seq: this.records.headSeq, timestampMs: BigInt(Math.trunc(input.wallMs)) }, this.sealing(this.records.headBlock));
      return this.enter(WriterState.WritingPad, { kind: "write", what: "pad", offsetBytes: (RING_START_BLOCK + this.records.headBlock) * B, bytes: this.padBlock });
    }
    const seq = this.records.issueSeq;
    const startBlock = this.records.issueBlock;
    builder.finish({ volumeUuid: this.uuid, epoch: this.superblockNow.epoch, seq, timestampMs: BigInt(Math.trunc(input.wallMs)) }, undefined, this.sealing(startBlock));
    // Indexed when issued (the index is in the order the head meets records, which is issue order).
    this.index.push({ seq, startBlock, blocks, noOverwrite: builder.noOverwrite });
    this.records.issue(blocks, slot);
    this.outgoing = undefined;
    return this.enter(WriterState.WritingRecord, {
      kind: "write",
      what: "record",
      offsetBytes: (RING_START_BLOCK + startBlock) * B,
      bytes: slot.buffer.subarray(0, blocks * B),
      seq,
      blocks,
      enqueuedMs: slot.enqueuedMs,
      sealedMs: slot.sealedMs,
    });
  }

  /**
   * Waiting for an ack, woken by peerAckChanged() or every ackPollMs; the heartbeat and head stay
   * current meanwhile (decide() writes the status on its interval first): a reader stuck on a
   * damaged slot needs them to skip it, which is what frees this wait. Bounded by close's deadline.
   */
  private awaitAck(nowMs: number, blocking: Indexed): WriterAction {
    if (this.waitingOnSeq !== blocking.seq) this.counters.ackWaits++;
    this.waitingOnSeq = blocking.seq;
    this.stateNow = WriterState.AwaitingAck;
    return { kind: "sleep", untilMs: Math.min(nowMs + this.o.ackPollMs, this.lastStatusMs + this.o.statusIntervalMs, this.nextOwnerCheckMs, this.closeDeadlineMs ?? Number.POSITIVE_INFINITY) };
  }

  /**
   * Frees ring blocks [start, start+blocks) before they are overwritten. The records there are at
   * the index's front (it is kept in the order the head meets them), so they are taken from it. Returns the
   * unacked record there that may not be overwritten yet, if any.
   */
  private freeRange(start: number, blocks: number, peerAck: Ack | undefined): Indexed | undefined {
    for (let oldest = this.index.peek(); oldest !== undefined; oldest = this.index.peek()) {
      if (!(oldest.startBlock < start + blocks && oldest.startBlock + oldest.blocks > start)) break;
      // Sequences never repeat on a volume, so the seq alone says whether the peer has a record.
      const acked = peerAck !== undefined && peerAck.epoch <= this.superblockNow.epoch && peerAck.seq >= oldest.seq;
      if (!acked) {
        if (oldest.noOverwrite || !this.o.overwriteUnacked) return oldest;
        this.counters.overwrittenUnacked++;
      }
      this.index.shift();
    }
    return undefined;
  }

  /** Moves queued frames into the filling builder, highest class first. True if any moved. */
  private refill(nowMs: number): boolean {
    const builder = this.current();
    let moved = false;
    for (const type of CLASS_ORDER) {
      const queue = this.queues.get(type)!;
      for (let f = queue.frames.peek(); f !== undefined && builder.fits(f.payload.length); f = queue.frames.peek()) {
        queue.frames.shift();
        if (builder.frames === 0) this.fillingSinceMs = nowMs;
        builder.append(f.type, f.flags, f.payload, f.type === FrameType.Control && this.o.controlWaitsForAck);
        const cost = f.payload.length + FRAME_HEADER_BYTES;
        queue.bytes -= cost;
        this.queuedBytes -= cost;
        moved = true;
      }
    }
    if (moved) this.roomGeneration++;
    return moved;
  }

  /**
   * Keyed: before the epoch's record count reaches rekeyAfterRecords, start a new epoch in place
   * (fresh salt, so a fresh record key), durable before its first record, as at open.
   */
  private rekey(): WriterAction {
    this.superblockNow = { ...this.superblockNow, epoch: this.superblockNow.epoch + 1n, epochStartSeq: this.records.headSeq, epochStartBlock: BigInt(this.records.headBlock), salt: this.entropy(32) };
    return this.enter(WriterState.Rekeying, { kind: "writeSuperblock", superblock: this.superblockNow });
  }

  private writeStatus(input: WriterInput): WriterAction {
    if (input.delivered !== undefined && (this.deliveredMark === undefined || newer(input.delivered, this.deliveredMark))) this.deliveredMark = input.delivered;
    const oldest = this.blocksSinceOpen < this.ringBlocks ? this.oldestAtOpen : (this.index.peek()?.seq ?? this.records.headSeq);
    this.statusGeneration++;
    this.heartbeat++;
    const slot = Number(this.statusGeneration % 2n) as 0 | 1;
    const peers = input.peerRows === undefined ? undefined : this.peers.statusRows(input.peerRows);
    encodeStatus(
      {
        slot,
        volumeUuid: this.superblockNow.volumeUuid,
        epoch: this.superblockNow.epoch,
        generation: this.statusGeneration,
        headSeq: this.records.headSeq,
        headBlock: BigInt(this.records.headBlock),
        oldestSeq: oldest,
        ackEpoch: input.localAck?.epoch ?? 0n,
        ackSeq: input.localAck?.seq ?? 0n,
        heartbeat: this.heartbeat,
        deliveredEpoch: this.deliveredMark?.epoch ?? 0n,
        deliveredSeq: this.deliveredMark?.seq ?? 0n,
        wallClockMs: BigInt(Math.trunc(input.wallMs)),
        ...(peers === undefined ? {} : { peers }),
      },
      this.statusBlock,
      this.keys?.statusMac,
    );
    this.statusStale = false;
    return this.enter(WriterState.WritingStatus, { kind: "write", what: "status", offsetBytes: STATUS_SLOT_BLOCKS[slot] * this.blockBytes, bytes: this.statusBlock });
  }

  private enter(state: WriterState, action: WriterAction): WriterAction {
    this.stateNow = state;
    return action;
  }

  /** Where the machine rests after an I/O (records still in flight: writing; a sealed record still going out counts as batching). */
  private restingState(): WriterState {
    if (!this.records.drained) return WriterState.WritingRecord;
    return this.outgoing !== undefined || this.current().frames > 0 ? WriterState.Batching : WriterState.Idle;
  }

  private finish(state: WriterState): void {
    let frames = this.current().frames + (this.outgoing?.builder.frames ?? 0);
    let bytes = this.current().bytes + (this.outgoing?.builder.bytes ?? 0);
    // Records in flight (or completed behind one still in flight) are not written as far as the head is concerned.
    for (let i = 0; i < this.records.length; i++) {
      const builder = this.records.at(i)!.slot.builder;
      frames += builder.frames;
      bytes += builder.bytes;
    }
    this.records.clear();
    for (const queue of this.queues.values()) {
      frames += queue.frames.length;
      bytes += queue.bytes;
      queue.frames.clear();
      queue.bytes = 0;
    }
    this.queuedBytes = 0;
    for (const slot of this.slots) slot.builder.reset();
    this.spare.length = 0;
    for (const slot of this.slots) if (slot !== this.filling) this.spare.push(slot);
    this.outgoing = undefined;
    this.index.clear();
    this.stateNow = state;
    this.closeReport = { unflushedFrames: frames, unflushedBytes: bytes, ...(this.failure === undefined ? {} : { error: this.failure }) };
  }

  private current(): RecordBuilder {
    return this.filling.builder;
  }

  /** Keyed: the epoch's cipher and the ring block a record goes to (both part of its AEAD). */
  private sealing(ringBlock: number): { cipher: RecordCipher; ringBlock: number } | undefined {
    return this.cipher === undefined ? undefined : { cipher: this.cipher, ringBlock };
  }
}
