// RingWriter: frames -> write buffer -> one record -> send volume.
// Pipeline: (1) append() copies a frame into the filling record buffer (or, while that is full, a
// bounded per-class overflow queue) -> (2) the pump seals the record when it reaches
// flushThresholdBytes or maxDelayMs passed -> (3) one O_DIRECT write at the head (pad + wrap at the
// ring end; flow control first) -> (4) status block (head, ack, heartbeat) -> sleep.
// Invariants: one write in flight per volume; sequences strictly increase and never repeat for the
// volume (a new epoch starts above every stamp on it); a record holding a control frame is never
// overwritten before the peer acked it; every queue is bounded. Keyed (auth): every record and pad is
// AEAD-sealed under the epoch's key, status and superblock are MACed, and the writer starts a new
// epoch (fresh salt, fresh key) before rekeyAfterRecords records in one epoch.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import { loadChecksums } from "../format/checksum.ts";
import { FRAME_HEADER_BYTES, FrameType, MAX_FRAME_BYTES, MAX_RECORD_BLOCKS, RING_START_BLOCK, STATUS_SLOT_BLOCKS, payloadCapacity } from "../format/layout.ts";
import { RecordBuilder, encodePad } from "../format/record.ts";
import { encodeStatus } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { uuidBytes } from "../format/uuid.ts";
import { ErrorCode, LunlinkError, integerOption, invalidArgument } from "../errors.ts";
import { AuthMode } from "../format/layout.ts";
import type { RecordCipher } from "../format/record-cipher.ts";
import type { Volume } from "../io/volume.ts";
import { MAX_SEQ, REKEY_AFTER_RECORDS, RingKeys, type RingAuth } from "./keys.ts";
import { scanRing } from "./scan.ts";
import { openSuperblock, writeSuperblock } from "./superblocks.ts";

export interface Ack {
  epoch: bigint;
  seq: bigint;
}

export interface RingWriterOptions {
  /** This host's node id; must be the superblock's writer unless takeOver. */
  nodeId: number;
  takeOver?: boolean;
  /** Seal a record once this many payload bytes are buffered (default 64 KiB). */
  flushThresholdBytes?: number;
  /** ... or once the oldest buffered frame waited this long (default 2 ms). */
  maxDelayMs?: number;
  /** Largest record in blocks (default 65, i.e. 256 KiB at B = 4096; at most 1024). */
  maxRecordBlocks?: number;
  /** Overflow bound per class while the record buffer is full (default 4 MiB each). */
  queueLimitBytes?: number;
  /**
   * When a heartbeat or data queue is full: "drop" the frame (counted; append resolves false), as a
   * network would (default), or "wait" for room (back-pressure). Control frames always wait.
   */
  fullQueue?: "drop" | "wait";
  /** Storage heartbeat: the status block is rewritten at least this often (default 100 ms). */
  statusIntervalMs?: number;
  /** Re-read the superblock this often and stop if another writer took the volume (default 1000 ms). */
  ownerCheckMs?: number;
  /**
   * May records of heartbeat and data frames be overwritten before the peer acked them (default
   * true, counted in overwrittenUnacked, as a network drops)? false: every record waits for its ack.
   * Records holding control frames always wait.
   */
  overwriteUnacked?: boolean;
  /**
   * Do records holding control frames wait for the peer's ack before being overwritten (default
   * true)? false only for a layer above that acks and retransmits control itself (the link does),
   * so a dead peer cannot stall the writer.
   */
  controlWaitsForAck?: boolean;
  /** The peer's ack of our records (from the peer's status block); undefined = nothing acked yet. */
  peerAck?: () => Ack | undefined;
  /** What we ack to the peer (highest (epoch, seq) received from it), written into our status block. */
  localAck?: () => Ack | undefined;
  /**
   * Keyed mode: records AEAD-sealed, status and superblock MACed under keys derived from auth.key.
   * The volume must have been formatted with the same key (otherwise ERR_LUNLINK_DOWNGRADE or
   * ERR_LUNLINK_WRONG_KEY); a keyed volume refuses a writer without it (ERR_LUNLINK_KEY_REQUIRED).
   */
  auth?: RingAuth;
  /** Keyed: start a new epoch (new key) before this many records in one epoch (default 2^48; tests lower it). */
  rekeyAfterRecords?: bigint;
}

export interface RingWriterCounters {
  framesAppended: number;
  framesDropped: number;
  records: number;
  pads: number;
  bytesWritten: number;
  statusWrites: number;
  /** Records overwritten before the peer acked them (heartbeat/data only; control never is). */
  overwrittenUnacked: number;
  /** Times the writer waited for an ack before overwriting a control record. */
  ackWaits: number;
  /** Keyed: epochs started in place to change the record key before rekeyAfterRecords. */
  rekeys: number;
}

interface Indexed {
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

export interface RingWriterEvents {
  error: [LunlinkError];
  flush: [seq: bigint, blocks: number];
  /** Every write the writer made to the volume (records, pads, status): what a mirror must copy. */
  write: [offsetBytes: number, lengthBytes: number, what: "record" | "pad" | "status" | "superblock"];
}

const CLASS_ORDER = [FrameType.Heartbeat, FrameType.Control, FrameType.Data] as const;
/** Idle time after the last record before the new head goes to the status block. */
const STATUS_IDLE_MS = 5;

export class RingWriter extends EventEmitter<RingWriterEvents> {
  readonly volume: Volume;
  readonly counters: RingWriterCounters = {
    framesAppended: 0,
    framesDropped: 0,
    records: 0,
    pads: 0,
    bytesWritten: 0,
    statusWrites: 0,
    overwrittenUnacked: 0,
    ackWaits: 0,
    rekeys: 0,
  };
  private superblock: Superblock;
  private readonly uuid: Uint8Array;
  private readonly B: number;
  private readonly ringBlocks: number;
  private readonly options: Required<Omit<RingWriterOptions, "peerAck" | "localAck" | "takeOver" | "auth">> & Pick<RingWriterOptions, "peerAck" | "localAck">;
  private readonly keys: RingKeys | undefined;
  private cipher: RecordCipher | undefined;
  private rotating = false;
  private builders: [RecordBuilder, RecordBuilder];
  private buffers: [Uint8Array, Uint8Array];
  private filling = 0;
  private fillingSinceMs = 0;
  private readonly overflow = new Map<number, { frames: Pending[]; head: number; bytes: number }>();
  private readonly index: Indexed[] = [];
  private indexHead = 0;
  private seq: bigint;
  private headBlock: number;
  private statusGeneration = 0n;
  private heartbeat = 0n;
  private lastStatusMs = 0;
  private closed = false;
  private failure: LunlinkError | undefined;
  private wake: (() => void) | undefined;
  private pump: Promise<void>;
  private readonly statusBlock: Uint8Array;
  private readonly padBlock: Uint8Array;
  private readonly timers: NodeJS.Timeout[] = [];
  private flushWaiters: (() => void)[] = [];
  private readonly spaceWaiters: (() => void)[] = [];

  /** Oldest record start seen at open: the status block's oldestSeq until a full lap replaced the ring. */
  private readonly oldestAtOpen: bigint;
  private blocksSinceOpen = 0;

  private constructor(volume: Volume, superblock: Superblock, options: RingWriter["options"], keys: RingKeys | undefined, seq: bigint, headBlock: number, oldestAtOpen: bigint) {
    super();
    this.volume = volume;
    this.superblock = superblock;
    this.keys = keys;
    this.cipher = keys?.recordCipher(superblock);
    this.uuid = uuidBytes(superblock.volumeUuid);
    this.B = superblock.blockBytes;
    this.ringBlocks = Number(superblock.ringBlocks);
    this.options = options;
    const maxBlocks = Math.min(options.maxRecordBlocks, this.ringBlocks - 1);
    this.buffers = [volume.alloc(maxBlocks * this.B), volume.alloc(maxBlocks * this.B)];
    this.builders = [new RecordBuilder(this.buffers[0], this.B, maxBlocks), new RecordBuilder(this.buffers[1], this.B, maxBlocks)];
    this.statusBlock = volume.alloc(this.B);
    this.padBlock = volume.alloc(this.B);
    this.seq = seq;
    this.headBlock = headBlock;
    this.oldestAtOpen = oldestAtOpen > 0n ? oldestAtOpen : seq;
    for (const type of CLASS_ORDER) this.overflow.set(type, { frames: [], head: 0, bytes: 0 });
    this.pump = this.run();
    this.timers.push(setInterval(() => this.kick(), options.statusIntervalMs).unref());
    this.timers.push(setInterval(() => void this.checkOwner(), options.ownerCheckMs).unref());
  }

  /** Opens the send volume for writing: checks ownership, starts a new epoch above every stamp on it. */
  static async open(volume: Volume, options: RingWriterOptions): Promise<RingWriter> {
    await loadChecksums();
    const resolved = resolveOptions(options);
    const keys = options.auth === undefined ? undefined : new RingKeys(options.auth);
    const { superblock } = await openSuperblock(volume, keys);
    if (keys === undefined && superblock.authMode === AuthMode.Keyed) {
      throw new LunlinkError(ErrorCode.KeyRequired, `${volume.path} is a keyed send volume (authMode keyed); a writer needs its ring key (auth.key)`, { path: volume.path });
    }
    if (superblock.writerNode !== options.nodeId) {
      if (options.takeOver !== true) {
        throw new LunlinkError(
          ErrorCode.NotOwner,
          `${volume.path} is the send volume of node ${superblock.writerNode}, not of node ${options.nodeId}; use --take-over if that node is gone for good`,
          { path: volume.path },
        );
      }
    }
    const scan = await scanRing(volume, superblock.blockBytes, superblock.ringBlocks);
    const startSeq = scan.highestSeq + 1n > superblock.epochStartSeq ? scan.highestSeq + 1n : superblock.epochStartSeq;
    const next: Superblock = {
      ...superblock,
      writerNode: options.nodeId,
      peerNode: superblock.peerNode === options.nodeId ? superblock.writerNode : superblock.peerNode,
      epoch: superblock.epoch + 1n,
      epochStartSeq: startSeq,
      epochStartBlock: scan.highestSeq > 0n ? scan.nextBlock : 0n,
      // Keyed: a fresh salt makes the epoch's record key fresh even if an epoch number came back.
      ...(keys === undefined ? {} : { salt: new Uint8Array(randomBytes(32)), keyId: keys.keyId }),
    };
    // The new epoch is durable before any record of it is written.
    await writeSuperblock(volume, next, keys);
    const writer = new RingWriter(volume, next, resolved, keys, startSeq, Number(next.epochStartBlock), scan.lowestStartSeq);
    // What the previous writer left is still owed to the reader: track it like our own records,
    // so a control record of an earlier epoch is not overwritten before the peer acked it.
    writer.index.push(...scan.records);
    await writer.writeStatus();
    return writer;
  }

  get epoch(): bigint {
    return this.superblock.epoch;
  }

  /** Bytes waiting: in the record being filled and in the class queues behind it (status: queue depth). */
  get queuedBytes(): number {
    return this.current().bytes + this.overflowBytes;
  }

  /** Next sequence to be written. */
  get headSeq(): bigint {
    return this.seq;
  }

  get error(): LunlinkError | undefined {
    return this.failure;
  }

  /**
   * Queues one frame without waiting: "queued" (in the write buffer, or in its class's overflow
   * queue), "dropped" (heartbeat/data with a full queue and fullQueue "drop"; counted) or "full"
   * (a control frame, or fullQueue "wait": call append() to wait for room). No promise, no
   * allocation while the frame fits the write buffer: this is the hot path.
   */
  tryAppend(type: FrameType, payload: Uint8Array, flags = 0): "queued" | "dropped" | "full" {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, `append ${this.volume.path}: the ring writer is closed`);
    if (type !== FrameType.Heartbeat && type !== FrameType.Control && type !== FrameType.Data) throw invalidArgument("type", "1 (heartbeat), 2 (control) or 3 (data)", type);
    const capacity = Math.min(MAX_FRAME_BYTES, payloadCapacity(this.B, this.builders[0].maxBlocks) - FRAME_HEADER_BYTES);
    if (payload.length > capacity) {
      throw new LunlinkError(ErrorCode.FrameTooLarge, `a frame of ${payload.length} bytes does not fit a record (at most ${capacity})`);
    }
    const builder = this.current();
    if (this.overflowBytes === 0 && builder.fits(payload.length)) {
      if (builder.frames === 0) this.fillingSinceMs = performance.now();
      builder.append(type, flags, payload, type === FrameType.Control && this.options.controlWaitsForAck);
      this.counters.framesAppended++;
      if (builder.frames === 1 || builder.bytes >= this.options.flushThresholdBytes) this.kick();
      return "queued";
    }
    // Back-pressured data waits for the next write buffer instead of being copied aside; heartbeat
    // and control go to their queues so they overtake waiting data at the next record.
    if (type === FrameType.Data && this.options.fullQueue === "wait") {
      this.sealNow = true; // a frame is waiting for room: do not hold the full buffer for maxDelayMs
      this.kick();
      return "full";
    }
    const queue = this.overflow.get(type)!;
    if (queue.bytes + payload.length > this.options.queueLimitBytes) {
      if (type !== FrameType.Control && this.options.fullQueue === "drop") {
        this.counters.framesDropped++;
        return "dropped";
      }
      return "full";
    }
    queue.frames.push({ type, flags, payload: payload.slice() });
    queue.bytes += payload.length;
    this.overflowBytes += payload.length + 1;
    this.counters.framesAppended++;
    this.kick();
    return "queued";
  }

  /**
   * Queues one frame, waiting for room when its queue is full and the policy says wait (control
   * frames always). Resolves true once queued (not yet durable: see flush()), false if dropped.
   */
  async append(type: FrameType, payload: Uint8Array, flags = 0): Promise<boolean> {
    for (;;) {
      const result = this.tryAppend(type, payload, flags);
      if (result !== "full") return result === "queued";
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
  }

  /** Resolves when everything appended so far is written (durable if the volume was opened dsync). */
  async flush(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.current().frames === 0 && this.overflowEmpty() && !this.writing) return;
    await new Promise<void>((resolve) => {
      this.flushWaiters.push(resolve);
      this.forceFlush = true;
      this.kick();
    });
    if (this.failure !== undefined) throw this.failure;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch(() => undefined);
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.kick();
    await this.pump;
  }

  private writing = false;
  private forceFlush = false;
  private statusStale = false;
  private sealNow = false;
  private lastRecordMs = 0;

  private current(): RecordBuilder {
    return this.filling === 0 ? this.builders[0] : this.builders[1];
  }

  /** Bytes (plus one per frame) in the overflow queues; 0 when they are all empty. */
  private overflowBytes = 0;

  private overflowEmpty(): boolean {
    return this.overflowBytes === 0;
  }

  private kick(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async run(): Promise<void> {
    while (!this.closed && this.failure === undefined) {
      try {
        const builder = this.current();
        const ageMs = builder.frames > 0 ? performance.now() - this.fillingSinceMs : 0;
        const due = builder.frames > 0 && (this.forceFlush || this.sealNow || builder.bytes >= this.options.flushThresholdBytes || ageMs >= this.options.maxDelayMs || !builder.fits(0) || !this.overflowEmpty());
        if (due) {
          await this.writeRecord();
          continue;
        }
        if (!this.overflowEmpty()) {
          this.refill(builder);
          continue;
        }
        if (this.forceFlush) {
          this.forceFlush = false;
          const waiters = this.flushWaiters;
          this.flushWaiters = [];
          for (const w of waiters) w();
        }
        // Status: on the heartbeat interval, and whenever the writer goes idle with a new head (not
        // after every record: under load that would double the writes).
        // A stale head is written once the writer has been idle for STATUS_IDLE_MS, so a status write
        // never sits in front of the next record of a conversation.
        const sinceStatusMs = performance.now() - this.lastStatusMs;
        const sinceRecordMs = performance.now() - this.lastRecordMs;
        if ((this.statusStale && sinceRecordMs >= STATUS_IDLE_MS) || sinceStatusMs >= this.options.statusIntervalMs) {
          await this.writeStatus();
          continue;
        }
        // Sleep until an append, a flush, the batching delay, the idle status write or the interval.
        const waitMs =
          builder.frames > 0
            ? Math.max(0, this.options.maxDelayMs - ageMs)
            : Math.max(0, Math.min(this.options.statusIntervalMs - sinceStatusMs, this.statusStale ? STATUS_IDLE_MS - sinceRecordMs : Number.POSITIVE_INFINITY));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            this.wake = undefined;
            resolve();
          }, waitMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      } catch (error) {
        this.fail(error);
      }
    }
    for (const w of this.flushWaiters.splice(0)) w();
    for (const w of this.spaceWaiters.splice(0)) w();
  }

  /** Moves queued frames into the (empty or partly filled) builder, highest class first. */
  private refill(builder: RecordBuilder): void {
    for (const type of CLASS_ORDER) {
      const queue = this.overflow.get(type)!;
      while (queue.head < queue.frames.length && builder.fits(queue.frames[queue.head]!.payload.length)) {
        const f = queue.frames[queue.head++]!;
        if (builder.frames === 0) this.fillingSinceMs = performance.now();
        builder.append(f.type, f.flags, f.payload, f.type === FrameType.Control && this.options.controlWaitsForAck);
        queue.bytes -= f.payload.length;
        this.overflowBytes -= f.payload.length + 1;
      }
      if (queue.head === queue.frames.length) {
        queue.frames.length = 0;
        queue.head = 0;
      }
    }
    for (const w of this.spaceWaiters.splice(0)) w();
  }

  private async writeRecord(): Promise<void> {
    const builder = this.current();
    this.filling = 1 - this.filling;
    this.writing = true;
    this.sealNow = false;
    for (const w of this.spaceWaiters.splice(0)) w(); // a fresh write buffer is open
    try {
      const blocks = builder.blocks;
      if (this.headBlock + blocks > this.ringBlocks) await this.wrap();
      await this.makeRoom(this.headBlock, blocks);
      await this.maybeRekey();
      const seq = this.seq;
      builder.finish({ volumeUuid: this.uuid, epoch: this.superblock.epoch, seq, timestampMs: BigInt(Date.now()) }, undefined, this.sealing(this.headBlock));
      const noOverwrite = builder.noOverwrite;
      const buffer = this.buffers[1 - this.filling]!;
      const startBlock = this.headBlock;
      await this.volume.write((RING_START_BLOCK + startBlock) * this.B, blocks * this.B === buffer.length ? buffer : buffer.subarray(0, blocks * this.B));
      this.index.push({ seq, startBlock: this.headBlock, blocks, noOverwrite });
      this.seq = seq + 1n;
      this.headBlock += blocks;
      if (this.headBlock >= this.ringBlocks) this.headBlock = 0;
      this.counters.records++;
      this.counters.bytesWritten += blocks * this.B;
      this.blocksSinceOpen += blocks;
      builder.reset();
      this.statusStale = true;
      this.lastRecordMs = performance.now();
      this.emit("write", (RING_START_BLOCK + startBlock) * this.B, blocks * this.B, "record");
      this.emit("flush", seq, blocks);
    } finally {
      this.writing = false;
    }
  }

  /**
   * Ends the lap: everything from the head to the ring end is the previous lap's tail, which a
   * reader following this lap will skip, so it is freed now (waiting for acks of control records
   * there, which is conservative); one pad block tells readers to continue at ring block 0.
   */
  private async wrap(): Promise<void> {
    await this.makeRoom(this.headBlock, this.ringBlocks - this.headBlock);
    if (this.headBlock < this.ringBlocks) {
      await this.maybeRekey();
      encodePad(this.padBlock, this.B, { volumeUuid: this.uuid, epoch: this.superblock.epoch, seq: this.seq, timestampMs: BigInt(Date.now()) }, this.sealing(this.headBlock));
      await this.volume.write((RING_START_BLOCK + this.headBlock) * this.B, this.padBlock);
      this.emit("write", (RING_START_BLOCK + this.headBlock) * this.B, this.B, "pad");
      this.seq++;
      this.counters.pads++;
    }
    this.headBlock = 0;
  }

  /**
   * Frees ring blocks [start, start+blocks) before they are overwritten. The records there are the
   * oldest in the index (the ring is written in order), so they are taken from its front: a control
   * record is waited on until the peer acks it; others are counted if unacked.
   */
  private async makeRoom(start: number, blocks: number): Promise<void> {
    while (this.indexHead < this.index.length) {
      const oldest = this.index[this.indexHead]!;
      if (!(oldest.startBlock < start + blocks && oldest.startBlock + oldest.blocks > start)) break;
      if (!this.acked(oldest.seq)) {
        if (oldest.noOverwrite || !this.options.overwriteUnacked) {
          this.counters.ackWaits++;
          while (!this.acked(oldest.seq)) {
            if (this.closed || this.failure !== undefined) throw this.failure ?? new LunlinkError(ErrorCode.Closed, "ring writer closed while waiting for an ack");
            // Keep the heartbeat and head current while waiting: the reader needs them to decide
            // that a slot it is stuck on is damaged, which is what frees this wait.
            if (performance.now() - this.lastStatusMs >= this.options.statusIntervalMs) await this.writeStatus();
            await new Promise((r) => setTimeout(r, 1));
          }
        } else {
          this.counters.overwrittenUnacked++;
        }
      }
      this.indexHead++;
    }
    // Keep the index bounded: drop freed entries in one splice now and then.
    if (this.indexHead > 1024 && this.indexHead * 2 > this.index.length) {
      this.index.splice(0, this.indexHead);
      this.indexHead = 0;
    }
  }

  /** Keyed: the epoch's cipher and the ring block a record goes to (both part of its AEAD). */
  private sealing(ringBlock: number): { cipher: RecordCipher; ringBlock: number } | undefined {
    return this.cipher === undefined ? undefined : { cipher: this.cipher, ringBlock };
  }

  /**
   * Keyed: before the epoch's record count reaches rekeyAfterRecords, start a new epoch in place
   * (fresh salt, so a fresh record key), durable before its first record, as at open. Readers
   * follow it as any epoch change at the same position.
   */
  private async maybeRekey(): Promise<void> {
    if (this.seq >= MAX_SEQ) throw new LunlinkError(ErrorCode.OutOfRange, `${this.volume.path}: sequence ${this.seq} reached 2^63; reformat the volume`, { path: this.volume.path });
    if (this.keys === undefined || this.seq - this.superblock.epochStartSeq < this.options.rekeyAfterRecords) return;
    const next: Superblock = {
      ...this.superblock,
      epoch: this.superblock.epoch + 1n,
      epochStartSeq: this.seq,
      epochStartBlock: BigInt(this.headBlock),
      salt: new Uint8Array(randomBytes(32)),
    };
    this.rotating = true;
    try {
      await writeSuperblock(this.volume, next, this.keys);
    } finally {
      this.rotating = false;
    }
    this.superblock = next;
    this.cipher = this.keys.recordCipher(next);
    this.counters.rekeys++;
    const lastBlock = Number(next.volumeBlocks - 1n);
    this.emit("write", lastBlock * this.B, this.B, "superblock");
    this.emit("write", 0, this.B, "superblock");
  }

  /** Sequences never repeat on a volume, so the seq alone says whether the peer has a record. */
  private acked(seq: bigint): boolean {
    const ack = this.options.peerAck?.();
    return ack !== undefined && ack.epoch <= this.superblock.epoch && ack.seq >= seq;
  }

  private async writeStatus(): Promise<void> {
    const ack = this.options.localAck?.();
    const oldest =
      this.blocksSinceOpen < this.ringBlocks ? this.oldestAtOpen : this.indexHead < this.index.length ? this.index[this.indexHead]!.seq : this.seq;
    this.statusGeneration++;
    this.heartbeat++;
    const slot = Number(this.statusGeneration % 2n) as 0 | 1;
    encodeStatus(
      {
        slot,
        volumeUuid: this.superblock.volumeUuid,
        epoch: this.superblock.epoch,
        generation: this.statusGeneration,
        headSeq: this.seq,
        headBlock: BigInt(this.headBlock),
        oldestSeq: oldest,
        ackEpoch: ack?.epoch ?? 0n,
        ackSeq: ack?.seq ?? 0n,
        heartbeat: this.heartbeat,
        deliveredEpoch: ack?.epoch ?? 0n,
        deliveredSeq: ack?.seq ?? 0n,
        wallClockMs: BigInt(Date.now()),
      },
      this.statusBlock,
      this.keys?.statusMac,
    );
    this.statusStale = false;
    await this.volume.write(STATUS_SLOT_BLOCKS[slot] * this.B, this.statusBlock);
    this.emit("write", STATUS_SLOT_BLOCKS[slot] * this.B, this.B, "status");
    this.lastStatusMs = performance.now();
    this.counters.statusWrites++;
  }

  private async checkOwner(): Promise<void> {
    if (this.closed || this.failure !== undefined || this.rotating) return;
    const rekeys = this.counters.rekeys;
    try {
      const { superblock } = await openSuperblock(this.volume, this.keys);
      if (this.rotating || this.counters.rekeys !== rekeys) return; // our own new epoch raced the read
      if (superblock.epoch !== this.superblock.epoch || superblock.writerNode !== this.superblock.writerNode) {
        this.fail(
          new LunlinkError(
            ErrorCode.NotOwner,
            `${this.volume.path}: node ${superblock.writerNode} took the volume over (epoch ${superblock.epoch}, ours ${this.superblock.epoch}); this writer stops`,
            { path: this.volume.path },
          ),
        );
      }
    } catch (error) {
      this.fail(error);
    }
  }

  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error instanceof LunlinkError ? error : new LunlinkError(ErrorCode.System, String(error), { cause: error });
    for (const timer of this.timers) clearInterval(timer);
    this.kick();
    if (this.listenerCount("error") > 0) this.emit("error", this.failure);
  }
}

function resolveOptions(o: RingWriterOptions): RingWriter["options"] {
  if (!Number.isInteger(o.nodeId) || o.nodeId < 1 || o.nodeId > 0xffffffff) throw invalidArgument("nodeId", "an integer in 1..4294967295", o.nodeId);
  const resolved: RingWriter["options"] = {
    nodeId: o.nodeId,
    flushThresholdBytes: integerOption("flushThresholdBytes", o.flushThresholdBytes, 64 * 1024, 1, 64 * 1024 * 1024),
    maxDelayMs: integerOption("maxDelayMs", o.maxDelayMs, 2, 0, 10_000),
    maxRecordBlocks: integerOption("maxRecordBlocks", o.maxRecordBlocks, 65, 1, MAX_RECORD_BLOCKS),
    queueLimitBytes: integerOption("queueLimitBytes", o.queueLimitBytes, 4 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    statusIntervalMs: integerOption("statusIntervalMs", o.statusIntervalMs, 100, 1, 60_000),
    ownerCheckMs: integerOption("ownerCheckMs", o.ownerCheckMs, 1000, 10, 600_000),
    overwriteUnacked: o.overwriteUnacked ?? true,
    controlWaitsForAck: o.controlWaitsForAck ?? true,
    fullQueue: o.fullQueue ?? "drop",
    rekeyAfterRecords: o.rekeyAfterRecords ?? REKEY_AFTER_RECORDS,
  };
  if (resolved.rekeyAfterRecords < 1n || resolved.rekeyAfterRecords > REKEY_AFTER_RECORDS) {
    throw invalidArgument("rekeyAfterRecords", `a bigint in 1..2^48`, o.rekeyAfterRecords);
  }
  if (o.peerAck !== undefined) resolved.peerAck = o.peerAck;
  if (o.localAck !== undefined) resolved.localAck = o.localAck;
  return resolved;
}
