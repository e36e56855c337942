// The RingReader's I/O buffers: the expected block, the record and a read-ahead window. Invariant (issue 11): memory handed to a read that rejected is never used again. A rejected
// read may still be parked in the kernel (ERR_LUNLINK_IO_STALLED) and complete into that memory later,
// even between a record's authentication and its delivery, so the buffer is replaced by a fresh one.
// The window only ever holds bytes older than the volume, never newer (a slot not yet written).
import { RING_START_BLOCK } from "../format/layout.ts";
import type { Volume } from "../io/volume.ts";

/** Read-ahead grows from MIN to MAX while records arrive back to back; it stops when caught up. */
const READ_AHEAD_MIN_BYTES = 64 * 1024;
const READ_AHEAD_MAX_BYTES = 1024 * 1024;

export type BufferName = "first" | "record";

export class ReaderBuffers {
  private readonly volume: Volume;
  private readonly blockBytes: number;
  private readonly ringEndBytes: number;
  private readonly owned: { first: Uint8Array; record: Uint8Array; ahead: Uint8Array | undefined };
  private aheadOffset = 0;
  private aheadLength = 0;
  private aheadBytes = 0;
  private streak = 0;

  constructor(volume: Volume, blockBytes: number, ringBlocks: number, recordBytes: number) {
    this.volume = volume;
    this.blockBytes = blockBytes;
    this.ringEndBytes = (RING_START_BLOCK + ringBlocks) * blockBytes;
    this.owned = { first: volume.alloc(blockBytes), record: volume.alloc(recordBytes), ahead: undefined };
  }

  /** The buffer as it is now (a later rejected read may replace it: do not keep it across reads). */
  get(name: BufferName): Uint8Array {
    return this.owned[name];
  }

  /**
   * Reads ring bytes at `offsetBytes` into `name` [start, end), through the read-ahead window: while
   * records keep arriving back to back (a backlog) one large read serves several of them.
   */
  async readRing(offsetBytes: number, name: BufferName, start: number, end: number): Promise<void> {
    const length = end - start;
    const ahead = this.owned.ahead;
    if (ahead !== undefined && this.aheadLength > 0 && offsetBytes >= this.aheadOffset && offsetBytes + length <= this.aheadOffset + this.aheadLength) {
      const at = offsetBytes - this.aheadOffset;
      this.get(name).set(ahead.subarray(at, at + length), start);
      return;
    }
    const windowBytes = Math.min(Math.max(length, this.aheadBytes), this.ringEndBytes - offsetBytes);
    this.aheadLength = 0;
    if (windowBytes <= length) {
      await this.read(name, offsetBytes, start, end);
      return;
    }
    this.owned.ahead ??= this.volume.alloc(READ_AHEAD_MAX_BYTES);
    const view = await this.read("ahead", offsetBytes, 0, windowBytes);
    this.aheadOffset = offsetBytes;
    this.aheadLength = windowBytes;
    this.get(name).set(view.subarray(0, length), start);
  }

  /** Reads straight into `name` [start, end) (no window). */
  read(name: BufferName | "ahead", offsetBytes: number, start: number, end: number): Promise<Uint8Array> {
    return this.use(name, (buffer) => this.volume.read(offsetBytes, buffer.subarray(start, end)));
  }

  /** Lends buffer `name` to a read; if it rejects, the buffer is dropped for a fresh one. */
  async use<T>(name: BufferName | "ahead", read: (buffer: Uint8Array) => Promise<T>): Promise<T> {
    const buffer = this.owned[name];
    if (buffer === undefined) throw new Error(`assertion failed: buffer ${name} not allocated`);
    try {
      return await read(buffer);
    } catch (error) {
      this.owned[name] = this.volume.alloc(buffer.length);
      if (name === "ahead") this.aheadLength = 0;
      throw error;
    }
  }

  /** A watch just read the expected block: anything read ahead before is older. */
  dropWindow(): void {
    this.aheadLength = 0;
  }

  /** After a poll: grow the window from the second record in a row on; else read only what is needed, fresh. */
  afterPoll(progressed: boolean): void {
    if (progressed) {
      if (this.streak++ > 0) this.aheadBytes = Math.min(READ_AHEAD_MAX_BYTES, Math.max(2 * this.aheadBytes, READ_AHEAD_MIN_BYTES));
      return;
    }
    this.caughtUp();
  }

  /** The reader caught up with the writer (nothing at the expected slot, or a watch for it): no backlog, no window. */
  caughtUp(): void {
    this.streak = 0;
    this.aheadBytes = 0;
    this.aheadLength = 0;
  }
}
