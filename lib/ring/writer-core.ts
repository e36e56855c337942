// RingWriterCore: every decision of the ring writer, with no I/O and no timers (sans-IO). The shell
// (writer.ts) asks next(nowMs, input) for one action, performs it, reports the outcome (completed /
// superblockRead / fail) and asks again; "sleep" means nothing to do before untilMs or a new input.
// Invariants: at most one action in flight (next() refuses to run while one is), so the owner check,
// a rekey, a status write and a record write can never race; sequences strictly increase; a record
// holding a control frame is not overwritten before the peer acked it (in a cluster: every peer that
// still holds the ring, see peer-holds.ts); every queue has a named bound.
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
import type { Ack, PeerAckInput, ResolvedWriterOptions, RingWriterCounters, WriterCloseReport } from "./writer-options.ts";

/**
 * The machine's states. Exactly one of the writing/checking/rekeying states has an I/O in flight.
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
  | { kind: "write"; what: "record"; offsetBytes: number; bytes: Uint8Array; seq: bigint; blocks: number }
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

interface ClassQueue {
  frames: Fifo<Pending>;
  /** Payload plus frame header bytes queued: bounded by queueLimitBytes. */
  bytes: number;
}

const CLASS_ORDER = [FrameType.Heartbeat, FrameType.Control, FrameType.Data] as const;
/** Idle time after the last record before the new head goes to the status block. */
export const STATUS_IDLE_MS = 5;

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
  private readonly recordBuffers: [Uint8Array, Uint8Array];
  private readonly builders: [RecordBuilder, RecordBuilder];
  /** Largest payload a frame may carry. */
  readonly frameCapacityBytes: number;
  private filling: 0 | 1 = 0;
  /** The sealed record going out (awaiting room, pad, rekey or its write), or undefined. */
  private outgoing: RecordBuilder | undefined;
  private fillingSinceMs = 0;
  private readonly queues = new Map<number, ClassQueue>();
  private queuedBytes = 0;
  /** Records on the ring not yet freed, in the order the head meets them. Bound: 2 x ringBlocks (one start per block, with margin). */
  private readonly index: Fifo<Indexed>;
  private seq: bigint;
  private headBlock: number;
  private readonly statusBlock: Uint8Array;
  private readonly padBlock: Uint8Array;
  private statusGeneration = 0n;
  private heartbeat = 0n;
  private statusStale = false;
  private lastStatusMs: number;
  private lastRecordMs: number;
  private nextOwnerCheckMs: number;
  private readonly oldestAtOpen: bigint;
  private blocksSinceOpen = 0;
  private deliveredMark: Ack | undefined;
  /** Cluster: which peers hold the ring back, and their delivered marks as written. */
  private readonly peers: PeerHolds;
  /** The record an ack wait is on (ackWaits counts each record waited on once). */
  private waitingOnSeq: bigint | undefined;
  private inflight: WriterAction["kind"] | undefined;
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
    this.recordBuffers = [init.alloc(maxBlocks * this.blockBytes), init.alloc(maxBlocks * this.blockBytes)];
    this.builders = [new RecordBuilder(this.recordBuffers[0], this.blockBytes, maxBlocks), new RecordBuilder(this.recordBuffers[1], this.blockBytes, maxBlocks)];
    this.frameCapacityBytes = Math.min(MAX_FRAME_BYTES, payloadCapacity(this.blockBytes, maxBlocks) - FRAME_HEADER_BYTES);
    this.statusBlock = init.alloc(this.blockBytes);
    this.padBlock = init.alloc(this.blockBytes);
    this.seq = init.seq;
    this.headBlock = init.headBlock;
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
    return this.seq;
  }

  get error(): LunlinkError | undefined {
    return this.failure;
  }

  get closing(): boolean {
    return this.closeDeadlineMs !== undefined;
  }

  /** Bytes waiting to be written: the filling record, the sealed one going out, and the class queues. */
  get bufferedBytes(): number {
    return this.current().bytes + (this.outgoing?.bytes ?? 0) + this.queuedBytes;
  }

  /** True when the next append starts a batch (then it needs the time: append's nowMs). */
  get batchEmpty(): boolean {
    return this.current().frames === 0;
  }

  /**
   * One frame in: "queued" ("queued, due": the pump should look again, a record may be due),
   * "dropped" (counted) or "full" (wait for roomGeneration to move). No allocation on the hot path;
   * `nowMs` is read only when batchEmpty (the shell skips the clock otherwise).
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
      if (this.outgoing === undefined) this.seal();
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

  /** The next action. Throws if one is still in flight: one I/O at a time by construction. */
  next(nowMs: number, input: WriterInput): WriterAction {
    if (this.inflight !== undefined) throw new Error(`assertion failed: next() with ${this.inflight} in flight`);
    const action = this.decide(nowMs, input);
    if (action.kind !== "sleep" && action.kind !== "stop") this.inflight = action.kind;
    return action;
  }

  /** The write or superblock write returned by next() completed. */
  completed(nowMs: number): void {
    const was = this.stateNow;
    this.inflight = undefined;
    if (this.closeReport !== undefined) return; // abandoned at the close timeout while this I/O hung
    if (was === WriterState.WritingRecord) {
      const builder = this.outgoing!;
      const blocks = builder.blocks;
      this.index.push({ seq: this.seq, startBlock: this.headBlock, blocks, noOverwrite: builder.noOverwrite });
      this.seq++;
      this.headBlock += blocks;
      if (this.headBlock >= this.ringBlocks) this.headBlock = 0;
      this.counters.records++;
      this.counters.bytesWritten += blocks * this.blockBytes;
      this.blocksSinceOpen += blocks;
      this.framesWritten += builder.frames;
      builder.reset();
      this.outgoing = undefined;
      this.statusStale = true;
      this.lastRecordMs = nowMs;
    } else if (was === WriterState.WritingPad) {
      this.seq++;
      this.counters.pads++;
      this.headBlock = 0;
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

  /** The owner check's superblock read returned: another writer or epoch on it stops this one. */
  superblockRead(nowMs: number, found: Pick<Superblock, "epoch" | "writerNode">, path: string): void {
    if (this.closeReport !== undefined) {
      this.inflight = undefined;
      return;
    }
    if (this.stateNow !== WriterState.CheckingOwner) throw new Error(`assertion failed: superblockRead() in state ${this.stateNow}`);
    this.inflight = undefined;
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

  /** A fatal error (I/O, not owner): stop; what was not written is reported, buffers are let go. */
  fail(error: unknown): LunlinkError {
    this.inflight = undefined;
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
      if (nowMs >= this.nextOwnerCheckMs && this.lastStatusMs !== Number.NEGATIVE_INFINITY) return this.enter(WriterState.CheckingOwner, { kind: "readSuperblock" });
      // The storage heartbeat goes first once per interval, even under a flood of records.
      if (nowMs >= this.lastStatusMs + this.o.statusIntervalMs) return this.writeStatus(input);
      if (this.outgoing !== undefined) return this.sendOutgoing(nowMs, input);
      const builder = this.current();
      if (builder.frames > 0 && this.recordDue(nowMs, builder, input)) {
        this.seal();
        continue;
      }
      if (this.queuedBytes > 0 && this.refill(nowMs)) continue;
      // Status: on the heartbeat interval, and once the writer has been idle STATUS_IDLE_MS with a new
      // head (not after every record: under load that would double the writes, and a status write
      // must not sit in front of the next record of a conversation).
      const statusIdleAtMs = this.statusStale ? this.lastRecordMs + STATUS_IDLE_MS : Number.POSITIVE_INFINITY;
      const statusDueAtMs = Math.min(statusIdleAtMs, this.lastStatusMs + this.o.statusIntervalMs);
      if (nowMs >= statusDueAtMs || (this.closeDeadlineMs !== undefined && this.statusStale)) return this.writeStatus(input);
      if (this.closeDeadlineMs !== undefined && builder.frames === 0 && this.queuedBytes === 0) {
        this.finish(WriterState.Closed);
        return { kind: "stop" };
      }
      this.stateNow = builder.frames > 0 ? WriterState.Batching : WriterState.Idle;
      const batchDueAtMs = builder.frames > 0 ? this.fillingSinceMs + this.o.maxDelayMs : Number.POSITIVE_INFINITY;
      return { kind: "sleep", untilMs: Math.min(batchDueAtMs, statusDueAtMs, this.nextOwnerCheckMs, this.closeDeadlineMs ?? Number.POSITIVE_INFINITY) };
    }
  }

  /** The filling record goes out; the other buffer starts filling. */
  private seal(): void {
    this.outgoing = this.current();
    this.filling = this.filling === 0 ? 1 : 0;
    this.roomGeneration++;
  }

  private recordDue(nowMs: number, builder: RecordBuilder, input: WriterInput): boolean {
    return (
      this.closeDeadlineMs !== undefined ||
      input.roomWanted ||
      this.flushTarget > this.framesWritten ||
      builder.bytes >= this.o.flushThresholdBytes ||
      nowMs - this.fillingSinceMs >= this.o.maxDelayMs ||
      !builder.fits(0) ||
      this.queuedBytes > 0
    );
  }

  /** Highest counters.framesAppended a flush() waits for (set by the shell). */
  flushTarget = 0;

  /** The sealed record: end the lap if it does not fit, free its space, rekey if due, write it. */
  private sendOutgoing(nowMs: number, input: WriterInput): WriterAction {
    const builder = this.outgoing!;
    const blocks = builder.blocks;
    const wraps = this.headBlock + blocks > this.ringBlocks;
    // Ending the lap frees everything up to the ring end: a reader following this lap skips it.
    const blocking = this.freeRange(this.headBlock, wraps ? this.ringBlocks - this.headBlock : blocks, input.peerAcks === undefined ? input.peerAck : this.peers.holdingAck(input.peerAcks));
    if (blocking !== undefined) return this.awaitAck(nowMs, blocking);
    if (this.seq >= MAX_SEQ) throw new LunlinkError(ErrorCode.OutOfRange, `sequence ${this.seq} reached 2^63; reformat the volume`); // the shell fails with it
    if (this.keys !== undefined && this.seq - this.superblockNow.epochStartSeq >= this.o.rekeyAfterRecords) return this.rekey();
    const B = this.blockBytes;
    if (wraps) {
      encodePad(this.padBlock, B, { volumeUuid: this.uuid, epoch: this.superblockNow.epoch, seq: this.seq, timestampMs: BigInt(Math.trunc(input.wallMs)) }, this.sealing(this.headBlock));
      return this.enter(WriterState.WritingPad, { kind: "write", what: "pad", offsetBytes: (RING_START_BLOCK + this.headBlock) * B, bytes: this.padBlock });
    }
    builder.finish({ volumeUuid: this.uuid, epoch: this.superblockNow.epoch, seq: this.seq, timestampMs: BigInt(Math.trunc(input.wallMs)) }, undefined, this.sealing(this.headBlock));
    const buffer = this.builders[0] === builder ? this.recordBuffers[0] : this.recordBuffers[1];
    return this.enter(WriterState.WritingRecord, {
      kind: "write",
      what: "record",
      offsetBytes: (RING_START_BLOCK + this.headBlock) * B,
      bytes: buffer.subarray(0, blocks * B),
      seq: this.seq,
      blocks,
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
    this.superblockNow = { ...this.superblockNow, epoch: this.superblockNow.epoch + 1n, epochStartSeq: this.seq, epochStartBlock: BigInt(this.headBlock), salt: this.entropy(32) };
    return this.enter(WriterState.Rekeying, { kind: "writeSuperblock", superblock: this.superblockNow });
  }

  private writeStatus(input: WriterInput): WriterAction {
    if (input.delivered !== undefined && (this.deliveredMark === undefined || newer(input.delivered, this.deliveredMark))) this.deliveredMark = input.delivered;
    const oldest = this.blocksSinceOpen < this.ringBlocks ? this.oldestAtOpen : (this.index.peek()?.seq ?? this.seq);
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
        headSeq: this.seq,
        headBlock: BigInt(this.headBlock),
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

  /** Where the machine rests after an I/O (a sealed record still going out counts as batching). */
  private restingState(): WriterState {
    return this.outgoing !== undefined || this.current().frames > 0 ? WriterState.Batching : WriterState.Idle;
  }

  private finish(state: WriterState): void {
    let frames = this.current().frames + (this.outgoing?.frames ?? 0);
    let bytes = this.current().bytes + (this.outgoing?.bytes ?? 0);
    for (const queue of this.queues.values()) {
      frames += queue.frames.length;
      bytes += queue.bytes;
      queue.frames.clear();
      queue.bytes = 0;
    }
    this.queuedBytes = 0;
    this.builders[0].reset();
    this.builders[1].reset();
    this.outgoing = undefined;
    this.index.clear();
    this.stateNow = state;
    this.closeReport = { unflushedFrames: frames, unflushedBytes: bytes, ...(this.failure === undefined ? {} : { error: this.failure }) };
  }

  private current(): RecordBuilder {
    return this.builders[this.filling];
  }

  /** Keyed: the epoch's cipher and the ring block a record goes to (both part of its AEAD). */
  private sealing(ringBlock: number): { cipher: RecordCipher; ringBlock: number } | undefined {
    return this.cipher === undefined ? undefined : { cipher: this.cipher, ringBlock };
  }
}
