// RingReader: the I/O shell around the decision table of lib/ring/decide.ts (docs/format.md). poll()
// reads the expected block, asks the table, and reads only what the row asks for (the record's other
// blocks, the status, the superblock, a scan); it never delivers a record that failed a check and never
// stalls forever behind a damaged one. Keyless and keyed differ by policy (decide.ts) and keys only;
// nothing an attacker writes makes a keyed poll() throw. Buffers are owned by read-buffers.ts; where
// the reader stands by reader-cursor.ts; what a fault is and whether it counts by fault-memory.ts.
import { performance } from "node:perf_hooks";

import { DEFAULT_DAMAGE_TIMEOUT_MS } from "../defaults.ts";
import { AuthMode, FrameType, MAX_FRAME_BYTES, MAX_RECORD_BLOCKS, RING_START_BLOCK, RecordKind } from "../format/layout.ts";
import { checkBody, checkFirstBlock, forEachFrame, readStamp, type BodyAuth, type BodyVerdict, type FirstBlockVerdict, type RecordHeader, type Stamp } from "../format/record.ts";
import type { StatusBlock } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { uuidBytes } from "../format/uuid.ts";
import { LunlinkError } from "../errors.ts";
import type { Volume, WatchOptions } from "../io/volume.ts";
import * as core from "./decide.ts";
import { EpochCiphers } from "./epoch-ciphers.ts";
import { FaultMemory, acceptFault, recordIdentity, statusFaults, type FaultReason, type FaultSource, type RingObserver } from "./fault-memory.ts";
import { RingKeys } from "./keys.ts";
import { ReaderBuffers } from "./read-buffers.ts";
import { ReaderCursor } from "./reader-cursor.ts";
import { checkReaderOptions, checkReceiveVolume, newReaderCounters, wrongPair, type FrameVisitor, type PollOutcome, type RecordVisitor, type RingReaderCounters, type RingReaderOptions } from "./reader-api.ts";
import { findOldestAfter, findRecordStart, scanRing, scanStamps } from "./scan.ts";
import { readStatusSlots } from "./status.ts";
import { openSuperblock } from "./superblocks.ts";

export type { FrameVisitor, PollOutcome, RecordVisitor, RingReaderCounters, RingReaderOptions } from "./reader-api.ts";

export class RingReader {
  readonly volume: Volume;
  readonly counters: RingReaderCounters = newReaderCounters();
  /** The decision table row (decide.ts, docs/format.md) behind the last poll's decision. */
  lastRow: string | undefined;
  private readonly cursor: ReaderCursor;
  private readonly policy: core.ReaderPolicy;
  private readonly uuid: Uint8Array;
  private readonly blockBytes: number;
  private readonly now: () => number;
  private readonly buffers: ReaderBuffers;
  private readonly scratch = new Uint8Array(MAX_FRAME_BYTES);
  private lastStatus: StatusBlock | undefined;
  private readonly keys: RingKeys | undefined;
  private readonly framingOnly: boolean;
  private readonly ciphers: EpochCiphers | undefined;
  /** Fault counters count each bad record (status slot, superblock) once, however often it is re-read. */
  private readonly faults = new FaultMemory();
  private readonly observer: RingObserver | undefined;
  /** RingReaderOptions.resumeAtOldest. */
  private readonly resumeAtOldest: boolean;

  private constructor(volume: Volume, superblock: Superblock, options: RingReaderOptions, keys: RingKeys | undefined) {
    this.volume = volume;
    this.keys = keys;
    this.policy = keys === undefined ? core.KEYLESS : core.KEYED;
    this.framingOnly = options.framingOnly === true;
    this.observer = options.observer;
    this.resumeAtOldest = options.resumeAtOldest ?? true;
    this.ciphers = keys === undefined ? undefined : new EpochCiphers(keys);
    this.ciphers?.add(superblock);
    this.uuid = uuidBytes(superblock.volumeUuid);
    this.blockBytes = superblock.blockBytes;
    this.now = options.now ?? (() => performance.now());
    this.cursor = new ReaderCursor(superblock, options.damageTimeoutMs ?? DEFAULT_DAMAGE_TIMEOUT_MS, options.notBefore, this.counters);
    const ringBlocks = this.cursor.ringBlocks;
    this.buffers = new ReaderBuffers(volume, this.blockBytes, ringBlocks, Math.min(MAX_RECORD_BLOCKS, ringBlocks) * this.blockBytes);
  }

  static async open(volume: Volume, options: RingReaderOptions): Promise<RingReader> {
    checkReaderOptions(options);
    const keys = options.auth === undefined ? undefined : new RingKeys(options.auth);
    const { superblock } = await openSuperblock(volume, keys);
    checkReceiveVolume(volume.path, superblock, options);
    const reader = new RingReader(volume, superblock, options, keys);
    const status = await reader.readStatus();
    const plan = core.startPlan(reader.policy, options.start ?? "head", superblock, status);
    const highest = plan.dropDataBelow === "stamps" ? (await scanRing(volume, superblock.blockBytes, superblock.ringBlocks)).highestSeq : undefined;
    const found = plan.seek === undefined ? undefined : await findRecordStart(volume, superblock.blockBytes, Number(superblock.ringBlocks), plan.seek, options.scanLimitBlocks);
    reader.cursor.start(plan, highest, found);
    return reader;
  }

  /** Next expected (epoch, seq) and the ring block it is at. */
  get epoch(): bigint {
    return this.cursor.epoch;
  }

  get seq(): bigint {
    return this.cursor.seq;
  }

  get block(): number {
    return this.cursor.block;
  }

  /** The expected block as last read (the baseline a watch compares against). */
  get firstBlock(): Uint8Array {
    return this.buffers.get("first");
  }

  /**
   * Waits until the expected block changes (volume.watch into the reader's own buffer, dropped if the
   * watch rejects); then poll(visit, true). A watch means the reader caught up: records a watch finds
   * one by one (a standby follower watches right after a record) are no backlog, so the read-ahead
   * streak ends here, as after a poll that found the slot empty.
   */
  watch(options: WatchOptions): Promise<boolean> {
    this.buffers.caughtUp();
    return this.buffers.use("first", (buffer) => this.volume.watch(this.expectedOffset, buffer, options));
  }

  /** The peer's status block (its head, its ack of our records, its heartbeat); cached as lastStatus. */
  async readStatus(): Promise<StatusBlock | undefined> {
    const followed = this.cursor.superblock;
    const mac = this.keys?.statusMac ?? (followed.authMode === AuthMode.Keyed ? "unverified" : undefined);
    const read = await readStatusSlots(this.volume, this.blockBytes, mac); // a buffer of its own per read: calls may overlap
    const decision = core.acceptStatus(this.policy, this.cursor.state, followed.volumeUuid, this.lastStatus, read.slots, read.status);
    for (const fault of statusFaults(decision, read, this.blockBytes)) this.countFault(fault.reason, "status", fault.offsetBytes, fault.what, fault.detail);
    if (decision.do === "check-superblock") {
      // Another volume's status: the volume was reformatted (or swapped) under us, if the superblock agrees.
      const superblock = await this.verifiedSuperblock();
      if (superblock !== undefined && superblock.volumeUuid !== followed.volumeUuid) throw wrongPair(this.volume.path, superblock.volumeUuid, followed.volumeUuid, this.seq);
      return this.lastStatus;
    }
    if (decision.remember) this.lastStatus = decision.status;
    return decision.status;
  }

  /** Re-reads the peer's status; if the writer moved to a newer epoch (it restarted while we waited at a slot it will never fill), adopts it. */
  async refresh(): Promise<PollOutcome | undefined> {
    const status = await this.readStatus();
    return status !== undefined && status.epoch > this.epoch ? this.epochChange(status.epoch) : undefined;
  }

  get status(): StatusBlock | undefined {
    return this.lastStatus;
  }

  /** What to ack, and the highest authenticated (epoch, seq) delivered (ReaderCursor). */
  get ack(): { epoch: bigint; seq: bigint } {
    return this.cursor.ack;
  }

  get delivered(): { epoch: bigint; seq: bigint } {
    return this.cursor.delivered;
  }

  /** Byte offset of the expected block on the volume. */
  get expectedOffset(): number {
    return (RING_START_BLOCK + this.block) * this.blockBytes;
  }

  /** One attempt at the expected position. `fresh`: firstBlock already holds the block as just read (after a watch). */
  async poll(visit: FrameVisitor, fresh = false, onRecord?: RecordVisitor): Promise<PollOutcome> {
    if (fresh) this.buffers.dropWindow();
    const outcome = await this.pollOnce(visit, fresh, onRecord);
    this.buffers.afterPoll(outcome === "delivered" || outcome === "pad");
    return outcome;
  }

  private async pollOnce(visit: FrameVisitor, fresh: boolean, onRecord: RecordVisitor | undefined): Promise<PollOutcome> {
    if (!fresh) await this.buffers.readRing(this.expectedOffset, "first", 0, this.blockBytes);
    const first = checkFirstBlock(this.buffers.get("first"), this.blockBytes, this.seq, this.uuid);
    const header = first.kind === "header" ? first.header : undefined;
    let body: BodyVerdict | undefined;
    for (let n = 0; n < core.MAX_DECISIONS_PER_POLL; n++) {
      const state = this.cursor.state;
      const action = core.decide(this.policy, this.facts(first, body, state), state, this.now());
      this.lastRow = action.row;
      if (action.count !== undefined) this.countFault(action.count, "record", this.expectedOffset, recordIdentity(this.buffers.get("first"), header !== undefined, this.blockBytes), `row ${action.row}`);
      const newerSeq = first.kind === "newer" ? first.seq : body?.kind === "newer" ? body.seq : undefined;
      switch (action.do) {
        case "wait":
          // The slot holds nothing new again (E3): whatever bad content was there is gone, so the same bytes written there again are a new fault.
          if (action.row === "E3") this.faults.forget("record");
          this.cursor.invalidSinceMs = action.invalidSinceMs;
          return "waiting";
        case "read-body":
          this.buffers.get("record").set(this.buffers.get("first"), 0);
          body = await this.readBody(this.block, core.must(header), true);
          continue;
        case "judge-damage":
          return this.skipDamaged();
        case "jump":
          this.cursor.moveTo(action.to);
          return action.outcome;
        case "overrun":
        case "verify-overrun":
          return this.overrun(core.must(newerSeq), action.row, action.do === "verify-overrun");
        case "wrong-pair":
          throw wrongPair(this.volume.path, core.must(first.kind === "foreign" ? first.volumeUuid : undefined), this.cursor.superblock.volumeUuid, this.seq);
        case "adopt-epoch":
        case "adopt-epoch/suspect": {
          const outcome = await this.epochChange(core.must(header).epoch);
          // Keyed: a header's epoch is a claim until the verified superblock confirms it.
          return outcome === "waiting" && action.do === "adopt-epoch/suspect" ? this.suspect(action.row) : outcome;
        }
        case "refuse":
        case "pad":
        case "deliver":
          return this.accept(action.do, core.must(header), visit, onRecord);
        case "never":
          break;
      }
      throw new Error(`assertion failed: row ${action.row} (${action.do}) under the ${this.policy.column} policy`);
    }
    throw new Error(`assertion failed: more than ${core.MAX_DECISIONS_PER_POLL} decisions in one poll`);
  }

  /** A record whose checks passed: refused (replayed), a pad, or delivered; then past it. */
  private async accept(verb: "refuse" | "pad" | "deliver", header: RecordHeader, visit: FrameVisitor, onRecord: RecordVisitor | undefined): Promise<PollOutcome> {
    const seq = this.seq;
    const record = this.buffers.get("record").subarray(0, header.blockCount * this.blockBytes);
    if (verb !== "refuse") await onRecord?.(record, this.block, seq);
    const outcome = verb === "refuse" ? "refused" : verb === "pad" ? "pad" : this.deliver(header, record, seq, visit);
    if (outcome === "refused" || outcome === "damaged") {
      const { reason, detail } = acceptFault(outcome, header.epoch);
      this.countFault(reason, "record", this.expectedOffset, record, detail);
    } else if (outcome === "delivered" && header.kind === RecordKind.Batch) this.observer?.delivered?.(header.timestampMs);
    this.cursor.pass(header, outcome, this.policy.antiReplay);
    return outcome;
  }

  /** Visits the frames (a mirror, framingOnly, visits none); data written before a restart is dropped. */
  private deliver(header: RecordHeader, record: Uint8Array, seq: bigint, visit: FrameVisitor): "delivered" | "damaged" {
    if (this.framingOnly) return "delivered";
    const stale = this.cursor.stale(seq);
    const problem = forEachFrame(record, this.blockBytes, header, this.scratch, (type, flags, bytes, offset, length) => {
      if (stale && type === FrameType.Data) return void this.counters.staleDataDropped++;
      this.counters.frames++;
      visit(seq, type, flags, bytes, offset, length);
    });
    // Checksums passed but the frames do not parse: a writer bug or a forgery. Never deliver more.
    return problem === undefined ? "delivered" : "damaged";
  }

  /** The table's facts at the expected slot (or, with `at`, at another position: verifyAt). */
  private facts(first: FirstBlockVerdict, body: BodyVerdict | undefined, at: core.ReaderState): core.Facts {
    return core.slotFacts(this.policy, at, this.lastStatus, first, body, (epoch) => this.ciphers?.has(epoch) ?? true);
  }

  /** Reads the other blocks of the record whose first block is in the record buffer, at ring `block`, and checks it. */
  private async readBody(block: number, header: RecordHeader, viaWindow: boolean): Promise<BodyVerdict> {
    const [offsetBytes, end] = [(RING_START_BLOCK + block + 1) * this.blockBytes, header.blockCount * this.blockBytes];
    if (header.blockCount > 1) await (viaWindow ? this.buffers.readRing(offsetBytes, "record", this.blockBytes, end) : this.buffers.read("record", offsetBytes, this.blockBytes, end));
    return checkBody(this.buffers.get("record"), this.blockBytes, header, this.bodyAuth(header.epoch, block));
  }

  /** Keyed: whether an authentic record of `seq` starts at `block`: the table, asked there, accepts it (attacker stamps cannot steer us). */
  private async verifyAt(block: number, seq: bigint): Promise<boolean> {
    const at = { ...this.cursor.state, seq, block };
    const verb = (first: FirstBlockVerdict, body?: BodyVerdict): core.Verb => core.tableRow(this.facts(first, body, at))[this.policy.column];
    const first = checkFirstBlock(await this.buffers.read("record", (RING_START_BLOCK + block) * this.blockBytes, 0, this.blockBytes), this.blockBytes, seq, this.uuid);
    if (first.kind !== "header" || verb(first) !== "read-body") return false;
    const body = await this.readBody(block, first.header, false);
    if (body.kind === "auth") this.countFault("authFailures", "record", (RING_START_BLOCK + block) * this.blockBytes, recordIdentity(this.buffers.get("record"), true, this.blockBytes), `record of seq ${seq} fails authentication where a skip or an overrun claim points`, seq);
    return core.ACCEPTING.has(verb(first, body));
  }

  /** A suspect slot past the table: wait out damageTimeoutMs, then judge it. */
  private async suspect(row: string, count?: "tornSeen"): Promise<PollOutcome> {
    if (count !== undefined) this.countFault(count, "record", this.expectedOffset, this.buffers.get("first").subarray(0, this.blockBytes), `row ${row}: a newer stamp without evidence of an overrun`);
    const action = core.suspect(row, this.cursor.state, this.now());
    if (action.do !== "wait") return this.skipDamaged();
    this.cursor.invalidSinceMs = action.invalidSinceMs;
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
    const head = core.judgeDamage(this.cursor.state, status);
    if (head === undefined) return "waiting";
    this.countFault("damaged", "record", this.expectedOffset, `damaged ${this.seq}`, `invalid for ${this.cursor.damageTimeoutMs} ms while the writer is at seq ${head.headSeq}: skipped`);
    const here = this.cursor.state;
    let found: core.Position | undefined;
    const visit = async (stamp: Stamp, block: number): Promise<boolean> => {
      if (!core.skipCandidate(this.policy, here, head.headSeq, stamp)) return false;
      if (this.policy.skipTo === "authentic" && !(await this.verifyAt(block, stamp.seq))) return false;
      found = { seq: stamp.seq, block };
      return true;
    };
    await scanStamps(this.volume, this.blockBytes, this.cursor.ringBlocks, visit, { fromBlock: this.block + 1 });
    this.cursor.moveTo(core.skipDamaged(here, found, head));
    return "damaged";
  }

  /**
   * Lapped: a newer stamp at our slot. Keyless: resync at once, at the oldest intact record after
   * ours (what the writer has not overwritten yet) if a record the writer holds (unacked control) is
   * among it, else at the newer record (scan.ts findOldestAfter says why).
   * Keyed (`verify`): a claim, believed only if the newer record verifies at its own slot or the
   * authenticated status says so; else torn. Believed, it resumes at the oldest record if that verifies too.
   */
  private async overrun(newerSeq: bigint, row: string, verify: boolean): Promise<PollOutcome> {
    const stamp = readStamp(this.buffers.get("first"), 0);
    const state = this.cursor.state;
    let to: core.Jump | undefined;
    if (!verify) to = core.resyncAfterOverrun(state, newerSeq, stamp, await this.readStatus(), await this.oldestAfter(newerSeq));
    else {
      const claim = core.overrunClaim(state, newerSeq, stamp);
      if (claim !== undefined && (await this.verifyAt(claim.block, claim.seq))) {
        const oldest = core.resumeAtOldest(state, newerSeq, await this.oldestAfter(newerSeq));
        to = oldest !== undefined && (await this.verifyAt(oldest.block, oldest.seq)) ? oldest : { ...claim, lost: newerSeq - this.seq };
      }
      to ??= core.statusOverrun(state, await this.readStatus());
    }
    if (to === undefined) return this.suspect(row, "tornSeen");
    this.counters.overruns++;
    this.cursor.moveTo(to);
    return "overrun";
  }

  /** The oldest record start above the expected seq if a held record lies below `newerSeq`, scanning from the expected block (scan.ts findOldestAfter). */
  private async oldestAfter(newerSeq: bigint): Promise<core.Position | undefined> {
    if (!this.resumeAtOldest) return undefined;
    return findOldestAfter(this.volume, this.blockBytes, this.cursor.ringBlocks, this.block, this.seq, newerSeq);
  }

  /** The writer started a newer epoch: adopt it as its (verified) superblock says. */
  private async epochChange(epoch: bigint): Promise<PollOutcome> {
    const followed = this.cursor.superblock;
    const decision = core.adoptEpoch(this.policy, this.cursor.state, followed.volumeUuid, await this.verifiedSuperblock(), epoch);
    if (decision.do === "wrong-pair") throw wrongPair(this.volume.path, decision.volumeUuid, followed.volumeUuid, this.seq);
    if (decision.do === "wait") {
      if (decision.replayed) this.countFault("replays", "superblock", 0, `epoch claim ${epoch}`, `superblock of an epoch below ours restored (a header claims epoch ${epoch})`);
      return "waiting";
    }
    this.cursor.adopt(decision.superblock, decision.jump);
    this.ciphers?.add(decision.superblock);
    return "epoch";
  }

  /** The current superblock; keyed: a superblock that fails to verify is counted and yields undefined (the poll loop keeps running). */
  private verifiedSuperblock(): Promise<Superblock | undefined> {
    return openSuperblock(this.volume, this.keys).then(
      ({ superblock }) => {
        this.faults.forget("superblock");
        return superblock;
      },
      (error: unknown) => {
        const counter = error instanceof LunlinkError ? core.superblockFailure(this.policy, error.code) : undefined;
        if (counter === undefined) throw error;
        this.countFault(counter, "superblock", 0, (error as LunlinkError).code, (error as LunlinkError).message);
        return undefined;
      },
    );
  }

  /** How checkBody checks a record of `epoch` at `ringBlock` (keyless: XXH3, or framing only). */
  private bodyAuth(epoch: bigint, ringBlock: number): BodyAuth | undefined {
    return this.ciphers === undefined ? (this.framingOnly ? "framing" : undefined) : this.ciphers.bodyAuth(epoch, ringBlock);
  }

  /**
   * Counts a fault once per identity (where, expected (epoch, seq), what was there) and tells the
   * observer; the same bad content re-read on the next poll or status tick is not counted again.
   */
  private countFault(reason: FaultReason, source: FaultSource, offsetBytes: number, what: Uint8Array | string, detail: string, seq = this.seq): void {
    const fault = this.faults.count(this.counters, { reason, source, offsetBytes, seq, epoch: this.epoch, detail }, what);
    if (fault !== undefined) this.observer?.fault?.(fault);
  }
}
