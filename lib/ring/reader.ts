// RingReader: reads the peer's ring on the receive volume, record by record, following the decision
// table in docs/format.md. poll() makes one attempt at the expected position and says what it found;
// it never delivers a record that failed a check, and never stalls forever behind a damaged one.
// Pipeline: read expected block -> classify stamp/header -> read the rest -> verify -> deliver frames
// in order -> advance (pad: wrap to ring block 0).
// Keyed (auth): superblock and status are used only once their MAC verified, a record only once its
// AEAD tag verified; every decision (epoch, overrun, damage skip, ack) comes from authenticated bytes,
// stamps are mere hints checked by authentication. Forged, unauthenticated and replayed content is
// counted (authFailures, downgrades, replays) and treated as torn or skipped, never delivered, and
// nothing an attacker writes makes poll() throw. Records at or below notBefore / the last delivered
// (epoch, seq) are refused (anti-replay across restarts).
import { performance } from "node:perf_hooks";

import { loadChecksums } from "../format/checksum.ts";
import { AuthMode, FrameType, MAX_FRAME_BYTES, MAX_RECORD_BLOCKS, RING_START_BLOCK, RecordFlag, RecordKind, STATUS_SLOT_BLOCKS } from "../format/layout.ts";
import type { RecordCipher } from "../format/record-cipher.ts";
import { checkBody, checkFirstBlock, forEachFrame, readStamp, type BodyAuth, type RecordHeader } from "../format/record.ts";
import { decodeStatus, pickStatus, type StatusBlock } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { uuidBytes } from "../format/uuid.ts";
import { ErrorCode, LunlinkError, invalidArgument } from "../errors.ts";
import type { Volume } from "../io/volume.ts";
import { RingKeys, type RingAuth } from "./keys.ts";
import { scanRing } from "./scan.ts";
import { openSuperblock } from "./superblocks.ts";

export interface RingReaderOptions {
  /** This node: the receive volume's superblock must name it as the peer. */
  nodeId: number;
  /** The expected writer; default: whatever the superblock names (not the local node). */
  peerNodeId?: number;
  /** The expected pair UUID, if configured. */
  pairUuid?: string;
  /**
   * Where to begin: the writer's head (default: only new records), the oldest intact, a seq, or a
   * restart after the ack this node persisted: records after it are read again, but only their
   * control frames are delivered; data written before the restart is stale and dropped (counted).
   */
  start?: "head" | "oldest" | { seq: bigint } | { afterAck: bigint };
  /** A slot that stays invalid this long while the writer is past it is damaged and skipped (default 1000 ms). */
  damageTimeoutMs?: number;
  /** Bound of the resync scan for a sequence, in blocks (default: the whole ring). */
  scanLimitBlocks?: number;
  /**
   * Keyed mode: verify everything under keys derived from auth.key. A volume without authentication
   * is refused (ERR_LUNLINK_DOWNGRADE), one keyed under another key too (ERR_LUNLINK_WRONG_KEY).
   */
  auth?: RingAuth;
  /**
   * Keyed: the highest (epoch, seq) delivered before (what the link persisted): records at or below it
   * are refused and counted in `replays`, so an old epoch restored onto the volume is never delivered again.
   */
  notBefore?: { epoch: bigint; seq: bigint };
  /**
   * Keyless mirrors: check only the plaintext framing (stamps, header CRC32C; XXH3 of unkeyed
   * records) and deliver no frames; required to follow a keyed ring without its key.
   */
  framingOnly?: boolean;
}

export type FrameVisitor = (seq: bigint, type: number, flags: number, bytes: Uint8Array, offset: number, length: number) => void;

/** Sees each verified record (pads too) as raw blocks, before its frames: the mirror copies these. */
export type RecordVisitor = (record: Uint8Array, ringBlock: number, seq: bigint) => void | Promise<void>;

export type PollOutcome =
  | "delivered" // a valid record: its frames were visited
  | "pad" // end of lap: continued at ring block 0
  | "waiting" // nothing new (empty, older lap, stale epoch, torn while being written)
  | "overrun" // the writer lapped the reader: lost records counted, resynced
  | "damaged" // a record stayed invalid past damageTimeoutMs: counted and skipped
  | "refused" // keyed: an authentic record at or below notBefore / the last delivered: counted in replays, skipped
  | "epoch"; // the writer started a new epoch: resumed at its start

export interface RingReaderCounters {
  records: number;
  frames: number;
  pads: number;
  lost: bigint;
  overruns: number;
  damaged: number;
  tornSeen: number;
  epochChanges: number;
  /** Data frames dropped because they were written before a reader restart (start: afterAck). */
  staleDataDropped: number;
  /** Keyed: superblock, status or record whose MAC/tag failed (forged, other key, flipped, moved). */
  authFailures: number;
  /** Keyed: unauthenticated content where keyed content belongs (status without MAC, record without the flag). */
  downgrades: number;
  /** Keyed: authentic but old content refused (records <= notBefore/delivered, older status or superblock). */
  replays: number;
}

/** Read-ahead grows from MIN to MAX while records arrive back to back; it stops when caught up. */
const READ_AHEAD_MIN_BYTES = 64 * 1024;
const READ_AHEAD_MAX_BYTES = 1024 * 1024;
/** At most this many epochs' record keys are kept (the current one and those whose records may still be read). */
const MAX_EPOCH_KEYS = 4;

export class RingReader {
  readonly volume: Volume;
  readonly counters: RingReaderCounters = {
    records: 0,
    frames: 0,
    pads: 0,
    lost: 0n,
    overruns: 0,
    damaged: 0,
    tornSeen: 0,
    epochChanges: 0,
    staleDataDropped: 0,
    authFailures: 0,
    downgrades: 0,
    replays: 0,
  };
  private superblock: Superblock;
  private uuid: Uint8Array;
  private readonly B: number;
  private readonly ringBlocks: number;
  private readonly damageTimeoutMs: number;
  /** Next expected (epoch, seq) and the ring block it is at. */
  epoch: bigint;
  seq: bigint;
  block: number;
  /** The expected block as last read (the baseline a watch compares against). */
  readonly firstBlock: Uint8Array;
  private readonly record: Uint8Array;
  private readonly scratch = new Uint8Array(MAX_FRAME_BYTES);
  private invalidSinceMs: number | undefined;
  /** Data frames of records below this seq were written before a restart: not delivered. */
  private dropDataBelowSeq = 0n;
  private lastStatus: StatusBlock | undefined;
  /** Read-ahead window (readRing): bytes of the ring from aheadOffset, and the size of the next one. */
  private ahead: Uint8Array | undefined;
  private aheadOffset = 0;
  private aheadLength = 0;
  private aheadBytes = 0;
  private streak = 0;
  private readonly keys: RingKeys | undefined;
  private readonly framingOnly: boolean;
  /** Keyed: record ciphers of the epochs seen (bounded by MAX_EPOCH_KEYS). */
  private readonly ciphers = new Map<bigint, RecordCipher>();
  /** Anti-replay high-water mark: notBefore, then the last record delivered. */
  private highWater: { epoch: bigint; seq: bigint };

  private constructor(volume: Volume, superblock: Superblock, options: RingReaderOptions, keys: RingKeys | undefined) {
    this.volume = volume;
    this.superblock = superblock;
    this.keys = keys;
    this.framingOnly = options.framingOnly === true;
    this.highWater = options.notBefore === undefined ? { epoch: 0n, seq: 0n } : { ...options.notBefore };
    this.addCipher(superblock);
    this.uuid = uuidBytes(superblock.volumeUuid);
    this.B = superblock.blockBytes;
    this.ringBlocks = Number(superblock.ringBlocks);
    this.damageTimeoutMs = options.damageTimeoutMs ?? 1000;
    this.epoch = superblock.epoch;
    this.seq = superblock.epochStartSeq;
    this.block = Number(superblock.epochStartBlock);
    this.firstBlock = volume.alloc(this.B);
    this.record = volume.alloc(Math.min(MAX_RECORD_BLOCKS, this.ringBlocks) * this.B);
  }

  static async open(volume: Volume, options: RingReaderOptions): Promise<RingReader> {
    await loadChecksums();
    if (!Number.isInteger(options.nodeId) || options.nodeId < 1) throw invalidArgument("nodeId", "an integer in 1..4294967295", options.nodeId);
    if (options.auth !== undefined && options.framingOnly === true) throw invalidArgument("framingOnly", "false with auth (a keyed reader verifies everything)", true);
    if (options.notBefore !== undefined && options.auth === undefined) throw invalidArgument("notBefore", "given only with auth (anti-replay needs authentication)", options.notBefore);
    const keys = options.auth === undefined ? undefined : new RingKeys(options.auth);
    const { superblock } = await openSuperblock(volume, keys);
    if (keys === undefined && superblock.authMode === AuthMode.Keyed && options.framingOnly !== true) {
      throw new LunlinkError(ErrorCode.KeyRequired, `${volume.path} is a keyed volume (authMode keyed): reading its frames needs the ring key (auth.key)`, { path: volume.path });
    }
    const wrong = (why: string): LunlinkError =>
      new LunlinkError(ErrorCode.WrongPair, `${volume.path} cannot be node ${options.nodeId}'s receive volume: ${why}`, { path: volume.path });
    if (superblock.writerNode === options.nodeId) throw wrong(`it is node ${options.nodeId}'s own send volume`);
    if (superblock.peerNode !== options.nodeId) throw wrong(`it is written by node ${superblock.writerNode} for node ${superblock.peerNode}`);
    if (options.peerNodeId !== undefined && superblock.writerNode !== options.peerNodeId) throw wrong(`its writer is node ${superblock.writerNode}, expected ${options.peerNodeId}`);
    if (options.pairUuid !== undefined && superblock.pairUuid !== options.pairUuid) throw wrong(`it belongs to pair ${superblock.pairUuid}, expected ${options.pairUuid}`);
    const reader = new RingReader(volume, superblock, options, keys);
    const status = await reader.readStatus();
    const start = options.start ?? "head";
    if (start === "head") {
      if (status !== undefined && status.epoch === superblock.epoch) reader.jump(status.headSeq, Number(status.headBlock));
    } else if (start === "oldest") {
      if (status !== undefined) await reader.seek(status.oldestSeq, options.scanLimitBlocks);
    } else if ("afterAck" in start) {
      // Everything on the volume now predates the restart: the status head may lag, the stamps do not.
      // Keyed: stamps are not authenticated, so the (authenticated) status head decides.
      if (keys === undefined) reader.dropDataBelowSeq = (await scanRing(volume, superblock.blockBytes, superblock.ringBlocks)).highestSeq + 1n;
      else reader.dropDataBelowSeq = status?.headSeq ?? superblock.epochStartSeq;
      await reader.seek(start.afterAck + 1n, options.scanLimitBlocks);
    } else {
      await reader.seek(start.seq, options.scanLimitBlocks);
    }
    return reader;
  }

  /** The peer's status block (its head, its ack of our records, its heartbeat); cached as lastStatus. */
  async readStatus(): Promise<StatusBlock | undefined> {
    const mac = this.keys?.statusMac ?? (this.superblock.authMode === AuthMode.Keyed ? "unverified" : undefined);
    const a = decodeStatus(await this.volume.read(STATUS_SLOT_BLOCKS[0] * this.B, this.B), mac);
    const b = decodeStatus(await this.volume.read(STATUS_SLOT_BLOCKS[1] * this.B, this.B), mac);
    if (this.keys !== undefined) {
      for (const slot of [a, b]) {
        if (!slot.ok && slot.reason === "auth") this.counters.authFailures++;
        if (!slot.ok && slot.reason === "downgrade") this.counters.downgrades++;
      }
    }
    const status = pickStatus(a, b);
    if (this.keys !== undefined && status !== undefined && this.lastStatus !== undefined && status.volumeUuid === this.lastStatus.volumeUuid) {
      // An authentic status older than one already seen was restored onto the volume: ignored.
      const last = this.lastStatus;
      if (status.epoch < last.epoch || (status.epoch === last.epoch && status.generation < last.generation)) {
        this.counters.replays++;
        return last;
      }
    }
    // Keyed: a status of an epoch before the verified superblock's is old (a mirror that has not copied
    // the new one yet, or a restore): no decision is taken from it.
    if (this.keys !== undefined && status !== undefined && status.epoch < this.epoch) return this.lastStatus?.epoch === this.epoch ? this.lastStatus : undefined;
    if (status !== undefined && status.volumeUuid !== this.superblock.volumeUuid) {
      // Another volume's status: the volume was reformatted (or swapped) under us.
      const superblock = await this.verifiedSuperblock();
      if (superblock !== undefined && superblock.volumeUuid !== this.superblock.volumeUuid) this.foreign(superblock.volumeUuid);
      return this.lastStatus;
    }
    if (status !== undefined) this.lastStatus = status;
    return this.lastStatus;
  }

  /**
   * Re-reads the peer's status block; if the writer has moved to a newer epoch (it restarted while
   * we waited at a slot it will never fill), resumes at that epoch's start.
   */
  async refresh(): Promise<PollOutcome | undefined> {
    const status = await this.readStatus();
    if (status !== undefined && status.epoch > this.epoch) return this.epochChange(status.epoch);
    return undefined;
  }

  get status(): StatusBlock | undefined {
    return this.lastStatus;
  }

  /**
   * What to ack to the writer: everything below the expected seq has been delivered or declared
   * lost, so the writer may reuse its space (acking only delivered records would leave a writer
   * waiting forever for a record the reader skipped as damaged).
   */
  get ack(): { epoch: bigint; seq: bigint } {
    return { epoch: this.epoch, seq: this.seq - 1n };
  }

  /** Byte offset of the expected block on the volume. */
  get expectedOffset(): number {
    return (RING_START_BLOCK + this.block) * this.B;
  }

  /**
   * One attempt at the expected position. `fresh` says firstBlock already holds the block as just
   * read (after a watch); otherwise it is read here.
   */
  async poll(visit: FrameVisitor, fresh = false, onRecord?: RecordVisitor): Promise<PollOutcome> {
    if (fresh) this.aheadLength = 0; // a watch just read the slot: anything read ahead before is older
    const outcome = await this.pollOnce(visit, fresh, onRecord);
    if (outcome === "delivered" || outcome === "pad") {
      // From the second record in a row: a single record (a quiet conversation) reads nothing extra.
      if (this.streak++ > 0) this.aheadBytes = Math.min(READ_AHEAD_MAX_BYTES, Math.max(2 * this.aheadBytes, READ_AHEAD_MIN_BYTES));
    } else {
      this.streak = 0;
      // Caught up (or something to sort out): read only what is needed, fresh, from here on.
      this.aheadBytes = 0;
      this.aheadLength = 0;
    }
    return outcome;
  }

  /**
   * Reads ring bytes at `offset` into `target`, through a read-ahead window: while records keep
   * arriving back to back (a backlog) one large read serves several of them, instead of two reads
   * per record. A window is only ever older than the volume, never newer, so the worst it can show
   * is a slot not yet written (or a record half written at the time of the read): poll() then drops
   * the window and the next attempt reads fresh.
   */
  private async readRing(offset: number, target: Uint8Array): Promise<void> {
    if (this.ahead !== undefined && this.aheadLength > 0 && offset >= this.aheadOffset && offset + target.length <= this.aheadOffset + this.aheadLength) {
      const at = offset - this.aheadOffset;
      target.set(this.ahead.subarray(at, at + target.length));
      return;
    }
    const ringEndBytes = (RING_START_BLOCK + this.ringBlocks) * this.B;
    const length = Math.min(Math.max(target.length, this.aheadBytes), ringEndBytes - offset);
    if (length <= target.length) {
      this.aheadLength = 0;
      await this.volume.read(offset, target);
      return;
    }
    this.ahead ??= this.volume.alloc(READ_AHEAD_MAX_BYTES);
    const view = this.ahead.subarray(0, length);
    await this.volume.read(offset, view);
    this.aheadOffset = offset;
    this.aheadLength = length;
    target.set(view.subarray(0, target.length));
  }

  private async pollOnce(visit: FrameVisitor, fresh: boolean, onRecord: RecordVisitor | undefined): Promise<PollOutcome> {
    if (!fresh) await this.readRing(this.expectedOffset, this.firstBlock);
    const first = checkFirstBlock(this.firstBlock, this.B, this.seq, this.uuid);
    switch (first.kind) {
      case "empty":
      case "older":
        // Below the current epoch's first seq nothing new will ever be written: the previous writer
        // stopped before this seq. Wait out a lagging mirror (damageTimeoutMs), then move on.
        if (this.seq < this.superblock.epochStartSeq) return this.endOfEpoch();
        // The writer says it is past this seq, yet the slot holds nothing of it: damaged.
        if (this.lastStatus !== undefined && this.lastStatus.epoch === this.epoch && this.lastStatus.headSeq > this.seq + 1n) return this.maybeDamaged();
        this.invalidSinceMs = undefined;
        return "waiting";
      case "newer":
        return this.keys === undefined ? this.overrun(first.seq) : this.verifiedOverrun(first.seq);
      case "foreign":
        if (this.keys === undefined) return this.foreign(first.volumeUuid);
        // Keyed: a CRC-valid header proves nothing; only an authenticated status or superblock may say foreign.
        return this.invalid("authFailures");
      case "torn":
        return this.invalid("tornSeen");
      case "header":
        break;
    }
    const header = first.header;
    if (this.keys !== undefined && (header.flags & RecordFlag.Authenticated) === 0) {
      return this.invalid("downgrades");
    }
    // Sequences never repeat on a volume, so the record holding the expected seq is the one we want
    // whatever its epoch, provided the epochs agree with the superblock: an older epoch's record must
    // lie below the current epoch's first seq; a newer epoch means the writer restarted.
    if (header.epoch > this.epoch) {
      const outcome = await this.epochChange(header.epoch);
      // Keyed: a header's epoch is a claim until the verified superblock confirms it.
      return outcome === "waiting" && this.keys !== undefined ? this.maybeDamaged() : outcome;
    }
    if (header.epoch < this.epoch && header.seq >= this.superblock.epochStartSeq) return this.maybeDamaged();
    if (this.block + header.blockCount > this.ringBlocks) return this.maybeDamaged();
    if (header.blockCount > 1) {
      const rest = this.record.subarray(0, header.blockCount * this.B);
      rest.set(this.firstBlock, 0);
      await this.readRing(this.expectedOffset + this.B, rest.subarray(this.B));
    } else {
      this.record.set(this.firstBlock, 0);
    }
    const auth = this.bodyAuth(header.epoch, this.block);
    if (this.keys !== undefined && auth === undefined) {
      // Keyed, an older epoch whose superblock this reader never saw (it missed a whole epoch): its
      // records can never be verified. The verified superblock says where the current epoch starts:
      // continue there, counting the rest of the old epochs lost.
      this.counters.tornSeen++;
      if (this.seq >= this.superblock.epochStartSeq) return this.maybeDamaged();
      this.counters.lost += this.superblock.epochStartSeq - this.seq;
      this.jump(this.superblock.epochStartSeq, Number(this.superblock.epochStartBlock));
      return "epoch";
    }
    const body = checkBody(this.record, this.B, header, auth);
    switch (body.kind) {
      case "valid":
        break;
      case "newer":
        if (this.keys === undefined) return this.overrun(body.seq);
        return this.invalid("tornSeen"); // a later block's stamp is no authenticated evidence of an overrun
      case "auth":
        return this.invalid("authFailures");
      case "downgrade":
        return this.invalid("downgrades");
      case "torn":
        return this.invalid("tornSeen");
    }
    this.invalidSinceMs = undefined;
    if (this.keys !== undefined && this.replayed(header)) {
      this.counters.replays++;
      if (header.kind === RecordKind.Pad) this.jump(this.seq + 1n, 0);
      else this.advance(header.blockCount);
      return "refused";
    }
    if (onRecord !== undefined) await onRecord(this.record.subarray(0, header.blockCount * this.B), this.block, this.seq);
    if (header.kind === RecordKind.Pad) {
      this.counters.pads++;
      this.jump(this.seq + 1n, 0);
      return "pad";
    }
    const seq = this.seq;
    if (this.framingOnly) {
      // A mirror: frames are not its business (and are ciphertext in a keyed ring).
      this.counters.records++;
      this.advance(header.blockCount);
      return "delivered";
    }
    const stale = seq < this.dropDataBelowSeq;
    const problem = forEachFrame(this.record, this.B, header, this.scratch, (type, flags, bytes, offset, length) => {
      if (stale && type === FrameType.Data) {
        this.counters.staleDataDropped++;
        return;
      }
      this.counters.frames++;
      visit(seq, type, flags, bytes, offset, length);
    });
    if (problem !== undefined) {
      // Checksums passed but the frames do not parse: a writer bug or a forgery. Never deliver more.
      this.counters.damaged++;
      this.advance(header.blockCount);
      return "damaged";
    }
    this.counters.records++;
    if (this.keys !== undefined) this.highWater = { epoch: header.epoch, seq };
    this.advance(header.blockCount);
    return "delivered";
  }

  /**
   * The highest authenticated (epoch, seq) delivered (or notBefore, if nothing since): what the
   * link persists and passes back as notBefore after a restart.
   */
  get delivered(): { epoch: bigint; seq: bigint } {
    return { ...this.highWater };
  }

  /** Keyed anti-replay: at or below the high-water mark (seqs never repeat, so the seq alone also decides). */
  private replayed(header: RecordHeader): boolean {
    const mark = this.highWater;
    return header.seq <= mark.seq || header.epoch < mark.epoch;
  }

  /** How checkBody checks a record of `epoch` at `ringBlock` (keyless: XXH3 or framing; keyed: undefined when that epoch's key is unknown). */
  private bodyAuth(epoch: bigint, ringBlock: number): BodyAuth | undefined {
    if (this.keys === undefined) return this.framingOnly ? "framing" : undefined;
    const cipher = this.ciphers.get(epoch);
    return cipher === undefined ? undefined : { cipher, ringBlock };
  }

  private addCipher(superblock: Superblock): void {
    if (this.keys === undefined || this.ciphers.has(superblock.epoch)) return;
    this.ciphers.set(superblock.epoch, this.keys.recordCipher(superblock));
    while (this.ciphers.size > MAX_EPOCH_KEYS) {
      let oldest: bigint | undefined;
      for (const epoch of this.ciphers.keys()) if (oldest === undefined || epoch < oldest) oldest = epoch;
      this.ciphers.delete(oldest!);
    }
  }

  /**
   * Keyed: whether an authentic record of `seq` starts at `block` (stamps, header, every block, AEAD,
   * epoch rules). Reads into the record buffer. What positions a keyed reader after an overrun or a
   * damaged slot, so an attacker's stamps cannot steer it.
   */
  private async authenticAt(block: number, seq: bigint): Promise<boolean> {
    const first = this.record.subarray(0, this.B);
    await this.volume.read((RING_START_BLOCK + block) * this.B, first);
    const verdict = checkFirstBlock(first, this.B, seq, this.uuid);
    if (verdict.kind !== "header") return false;
    const header = verdict.header;
    if ((header.flags & RecordFlag.Authenticated) === 0 || header.epoch > this.epoch) return false;
    if (header.epoch < this.epoch && header.seq >= this.superblock.epochStartSeq) return false;
    if (block + header.blockCount > this.ringBlocks) return false;
    const auth = this.bodyAuth(header.epoch, block);
    if (auth === undefined) return false;
    if (header.blockCount > 1) await this.volume.read((RING_START_BLOCK + block + 1) * this.B, this.record.subarray(this.B, header.blockCount * this.B));
    const body = checkBody(this.record, this.B, header, auth);
    if (body.kind === "auth") this.counters.authFailures++;
    return body.kind === "valid";
  }

  /**
   * Keyed overrun: a newer stamp is a claim. It is believed when the record it belongs to verifies
   * (the writer wrote it there, so it lapped us), or when the authenticated status says the oldest
   * intact record is past ours; otherwise the slot is treated as torn.
   */
  private async verifiedOverrun(newerSeq: bigint): Promise<PollOutcome> {
    const stamp = readStamp(this.firstBlock, 0);
    if (stamp !== undefined && stamp.seq === newerSeq && stamp.blockIndex <= this.block) {
      const start = this.block - stamp.blockIndex;
      if (await this.authenticAt(start, newerSeq)) {
        this.counters.overruns++;
        this.counters.lost += newerSeq - this.seq;
        this.jump(newerSeq, start);
        return "overrun";
      }
    }
    const status = await this.readStatus();
    if (status !== undefined && status.epoch === this.epoch && status.oldestSeq > this.seq && status.headSeq > this.seq) {
      this.counters.overruns++;
      this.counters.lost += status.headSeq - this.seq;
      this.jump(status.headSeq, Number(status.headBlock));
      return "overrun";
    }
    return this.invalid("tornSeen");
  }

  private advance(blocks: number): void {
    this.seq++;
    this.block += blocks;
    if (this.block >= this.ringBlocks) this.block = 0;
  }

  private jump(seq: bigint, block: number): void {
    this.seq = seq;
    this.block = block >= this.ringBlocks ? 0 : block;
    this.invalidSinceMs = undefined;
  }

  /** The writer lapped us: continue with the newer record found here; what lay between is lost. */
  private async overrun(newerSeq: bigint): Promise<PollOutcome> {
    this.counters.overruns++;
    const stamp = readStamp(this.firstBlock, 0);
    const status = await this.readStatus();
    if (stamp !== undefined && stamp.seq === newerSeq && stamp.blockIndex <= this.block) {
      this.counters.lost += newerSeq - this.seq;
      this.jump(newerSeq, this.block - stamp.blockIndex);
    } else if (status !== undefined && status.epoch === this.epoch) {
      this.counters.lost += status.headSeq > this.seq ? status.headSeq - this.seq : 0n;
      this.jump(status.headSeq, Number(status.headBlock));
    } else {
      this.counters.lost += newerSeq - this.seq;
      this.jump(newerSeq, this.block);
    }
    return "overrun";
  }

  /**
   * The writer started a newer epoch: adopt it (its superblock says where it starts). The position
   * is kept: records of the older epoch below epochStartSeq are still read in order.
   */
  private async epochChange(epoch: bigint): Promise<PollOutcome> {
    const superblock = await this.verifiedSuperblock();
    if (superblock === undefined) return "waiting";
    if (superblock.volumeUuid !== this.superblock.volumeUuid) return this.foreign(superblock.volumeUuid);
    if (this.keys !== undefined && superblock.epoch < this.epoch) this.counters.replays++; // an old superblock restored
    if (superblock.epoch < epoch) return "waiting"; // the mirrored superblock lags the records: wait for it
    this.counters.epochChanges++;
    this.superblock = superblock;
    this.addCipher(superblock);
    this.epoch = superblock.epoch;
    if (this.seq >= superblock.epochStartSeq) {
      // Our next seq belongs to the new epoch, which starts at epochStartBlock (not necessarily where
      // we were waiting: a writer that reopened continues after the last stamp it found).
      this.jump(superblock.epochStartSeq, Number(superblock.epochStartBlock));
    }
    return "epoch";
  }

  /**
   * The current superblock. Keyed: only a verified one; a superblock an attacker damaged, keyed
   * under another key or stripped of its MAC is counted and yields undefined instead of an error, so
   * the poll loop keeps running (the copy the writer wrote may come back through the mirror).
   */
  private async verifiedSuperblock(): Promise<Superblock | undefined> {
    if (this.keys === undefined) return (await openSuperblock(this.volume)).superblock;
    try {
      return (await openSuperblock(this.volume, this.keys)).superblock;
    } catch (error) {
      if (!(error instanceof LunlinkError)) throw error;
      if (error.code === ErrorCode.Downgrade) this.counters.downgrades++;
      else if (error.code === ErrorCode.WrongKey || error.code === ErrorCode.NotFormatted || error.code === ErrorCode.SuperblockConflict) this.counters.authFailures++;
      else throw error;
      return undefined;
    }
  }

  /** The expected seq belongs to an ended epoch and is not on the volume: continue where the new epoch starts. */
  private endOfEpoch(): PollOutcome {
    const now = performance.now();
    this.invalidSinceMs ??= now;
    if (now - this.invalidSinceMs < this.damageTimeoutMs) return "waiting";
    this.counters.lost += this.superblock.epochStartSeq - this.seq;
    this.jump(this.superblock.epochStartSeq, Number(this.superblock.epochStartBlock));
    return "epoch";
  }

  private foreign(uuid: string): never {
    throw new LunlinkError(
      ErrorCode.WrongPair,
      `${this.volume.path}: found a record of volume ${uuid} where volume ${this.superblock.volumeUuid}'s seq ${this.seq} belongs (reformatted, or another pair's volume)`,
      { path: this.volume.path },
    );
  }

  /** Counts why the slot is invalid, then treats it as torn (maybeDamaged). */
  private invalid(why: "tornSeen" | "authFailures" | "downgrades"): Promise<PollOutcome> {
    this.counters[why]++;
    return this.maybeDamaged();
  }

  /** An invalid slot: wait while the writer may still be writing it; skip it once it is clearly damaged. */
  private async maybeDamaged(): Promise<PollOutcome> {
    const now = performance.now();
    this.invalidSinceMs ??= now;
    if (now - this.invalidSinceMs < this.damageTimeoutMs) return "waiting";
    let status = await this.readStatus();
    if (status !== undefined && status.epoch > this.epoch) {
      // The writer restarted meanwhile: adopt its epoch (position kept) before judging the slot.
      await this.epochChange(status.epoch);
      status = this.lastStatus;
    }
    if (status === undefined || status.epoch !== this.epoch || status.headSeq <= this.seq + 1n) return "waiting";
    // The writer is past this record: skip to the next record start (stamp index 0, seq > ours).
    this.counters.damaged++;
    const headSeq = status.headSeq;
    const found =
      this.keys === undefined
        ? await this.findFrom(this.block + 1, (seq, index) => index === 0 && seq > this.seq)
        : await this.findAuthentic(this.block + 1, headSeq);
    if (found !== undefined) {
      this.counters.lost += found.seq - this.seq - 1n;
      this.jump(found.seq, found.block);
    } else {
      this.counters.lost += status.headSeq - this.seq - 1n;
      this.jump(status.headSeq, Number(status.headBlock));
    }
    return "damaged";
  }

  /** Positions the reader at `seq` by scanning stamps (bounded); if absent, at the oldest later one. */
  private async seek(seq: bigint, limitBlocks = this.ringBlocks): Promise<void> {
    let best: { seq: bigint; block: number } | undefined;
    const batch = 64;
    const buffer = this.volume.alloc(batch * this.B);
    for (let first = 0; first < Math.min(limitBlocks, this.ringBlocks); first += batch) {
      const count = Math.min(batch, this.ringBlocks - first);
      const view = buffer.subarray(0, count * this.B);
      await this.volume.read((RING_START_BLOCK + first) * this.B, view);
      for (let i = 0; i < count; i++) {
        const stamp = readStamp(view, i * this.B);
        if (stamp === undefined || stamp.blockIndex !== 0 || stamp.seq < seq) continue;
        if (best === undefined || stamp.seq < best.seq) best = { seq: stamp.seq, block: first + i };
      }
      if (best?.seq === seq) break;
    }
    if (best !== undefined) {
      if (best.seq > seq) this.counters.lost += best.seq - seq;
      this.jump(best.seq, best.block);
    } else {
      this.jump(seq, this.block);
    }
  }

  /** Keyed: the first record start after startBlock whose seq is in (ours, headSeq) and that verifies. */
  private async findAuthentic(startBlock: number, headSeq: bigint): Promise<{ seq: bigint; block: number } | undefined> {
    for (let n = 0; n < this.ringBlocks; n++) {
      const block = (startBlock + n) % this.ringBlocks;
      await this.volume.read((RING_START_BLOCK + block) * this.B, this.firstBlock);
      const stamp = readStamp(this.firstBlock, 0);
      if (stamp === undefined || stamp.blockIndex !== 0 || stamp.seq <= this.seq || stamp.seq >= headSeq) continue;
      if (await this.authenticAt(block, stamp.seq)) return { seq: stamp.seq, block };
    }
    return undefined;
  }

  private async findFrom(startBlock: number, match: (seq: bigint, index: number) => boolean): Promise<{ seq: bigint; block: number } | undefined> {
    for (let n = 0; n < this.ringBlocks; n++) {
      const block = (startBlock + n) % this.ringBlocks;
      await this.volume.read((RING_START_BLOCK + block) * this.B, this.firstBlock);
      const stamp = readStamp(this.firstBlock, 0);
      if (stamp !== undefined && match(stamp.seq, stamp.blockIndex)) return { seq: stamp.seq, block };
    }
    return undefined;
  }
}
