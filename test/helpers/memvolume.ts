// An in-memory volume for the deterministic simulation: the subset of Volume the ring uses, over a
// byte array, with faults the simulation injects on purpose (a write torn at a 512-byte sector that
// completes later, bit flips). Real-device behaviour is covered by the device tests; this exists so
// a seeded run of thousands of steps replays exactly.
import { EventEmitter } from "node:events";

import { ErrorCode, LunlinkError, type Volume } from "../../lib/index.ts";
import type { VolumeGeometry } from "../../lib/io/geometry.ts";

/** An EventEmitter like Volume (stall/recover), so views over it (lib/ring/region.ts) can listen. */
export class MemVolume extends EventEmitter {
  readonly path = "mem:simulation";
  readonly readOnly = false;
  readonly store: Uint8Array;
  readonly geometry: VolumeGeometry;
  /** When set, the next write keeps only this many 512-byte sectors now; the rest is held back. */
  tearNextWriteAtSector: number | undefined;
  private held: { offset: number; bytes: Uint8Array } | undefined;
  /**
   * When set, the next read it matches rejects with ERR_LUNLINK_IO_STALLED as a stalled device's
   * does, and stays parked holding its buffer until completeParkedReads (then it is cleared).
   */
  stallRead: ((offsetBytes: number, lengthBytes: number) => boolean) | undefined;
  /** Reads rejected as stalled, still holding the buffer they were given. */
  readonly parked: { offset: number; buffer: Uint8Array }[] = [];
  /** While set, every read and write fails with this error (EIO on demand). */
  failWith: Error | undefined;
  /** While true, writes hang (a stalled device) until releaseStalledWrites(). */
  stallWrites = false;
  private stalled: (() => void)[] = [];

  constructor(sizeBytes: number) {
    super();
    this.store = new Uint8Array(sizeBytes);
    this.geometry = {
      kind: "file",
      sizeBytes: BigInt(sizeBytes),
      logicalBlockSize: 512,
      physicalBlockSize: 4096,
      memoryAlignment: 512,
      device: "0:0",
      memoryBacked: true,
    };
  }

  asVolume(): Volume {
    return this as unknown as Volume;
  }

  alloc(length: number): Uint8Array {
    return new Uint8Array(length);
  }

  async read(offset: number | bigint, lengthOrBuffer: number | Uint8Array): Promise<Uint8Array> {
    if (this.failWith !== undefined) throw this.failWith;
    const at = Number(offset);
    const buffer = typeof lengthOrBuffer === "number" ? new Uint8Array(lengthOrBuffer) : lengthOrBuffer;
    if (at + buffer.length > this.store.length) throw new Error(`simulated read past the end: ${at}+${buffer.length}`);
    if (this.stallRead?.(at, buffer.length) === true) {
      this.stallRead = undefined;
      this.parked.push({ offset: at, buffer });
      throw new LunlinkError(ErrorCode.IoStalled, `read ${this.path}: simulated stall at offset ${at}`, { path: this.path });
    }
    buffer.set(this.store.subarray(at, at + buffer.length));
    return buffer;
  }

  /** Volume.watch, simplified: reads the range once into `buffer`; true if its first compareBytes changed (untilStamp: if it holds that stamp or a later seq). */
  async watch(offset: number | bigint, buffer: Uint8Array, options: { compareBytes: number; untilStamp?: { magic: number; seq: bigint } }): Promise<boolean> {
    const before = buffer.slice(0, options.compareBytes);
    await this.read(offset, buffer);
    const until = options.untilStamp;
    if (until !== undefined) {
      const v = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      return v.getUint32(0, true) === until.magic && v.getBigUint64(8, true) >= until.seq;
    }
    return Buffer.compare(before, buffer.subarray(0, options.compareBytes)) !== 0;
  }

  async write(offset: number | bigint, buffer: Uint8Array): Promise<void> {
    if (this.stallWrites) await new Promise<void>((resolve) => this.stalled.push(resolve));
    if (this.failWith !== undefined) throw this.failWith;
    // Writes reach the medium in order (as a mirror copies them): a torn write completes first.
    this.completeTornWrite();
    const at = Number(offset);
    if (at + buffer.length > this.store.length) throw new Error(`simulated write past the end: ${at}+${buffer.length}`);
    const keep = this.tearNextWriteAtSector;
    if (keep !== undefined && keep * 512 < buffer.length) {
      this.tearNextWriteAtSector = undefined;
      this.store.set(buffer.subarray(0, keep * 512), at);
      this.held = { offset: at + keep * 512, bytes: buffer.slice(keep * 512) };
      return;
    }
    this.store.set(buffer, at);
  }

  /** The parked reads complete late: each writes `fill` bytes (default: what the medium holds now) into its buffer. */
  completeParkedReads(fill?: number): number {
    const count = this.parked.length;
    for (const { offset, buffer } of this.parked.splice(0)) {
      if (fill === undefined) buffer.set(this.store.subarray(offset, offset + buffer.length));
      else buffer.fill(fill);
    }
    return count;
  }

  /** The torn write's remaining sectors reach the medium. */
  completeTornWrite(): boolean {
    if (this.held === undefined) return false;
    this.store.set(this.held.bytes, this.held.offset);
    this.held = undefined;
    return true;
  }

  /** Stalled writes go on (and fail if failWith is set by then). */
  releaseStalledWrites(): void {
    this.stallWrites = false;
    for (const resume of this.stalled.splice(0)) resume();
  }

  /** The torn write's remaining sectors are lost for good (the writer crashed). */
  dropTornWrite(): void {
    this.held = undefined;
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}
