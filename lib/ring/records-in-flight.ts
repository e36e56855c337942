// The writer's bookkeeping of writes in flight (docs/format.md "Writer: record writes in flight"), pure:
// up to maxRecordsInFlight record writes at consecutive ring positions, issued in seq order and
// completing in any order; the head (headSeq/headBlock) moves only over the completed prefix, so a status
// block never names a record whose write is still in flight. Every other write (pad, status, rekey,
// owner check) runs alone: it starts only once the records drained, and no record is issued meanwhile.
import { Fifo } from "./fifo.ts";

/** A record write issued and not yet retired (retired once it and every record before it completed). */
export interface RecordInFlight<S> {
  seq: bigint;
  startBlock: number;
  blocks: number;
  /** The caller's buffer the record was written from (given back when retired). */
  slot: S;
  done: boolean;
}

/** `A`: what the caller calls its lone (non-record) writes, e.g. its states. */
export class RecordsInFlight<S, A extends string = string> {
  /** Record writes issued and not yet retired, in seq order. Bound: maxRecordsInFlight. */
  private readonly pipeline: Fifo<RecordInFlight<S>>;
  /** The head: the first record not yet written (every write below it completed). */
  private seqNow: bigint;
  private headBlockNow: number;
  /** Where the next record is issued: past the last one in the pipeline (the head when it is empty). */
  private issueSeqNow: bigint;
  private issueBlockNow: number;
  /** The lone (non-record) write in flight, if any. */
  private aloneNow: A | undefined;

  constructor(
    readonly maxRecordsInFlight: number,
    private readonly ringBlocks: number,
    seq: bigint,
    headBlock: number,
  ) {
    this.pipeline = new Fifo<RecordInFlight<S>>(maxRecordsInFlight);
    this.seqNow = seq;
    this.headBlockNow = headBlock;
    this.issueSeqNow = seq;
    this.issueBlockNow = headBlock;
  }

  /** The head: the next record to complete in order. Only it goes to the status block. */
  get headSeq(): bigint {
    return this.seqNow;
  }

  get headBlock(): number {
    return this.headBlockNow;
  }

  get issueSeq(): bigint {
    return this.issueSeqNow;
  }

  get issueBlock(): number {
    return this.issueBlockNow;
  }

  /** Record writes issued and not yet retired. */
  get length(): number {
    return this.pipeline.length;
  }

  /** No record write in flight: a lone write may start. */
  get drained(): boolean {
    return this.pipeline.length === 0;
  }

  /** No place for another record write. */
  get full(): boolean {
    return this.pipeline.length >= this.maxRecordsInFlight;
  }

  /** The lone write in flight, if any. */
  get alone(): A | undefined {
    return this.aloneNow;
  }

  /** The i-th oldest record write in flight (0: the one at the head). */
  at(i: number): RecordInFlight<S> | undefined {
    return this.pipeline.at(i);
  }

  /** Does a record of `blocks` at the issue position run past the ring's end (the lap must end first)? */
  wraps(blocks: number): boolean {
    return this.issueBlockNow + blocks > this.ringBlocks;
  }

  /** A record write goes out at the issue position; returns where it goes. */
  issue(blocks: number, slot: S): { seq: bigint; startBlock: number } {
    if (this.aloneNow !== undefined) throw new Error(`assertion failed: record issued with ${this.aloneNow} in flight`);
    if (this.wraps(blocks)) throw new Error(`assertion failed: record of ${blocks} blocks issued at block ${this.issueBlockNow} of ${this.ringBlocks}`);
    const seq = this.issueSeqNow;
    const startBlock = this.issueBlockNow;
    this.pipeline.push({ seq, startBlock, blocks, slot, done: false });
    this.issueSeqNow++;
    this.issueBlockNow += blocks;
    if (this.issueBlockNow >= this.ringBlocks) this.issueBlockNow = 0;
    return { seq, startBlock };
  }

  /**
   * A record write completed: `seq` names it (records complete in any order); absent, it must be the
   * only record not yet done. Call retire() until undefined next: the head moves over the done prefix.
   */
  complete(seq: bigint | undefined): void {
    let entry: RecordInFlight<S> | undefined;
    for (let i = 0; i < this.pipeline.length; i++) {
      const candidate = this.pipeline.at(i)!;
      if (seq === undefined ? !candidate.done : candidate.seq === seq) {
        if (entry !== undefined) throw new Error("assertion failed: completed() without a seq while several records are in flight");
        entry = candidate;
        if (seq !== undefined) break;
      }
    }
    if (entry === undefined || entry.done) throw new Error(`assertion failed: completed(${seq ?? "no seq"}) matches no record write in flight`);
    entry.done = true;
  }

  /** Takes the record at the head if its write completed, moving the head over it; else undefined. */
  retire(): RecordInFlight<S> | undefined {
    const head = this.pipeline.peek();
    if (head?.done !== true) return undefined;
    this.pipeline.shift();
    if (head.seq !== this.seqNow || head.startBlock !== this.headBlockNow) throw new Error(`assertion failed: record ${head.seq} at block ${head.startBlock} retired with the head at ${this.seqNow}/${this.headBlockNow}`);
    this.seqNow++;
    this.headBlockNow += head.blocks;
    if (this.headBlockNow >= this.ringBlocks) this.headBlockNow = 0;
    return head;
  }

  /** A lone write starts: only with no record in flight and no other lone write. */
  startAlone(what: A): void {
    if (this.aloneNow !== undefined) throw new Error(`assertion failed: ${what} started with ${this.aloneNow} in flight`);
    if (this.pipeline.length > 0) throw new Error(`assertion failed: ${what} started with ${this.pipeline.length} record writes in flight`);
    this.aloneNow = what;
  }

  /** The lone write settled (completed, failed or abandoned): returns what it was, if any. */
  endAlone(): A | undefined {
    const was = this.aloneNow;
    this.aloneNow = undefined;
    return was;
  }

  /** The pad that ends the lap completed (written alone at the head): it takes one seq; the next lap starts at block 0. */
  padWritten(): void {
    if (this.pipeline.length > 0) throw new Error("assertion failed: pad written with record writes in flight");
    this.seqNow++;
    this.issueSeqNow = this.seqNow;
    this.headBlockNow = 0;
    this.issueBlockNow = 0;
  }

  /** The writer stopped (closed or failed): the records in flight are let go, the head stays below them. */
  clear(): void {
    this.pipeline.clear();
  }
}
