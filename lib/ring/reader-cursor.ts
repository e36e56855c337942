// ReaderCursor: where a RingReader stands (the followed superblock's epoch, the expected seq, its ring
// block, the damage timer) and what it delivered (the anti-replay high-water mark, the stale-data
// floor after a restart). Pure: no I/O, no clock. Every move of the reader goes through moveTo, so its
// rules hold everywhere: a move restarts the damage timer, what was skipped is counted lost, a block
// at or past the ring end wraps to block 0, and the high-water mark rises only under anti-replay.
import type { RecordHeader } from "../format/record.ts";
import type { Superblock } from "../format/superblock.ts";
import * as core from "./decide.ts";
import type { RingReaderCounters } from "./reader-api.ts";

/** The reader counters a move bumps. */
export type CursorCounters = Pick<RingReaderCounters, "lost" | "epochChanges" | "pads" | "records">;

/** The counter each outcome of an accepted record bumps (replayed and damaged ones are faults: fault-memory.ts). */
const OUTCOME_COUNTERS = { pad: "pads", delivered: "records", refused: undefined, damaged: undefined } as const;

export class ReaderCursor {
  /** Next expected (epoch, seq) and the ring block it is at. */
  epoch: bigint;
  seq: bigint;
  block: number;
  /** The superblock followed (its epoch start bounds the previous writer's range). */
  superblock: Superblock;
  /** When the expected slot was first seen invalid (undefined: it was not). */
  invalidSinceMs: number | undefined;
  /** Data frames of records below this seq were written before a restart: not delivered. */
  dropDataBelowSeq = 0n;
  /** Anti-replay high-water mark: notBefore, then the last record delivered. */
  private highWater: { epoch: bigint; seq: bigint };
  readonly ringBlocks: number;
  /** A slot that stays invalid this long while the writer is past it is damaged and skipped. */
  readonly damageTimeoutMs: number;
  private readonly counters: CursorCounters;

  constructor(superblock: Superblock, damageTimeoutMs: number, notBefore: { epoch: bigint; seq: bigint } | undefined, counters: CursorCounters) {
    this.superblock = superblock;
    this.epoch = superblock.epoch;
    this.seq = superblock.epochStartSeq;
    this.block = Number(superblock.epochStartBlock);
    this.ringBlocks = Number(superblock.ringBlocks);
    this.damageTimeoutMs = damageTimeoutMs;
    this.highWater = notBefore === undefined ? { epoch: 0n, seq: 0n } : { ...notBefore };
    this.counters = counters;
  }

  /** What the decision table (decide.ts) judges against. */
  get state(): core.ReaderState {
    const { epochStartSeq, epochStartBlock } = this.superblock;
    return { epoch: this.epoch, seq: this.seq, block: this.block, ringBlocks: this.ringBlocks, epochStartSeq, epochStartBlock: Number(epochStartBlock), invalidSinceMs: this.invalidSinceMs, damageTimeoutMs: this.damageTimeoutMs, highWater: this.highWater };
  }

  /** What to ack: everything below the expected seq was delivered or declared lost (acking only delivered records would leave the writer waiting forever behind a damaged one). */
  get ack(): { epoch: bigint; seq: bigint } {
    return { epoch: this.epoch, seq: this.seq - 1n };
  }

  /** The highest authenticated (epoch, seq) delivered (or notBefore): what the link persists and passes back as notBefore. */
  get delivered(): { epoch: bigint; seq: bigint } {
    return { ...this.highWater };
  }

  /**
   * Where an opened reader begins (core.startPlan): `highestStampSeq`, the ring's highest stamp when
   * the plan drops data below the stamps; `found`, where the plan's seek found its seq (or the oldest later record).
   */
  start(plan: ReturnType<typeof core.startPlan>, highestStampSeq: bigint | undefined, found: core.Position | undefined): void {
    if (plan.dropDataBelow === "stamps") this.dropDataBelowSeq = core.must(highestStampSeq) + 1n;
    else if (plan.dropDataBelow !== undefined) this.dropDataBelowSeq = plan.dropDataBelow;
    if (plan.at !== undefined) this.moveTo(plan.at);
    if (plan.seek !== undefined) this.moveTo(core.seekTo(plan.seek, found, this.block));
  }

  /** Moves the expected position (the damage timer restarts); what was skipped is counted lost. */
  moveTo(to: core.Position & { lost?: bigint }): void {
    this.counters.lost += to.lost ?? 0n;
    this.seq = to.seq;
    this.block = to.block >= this.ringBlocks ? 0 : to.block;
    this.invalidSinceMs = undefined;
  }

  /** Past the record (or pad) at the expected slot, counted by its outcome; under anti-replay a delivered one is the new high-water mark. */
  pass(header: RecordHeader, outcome: keyof typeof OUTCOME_COUNTERS, antiReplay: boolean): void {
    const counter = OUTCOME_COUNTERS[outcome];
    if (counter !== undefined) this.counters[counter]++;
    if (outcome === "delivered" && antiReplay) this.highWater = { epoch: header.epoch, seq: this.seq };
    this.moveTo(core.past(this.state, header));
  }

  /** Data of the record of `seq` was written before a restart (start: afterAck): dropped, not delivered. */
  stale(seq: bigint): boolean {
    return seq < this.dropDataBelowSeq;
  }

  /** Follows a newer epoch's (verified) superblock; `jump`: our next seq belongs to it, so continue at its start. */
  adopt(superblock: Superblock, jump: core.Position | undefined): void {
    this.counters.epochChanges++;
    this.superblock = superblock;
    this.epoch = superblock.epoch;
    if (jump !== undefined) this.moveTo(jump);
  }
}
