// WritePump: the mirror's destination writes, overlapped with its source reads. While no write is in
// flight a record is written at once (no added latency when the ring is quiet); while one is, the
// next records are copied aside and coalesced into contiguous segments, written together when it
// completes. Each segment is written as two requests: every block but its first, then its first
// block. A reader of the destination reads records in order, so by the time it sees the first
// record's header everything after it in the segment is already there: it never sees a header
// ahead of its payload. The pump knows the ring position after the last record written (writtenHead):
// the status copy caps the head it copies there, so it never waits for the writes (issue #13: a drain
// per status copy kept the mirror from reading for a write or two every statusCopyMs). Bounds: at most MAX_SEGMENT_BYTES per segment (or one record, if larger)
// and MAX_PENDING_BYTES copied aside (add() then waits for the writes to catch up). A segment's
// buffer goes back to the spares only after its write succeeded: one whose write failed or stalled
// may still be read by a parked request, so it is dropped with the (then dead) pump.
import type { BlockSink } from "./sink.ts";

export const MAX_SEGMENT_BYTES = 1024 * 1024;
export const MAX_PENDING_BYTES = 8 * 1024 * 1024;

/** A ring position: the next record's seq and its ring block. */
export interface RingPosition {
  seq: bigint;
  block: number;
}

interface Segment {
  offsetBytes: number;
  buffer: Uint8Array;
  lengthBytes: number;
  records: { seq: bigint; blocks: number; after: RingPosition }[];
}

export class WritePump {
  private readonly sink: BlockSink;
  private readonly blockBytes: number;
  private readonly alloc: (bytes: number) => Uint8Array;
  private readonly onWritten: (seq: bigint, blocks: number) => void;
  private queue: Segment[] = [];
  private pendingBytes = 0;
  private writing = false;
  private failure: Error | undefined;
  private readonly spare: Uint8Array[] = [];
  private waiters: (() => void)[] = [];
  private written: RingPosition | undefined;

  constructor(sink: BlockSink, blockBytes: number, alloc: (bytes: number) => Uint8Array, onWritten: (seq: bigint, blocks: number) => void) {
    this.sink = sink;
    this.blockBytes = blockBytes;
    this.alloc = alloc;
    this.onWritten = onWritten;
  }

  /**
   * Queues one verified record (copied: the caller's buffer is reused); waits only at the bound.
   * `after`: the reader's position past this record (what writtenHead becomes once it is written).
   */
  async add(offsetBytes: number, record: Uint8Array, seq: bigint, after: RingPosition): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (record.length % this.blockBytes !== 0 || offsetBytes % this.blockBytes !== 0) throw new Error(`assertion failed: record of ${record.length} bytes at ${offsetBytes} is not whole blocks`);
    while (this.pendingBytes + record.length > MAX_PENDING_BYTES && this.pendingBytes > 0 && this.failure === undefined) await this.wait();
    if (this.failure !== undefined) throw this.failure;
    const last = this.queue.at(-1);
    if (last !== undefined && last.offsetBytes + last.lengthBytes === offsetBytes && last.lengthBytes + record.length <= last.buffer.length) {
      last.buffer.set(record, last.lengthBytes);
      last.lengthBytes += record.length;
      last.records.push({ seq, blocks: record.length / this.blockBytes, after });
    } else {
      const size = Math.max(MAX_SEGMENT_BYTES, record.length);
      const buffer = size === MAX_SEGMENT_BYTES ? (this.spare.pop() ?? this.alloc(size)) : this.alloc(size);
      buffer.set(record, 0);
      this.queue.push({ offsetBytes, buffer, lengthBytes: record.length, records: [{ seq, blocks: record.length / this.blockBytes, after }] });
    }
    this.pendingBytes += record.length;
    if (!this.writing) void this.pump();
  }

  /** True while nothing added is waiting or being written (every record added is on the sink). */
  get idle(): boolean {
    return !this.writing && this.queue.length === 0 && this.pendingBytes === 0;
  }

  /** Throws the error a write failed with (the status copy checks it: an idle mirror adds nothing to find out). */
  throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** The position past the last record written (undefined before the first one). */
  get writtenHead(): RingPosition | undefined {
    return this.written;
  }

  /** Record bytes added and not (yet) written; after a failure, those that never will be. */
  get unwrittenBytes(): number {
    return this.pendingBytes;
  }

  /** Resolves once everything added is written (and rejects if a write failed). */
  async drain(): Promise<void> {
    while ((this.writing || this.queue.length > 0) && this.failure === undefined) await this.wait();
    if (this.failure !== undefined) throw this.failure;
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async pump(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0 && this.failure === undefined) {
        const segment = this.queue.shift()!;
        const B = this.blockBytes;
        const bytes = segment.buffer.subarray(0, segment.lengthBytes);
        if (bytes.length > B) await this.sink.write(segment.offsetBytes + B, bytes.subarray(B)); // payloads first
        await this.sink.write(segment.offsetBytes, bytes.subarray(0, B)); // then the first header
        this.pendingBytes -= segment.lengthBytes;
        if (segment.buffer.length === MAX_SEGMENT_BYTES && this.spare.length < 2) this.spare.push(segment.buffer);
        for (const r of segment.records) {
          this.written = r.after;
          this.onWritten(r.seq, r.blocks);
        }
        this.wake();
      }
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
      this.queue = []; // nothing more will be written: waiters must see the failure, not wait on
      // pendingBytes stays: what was added and never written (stop() reports it).
    } finally {
      this.writing = false;
      this.wake();
    }
  }
}
