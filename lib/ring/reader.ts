// RingReader: the I/O shell around the decision table in lib/ring/decide.ts (docs/format.md, "Reader
// decision table"). poll() reads the expected block, asks the table what it means and reads only what
// the answer asks for (the record's other blocks, the status, the superblock, a scan); it never
// delivers a record that failed a check, and never stalls forever behind a damaged one.
// Pipeline: read expected block -> facts -> row -> (read body -> facts -> row) -> act: deliver frames
// in order and advance (pad: ring block 0), wait, skip, resync or adopt an epoch. Keyless and keyed
// differ by policy (decide.ts KEYLESS, KEYED) and keys only; nothing an attacker writes makes a keyed
// poll() throw. Buffers whose read rejected are never reused (read-buffers.ts).
import { performance } from "node:perf_hooks";

import { loadChecksums } from "../format/checksum.ts";
import { AuthMode, FrameType, MAX_FRAME_BYTES, MAX_RECORD_BLOCKS, RING_START_BLOCK, RecordKind } from "../format/layout.ts";
import type { RecordCipher } from "../format/record-cipher.ts";
import { checkBody, checkFirstBlock, forEachFrame, readStamp, type BodyAuth, type BodyVerdict, type FirstBlockVerdict, type RecordHeader, type Stamp } from "../format/record.ts";
import type { StatusBlock } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { uuidBytes } from "../format/uuid.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { Volume } from "../io/volume.ts";
import * as core from "./decide.ts";
import { RingKeys } from "./keys.ts";
import { ReaderBuffers } from "./read-buffers.ts";
import { checkReaderOptions, checkReceiveVolume, newReaderCounters, type FrameVisitor, type PollOutcome, type RecordVisitor, type RingReaderCounters, type RingReaderOptions } from "./reader-api.ts";
import { scanRing, scanStamps } from "./scan.ts";
import { readStatusSlots } from "./status.ts";
import { openSuperblock } from "./superblocks.ts";

export type { FrameVisitor, PollOutcome, RecordVisitor, RingReaderCounters, RingReaderOptions } from "./reader-api.ts";

/** At most this many epochs' record keys are kept (the current one and those whose records may still be read). */
const MAX_EPOCH_KEYS = 4;
/** Table decisions per poll: one on the first block, one more once the record's body is read. */
const MAX_DECISIONS_PER_POLL = 2;

export class RingReader {
  readonly volume: Volume;
  readonly counters: RingReaderCounters = newReaderCounters();
  /** Next expected (epoch, seq) and the ring block it is at. */
  epoch: bigint;
  seq: bigint;
  block: number;
  /** The decision table row (decide.ts, docs/format.md) behind the last poll's decision. */
  lastRow: string | undefined;
  private superblock: Superblock;
  private readonly policy: core.ReaderPolicy;
  private readonly uuid: Uint8Array;
  private readonly B: number;
  private readonly ringBlocks: number;
  private readonly damageTimeoutMs: number;
  private readonly now: () => number;
  private readonly buffers: ReaderBuffers;
  private readonly scratch = new Uint8Array(MAX_FRAME_BYTES);
  private invalidSinceMs: number | undefined;
  /** Data frames of records below this seq were written before a restart: not delivered. */
  private dropDataBelowSeq = 0n;
  private lastStatus: StatusBlock | undefined;
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
    this.policy = keys === undefined ? core.KEYLESS : core.KEYED;
    this.framingOnly = options.framingOnly === true;
    this.highWater = options.notBefore === undefined ? { epoch: 0n, seq: 0n } : { ...options.notBefore };
    this.addCipher(superblock);
    this.uuid = uuidBytes(superblock.volumeUuid);
    this.B = superblock.blockBytes;
    this.ringBlocks = Number(superblock.ringBlocks);
    this.damageTimeoutMs = options.damageTimeoutMs ?? 1000;
    this.now = options.now ?? (() => performance.now());
    this.epoch = superblock.epoch;
    this.seq = superblock.epochStartSeq;
    this.block = Number(superblock.epochStartBlock);
    this.buffers = new ReaderBuffers(volume, this.B, this.ringBlocks, Math.min(MAX_RECORD_BLOCKS, this.ringBlocks) * this.B);
  }

  static async open(volume: Volume, options: RingReaderOptions): Promise<RingReader> {
    await loadChecksums();
    checkReaderOptions(options);
    const keys = options.auth === undefined ? undefined : new RingKeys(options.auth);
    const { superblock } = await openSuperblock(volume, keys);
    checkReceiveVolume(volume.path, superblock, options);
    const reader = new RingReader(volume, superblock, options, keys);
    const status = await reader.readStatus();
    const start = options.start ?? "head";
    if (start === "head") {
      if (status !== undefined && status.epoch === superblock.epoch) reader.jump(status.headSeq, Number(status.headBlock));
    } else if (start === "oldest") {
      if (status !== undefined) await reader.seek(status.oldestSeq, options.scanLimitBlocks);
    } else if ("afterAck" in start) {
      // Everything on the volume now predates the restart: the status head may lag, the stamps do not
      // (keyed: stamps are not authenticated, so the authenticated status head decides).
      reader.dropDataBelowSeq =
        reader.policy.staleBoundary === "stamps" ? (await scanRing(volume, superblock.blockBytes, superblock.ringBlocks)).highestSeq + 1n : (status?.headSeq ?? superblock.epochStartSeq);
      await reader.seek(start.afterAck + 1n, options.scanLimitBlocks);
    } else {
      await reader.seek(start.seq, options.scanLimitBlocks);
    }
    return reader;
  }

  /** The expected block as last read (the baseline a watch compares against). */
  get firstBlock(): Uint8Array {
    return this.buffers.get("first");
  }

  /** The peer's status block (its head, its ack of our records, its heartbeat); cached as lastStatus. */
  async readStatus(): Promise<StatusBlock | undefined> {
    const mac = this.keys?.statusMac ?? (this.superblock.authMode === AuthMode.Keyed ? "unverified" : undefined);
    const read = await this.buffers.use("status", (buffer) => readStatusSlots(this.volume, this.B, mac, buffer));
    const decision = core.acceptStatus(this.policy, this.state, this.superblock.volumeUuid, this.lastStatus, read.slots, read.status);
    this.counters.authFailures += decision.authFailures;
    this.counters.downgrades += decision.downgrades;
    if (decision.do === "check-superblock") {
      // Another volume's status: the volume was reformatted (or swapped) under us, if the superblock agrees.
      const superblock = await this.verifiedSuperblock();
      if (superblock !== undefined && superblock.volumeUuid !== this.superblock.volumeUuid) throw this.foreign(superblock.volumeUuid);
      return this.lastStatus;
    }
    this.counters.replays += decision.replays;
    if (decision.remember) this.lastStatus = decision.status;
    return decision.status;
  }

  /** Re-reads the peer's status; if the writer moved to a newer epoch (it restarted while we waited at a slot it will never fill), adopts it. */
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

  /** The highest authenticated (epoch, seq) delivered (or notBefore): what the link persists and passes back as notBefore. */
  get delivered(): { epoch: bigint; seq: bigint } {
    return { ...this.highWater };
  }

  /** Byte offset of the expected block on the volume. */
  get expectedOffset(): number {
    return (RING_START_BLOCK + this.block) * this.B;
  }

  /** One attempt at the expected position. `fresh`: firstBlock already holds the block as just read (after a watch). */
  async poll(visit: FrameVisitor, fresh = false, onRecord?: RecordVisitor): Promise<PollOutcome> {
    if (fresh) this.buffers.dropWindow();
    const outcome = await this.pollOnce(visit, fresh, onRecord);
    this.buffers.afterPoll(outcome === "delivered" || outcome === "pad");
    return outcome;
  }

  private async pollOnce(visit: FrameVisitor, fresh: boolean, onRecord: RecordVisitor | undefined): Promise<PollOutcome> {
    if (!fresh) await this.buffers.readRing(this.expectedOffset, "first", 0, this.B);
    const first = checkFirstBlock(this.buffers.get("first"), this.B, this.seq, this.uuid);
    const header = first.kind === "header" ? first.header : undefined;
    let body: BodyVerdict | undefined;
    for (let n = 0; n < MAX_DECISIONS_PER_POLL; n++) {
      const action = core.decide(this.policy, this.facts(first, body, this.state), this.state, this.now());
      this.lastRow = action.row;
      if (action.count !== undefined) this.counters[action.count]++;
      if (action.do === "wait") {
        this.invalidSinceMs = action.invalidSinceMs;
        return "waiting";
      }
      if (action.do === "read-body") {
        body = await this.readBody(must(header));
        continue;
      }
      const newerSeq = first.kind === "newer" ? first.seq : body?.kind === "newer" ? body.seq : undefined;
      switch (action.do) {
        case "judge-damage":
          return this.skipDamaged();
        case "jump":
          this.moveTo(action.to);
          return action.outcome;
        case "overrun":
          return this.overrun(must(newerSeq));
        case "verify-overrun":
          return this.verifiedOverrun(must(newerSeq), action.row);
        case "wrong-pair":
          throw this.foreign(first.kind === "foreign" ? first.volumeUuid : "?");
        case "adopt-epoch":
        case "adopt-epoch/suspect": {
          const outcome = await this.epochChange(must(header).epoch);
          // Keyed: a header's epoch is a claim until the verified superblock confirms it.
          return outcome === "waiting" && action.do === "adopt-epoch/suspect" ? this.suspect(action.row) : outcome;
        }
        case "refuse":
        case "pad":
        case "deliver":
          this.invalidSinceMs = undefined;
          return this.accept(action.do, must(header), visit, onRecord);
        case "never":
          break;
      }
      throw new Error(`assertion failed: row ${action.row} (${action.do}) under the ${this.policy.column} policy`);
    }
    throw new Error(`assertion failed: more than ${MAX_DECISIONS_PER_POLL} decisions in one poll`);
  }

  /** A record whose checks passed: refused (replayed), a pad, or delivered. */
  private async accept(verb: "refuse" | "pad" | "deliver", header: RecordHeader, visit: FrameVisitor, onRecord: RecordVisitor | undefined): Promise<PollOutcome> {
    const record = this.buffers.get("record").subarray(0, header.blockCount * this.B);
    if (verb === "refuse") {
      this.counters.replays++;
      this.pass(header);
      return "refused";
    }
    if (onRecord !== undefined) await onRecord(record, this.block, this.seq);
    if (verb === "pad") {
      this.counters.pads++;
      this.pass(header);
      return "pad";
    }
    const seq = this.seq;
    if (!this.framingOnly) {
      // A mirror (framingOnly) delivers no frames: they are not its business (ciphertext in a keyed ring).
      const stale = seq < this.dropDataBelowSeq;
      const problem = forEachFrame(record, this.B, header, this.scratch, (type, flags, bytes, offset, length) => {
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
        this.pass(header);
        return "damaged";
      }
      if (this.policy.antiReplay) this.highWater = { epoch: header.epoch, seq };
    }
    this.counters.records++;
    this.pass(header);
    return "delivered";
  }

  /** The table's facts at the expected slot (or, with `at`, at another position: verifyAt). */
  private facts(first: FirstBlockVerdict, body: BodyVerdict | undefined, at: core.ReaderState): core.Facts {
    return core.slotFacts(this.policy, at, this.lastStatus, first, body, (epoch) => this.keys === undefined || this.ciphers.has(epoch));
  }

  private get state(): core.ReaderState {
    const { epochStartSeq, epochStartBlock } = this.superblock;
    return { epoch: this.epoch, seq: this.seq, block: this.block, ringBlocks: this.ringBlocks, epochStartSeq, epochStartBlock: Number(epochStartBlock), invalidSinceMs: this.invalidSinceMs, damageTimeoutMs: this.damageTimeoutMs, highWater: this.highWater };
  }

  /** The record's other blocks, read after its first block, checked. */
  private async readBody(header: RecordHeader): Promise<BodyVerdict> {
    this.buffers.get("record").set(this.buffers.get("first"), 0);
    if (header.blockCount > 1) await this.buffers.readRing(this.expectedOffset + this.B, "record", this.B, header.blockCount * this.B);
    return checkBody(this.buffers.get("record"), this.B, header, this.bodyAuth(header.epoch, this.block));
  }

  /**
   * Keyed: whether an authentic record of `seq` starts at `block`: the table, asked at that position,
   * ends on an accepting row (so stamps an attacker wrote cannot steer the reader). Reads into the record buffer.
   */
  private async verifyAt(block: number, seq: bigint): Promise<boolean> {
    const at = { ...this.state, seq, block };
    const verb = (first: FirstBlockVerdict, body?: BodyVerdict): core.Verb => core.tableRow(this.facts(first, body, at))[this.policy.column];
    await this.buffers.read("record", (RING_START_BLOCK + block) * this.B, 0, this.B);
    const first = checkFirstBlock(this.buffers.get("record").subarray(0, this.B), this.B, seq, this.uuid);
    if (first.kind !== "header" || verb(first) !== "read-body") return false;
    const header = first.header;
    if (header.blockCount > 1) await this.buffers.read("record", (RING_START_BLOCK + block + 1) * this.B, this.B, header.blockCount * this.B);
    const body = checkBody(this.buffers.get("record"), this.B, header, this.bodyAuth(header.epoch, block));
    if (body.kind === "auth") this.counters.authFailures++;
    const accepted = verb(first, body);
    return accepted === "refuse" || accepted === "pad" || accepted === "deliver";
  }

  /** A suspect slot past the table: wait out damageTimeoutMs, then judge it. */
  private async suspect(row: string): Promise<PollOutcome> {
    const action = core.suspect(row, this.state, this.now());
    if (action.do !== "wait") return this.skipDamaged();
    this.invalidSinceMs = action.invalidSinceMs;
    return "waiting";
  }

  /** Past damageTimeoutMs: skip the slot if the writer is past it, to the next record start (keyed: that verifies), else the status head. */
  private async skipDamaged(): Promise<PollOutcome> {
    let status = await this.readStatus();
    if (status !== undefined && status.epoch > this.epoch) {
      // The writer restarted meanwhile: adopt its epoch (position kept) before judging the slot.
      await this.epochChange(status.epoch);
      status = this.lastStatus;
    }
    const head = core.judgeDamage(this.state, status);
    if (head === undefined) return "waiting";
    this.counters.damaged++;
    const here = this.state;
    let found: core.Position | undefined;
    const visit = async (stamp: Stamp, block: number): Promise<boolean> => {
      if (!core.skipCandidate(this.policy, here, head.headSeq, stamp)) return false;
      if (this.policy.skipTo === "authentic" && !(await this.verifyAt(block, stamp.seq))) return false;
      found = { seq: stamp.seq, block };
      return true;
    };
    await scanStamps(this.volume, this.B, this.ringBlocks, visit, { fromBlock: this.block + 1 });
    this.moveTo(core.skipDamaged(here, found, head));
    return "damaged";
  }

  /** Keyless: the writer lapped us; continue with the newer record (what lay between is lost). */
  private async overrun(newerSeq: bigint): Promise<PollOutcome> {
    this.counters.overruns++;
    const stamp = readStamp(this.buffers.get("first"), 0);
    this.moveTo(core.resyncAfterOverrun(this.state, newerSeq, stamp, await this.readStatus()));
    return "overrun";
  }

  /** Keyed: a newer stamp is a claim, believed if its record verifies at its own slot or the authenticated status says so; else torn. */
  private async verifiedOverrun(newerSeq: bigint, row: string): Promise<PollOutcome> {
    const claim = core.overrunClaim(this.state, newerSeq, readStamp(this.buffers.get("first"), 0));
    let to: core.Jump | undefined;
    if (claim !== undefined && (await this.verifyAt(claim.block, claim.seq))) to = { ...claim, lost: newerSeq - this.seq };
    to ??= core.statusOverrun(this.state, await this.readStatus());
    if (to === undefined) {
      this.counters.tornSeen++;
      return this.suspect(row);
    }
    this.counters.overruns++;
    this.moveTo(to);
    return "overrun";
  }

  /** The writer started a newer epoch: adopt it as its (verified) superblock says. */
  private async epochChange(epoch: bigint): Promise<PollOutcome> {
    const decision = core.adoptEpoch(this.policy, this.state, this.superblock.volumeUuid, await this.verifiedSuperblock(), epoch);
    if (decision.do === "wrong-pair") throw this.foreign(decision.volumeUuid);
    if (decision.do === "wait") {
      if (decision.replayed) this.counters.replays++;
      return "waiting";
    }
    this.counters.epochChanges++;
    this.superblock = decision.superblock;
    this.addCipher(decision.superblock);
    this.epoch = decision.superblock.epoch;
    if (decision.jump !== undefined) this.jump(decision.jump.seq, decision.jump.block);
    return "epoch";
  }

  /** The current superblock; keyed: a superblock that fails to verify is counted and yields undefined (the poll loop keeps running). */
  private async verifiedSuperblock(): Promise<Superblock | undefined> {
    try {
      return (await openSuperblock(this.volume, this.keys)).superblock;
    } catch (error) {
      if (!this.policy.countsSuperblockFailures || !(error instanceof LunlinkError)) throw error;
      if (error.code === ErrorCode.Downgrade) this.counters.downgrades++;
      else if (error.code === ErrorCode.WrongKey || error.code === ErrorCode.NotFormatted || error.code === ErrorCode.SuperblockConflict) this.counters.authFailures++;
      else throw error;
      return undefined;
    }
  }

  /** Positions the reader at `seq` by scanning stamps (bounded); if absent, at the oldest later one (the gap lost). */
  private async seek(seq: bigint, limitBlocks = this.ringBlocks): Promise<void> {
    let best: core.Position | undefined;
    await scanStamps(
      this.volume,
      this.B,
      this.ringBlocks,
      (stamp, block) => {
        if (stamp.blockIndex !== 0 || stamp.seq < seq) return false;
        if (best === undefined || stamp.seq < best.seq) best = { seq: stamp.seq, block };
        return best.seq === seq;
      },
      { limitBlocks },
    );
    this.moveTo(best === undefined ? { seq, block: this.block, lost: 0n } : { ...best, lost: best.seq - seq });
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
    while (this.ciphers.size > MAX_EPOCH_KEYS) this.ciphers.delete([...this.ciphers.keys()].reduce((a, b) => (b < a ? b : a)));
  }

  private advance(blocks: number): void {
    this.seq++;
    this.block += blocks;
    if (this.block >= this.ringBlocks) this.block = 0;
  }

  /** Past a record that passed its checks: a pad ends the lap (ring block 0). */
  private pass(header: RecordHeader): void {
    if (header.kind === RecordKind.Pad) this.jump(this.seq + 1n, 0);
    else this.advance(header.blockCount);
  }

  private jump(seq: bigint, block: number): void {
    this.seq = seq;
    this.block = block >= this.ringBlocks ? 0 : block;
    this.invalidSinceMs = undefined;
  }

  private moveTo(to: core.Jump): void {
    this.counters.lost += to.lost;
    this.jump(to.seq, to.block);
  }

  private foreign(uuid: string): LunlinkError {
    return new LunlinkError(
      ErrorCode.WrongPair,
      `${this.volume.path}: found a record of volume ${uuid} where volume ${this.superblock.volumeUuid}'s seq ${this.seq} belongs (reformatted, or another pair's volume)`,
      { path: this.volume.path },
    );
  }
}

function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("assertion failed: a value the decision table guarantees is missing");
  return value;
}
