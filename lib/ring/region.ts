// A region of a cluster volume seen as a volume of its own: offsets are region-relative, the size is
// the region's, and every request is checked to stay inside it before it reaches the base volume. So
// the writer, reader, mirrors and inspection run unchanged on a region (docs/format.md, Block size and
// layout). The view does not own the base volume: close() on it only stops its own use; the owner of
// the cluster volume closes the base. Stall and recover events of the base are forwarded.
import { EventEmitter } from "node:events";

import { ErrorCode, LunlinkError } from "../errors.ts";
import type { VolumeGeometry } from "../io/geometry.ts";
import type { Volume, VolumeEvents, WatchOptions } from "../io/volume.ts";

type Offset = number | bigint;

export class RegionVolume extends EventEmitter<VolumeEvents> {
  readonly path: string;
  readonly geometry: VolumeGeometry;
  private readonly base: Volume;
  private readonly startBytes: bigint;
  private readonly sizeBytes: bigint;
  private closedView = false;
  private readonly forwardStall = (parked: number): void => void this.emit("stall", parked);
  private readonly forwardRecover = (): void => void this.emit("recover");

  constructor(base: Volume, startBlock: bigint, blocks: bigint, blockBytes: number, label: string) {
    super();
    if (startBlock < 0n || blocks <= 0n || (startBlock + blocks) * BigInt(blockBytes) > base.geometry.sizeBytes) {
      throw new Error(`assertion failed: region ${startBlock}+${blocks} x ${blockBytes} outside ${base.path}`);
    }
    this.base = base;
    this.startBytes = startBlock * BigInt(blockBytes);
    this.sizeBytes = blocks * BigInt(blockBytes);
    this.path = `${base.path}#${label}`;
    this.geometry = { ...base.geometry, sizeBytes: this.sizeBytes };
    base.on("stall", this.forwardStall);
    base.on("recover", this.forwardRecover);
  }

  /**
   * The view typed as a Volume for the ring components (they use path, geometry, alloc, read, write,
   * watch, flush, close and the stall events, all of which the view provides). Volume is a class with
   * private members, so the structural match needs this one cast.
   */
  asVolume(): Volume {
    return this as unknown as Volume;
  }

  get readOnly(): boolean {
    return this.base.readOnly;
  }
  get ioTimeoutMs(): number {
    return this.base.ioTimeoutMs;
  }
  get busyPollUs(): number {
    return this.base.busyPollUs;
  }
  get warnings(): readonly string[] {
    return this.base.warnings;
  }
  get closed(): boolean {
    return this.closedView || this.base.closed;
  }
  get stalled(): boolean {
    return this.base.stalled;
  }
  get inFlight(): number {
    return this.base.inFlight;
  }

  alloc(lengthBytes: number): Uint8Array {
    return this.base.alloc(lengthBytes);
  }

  async read(offset: Offset, lengthOrBuffer: number | Uint8Array): Promise<Uint8Array> {
    const length = typeof lengthOrBuffer === "number" ? lengthOrBuffer : lengthOrBuffer.length;
    return this.base.read(this.place("read", offset, length), lengthOrBuffer);
  }

  async write(offset: Offset, buffer: Uint8Array): Promise<void> {
    return this.base.write(this.place("write", offset, buffer.length), buffer);
  }

  async watch(offset: Offset, buffer: Uint8Array, options: WatchOptions): Promise<boolean> {
    return this.base.watch(this.place("read", offset, buffer.length), buffer, options);
  }

  /** Wakes the base volume's watches (Volume.wakeWatches: a follower leaving its standby pace). */
  wakeWatches(): void {
    if (!this.closed) this.base.wakeWatches();
  }

  async flush(): Promise<void> {
    this.assertOpen("flush");
    return this.base.flush();
  }

  /** Stops this view's use (idempotent); the base volume stays open for its owner. */
  close(): Promise<void> {
    if (!this.closedView) {
      this.closedView = true;
      this.base.off("stall", this.forwardStall);
      this.base.off("recover", this.forwardRecover);
    }
    return Promise.resolve();
  }

  /** The base volume offset of a region-relative range, which must lie inside the region. */
  private place(op: "read" | "write", offset: Offset, lengthBytes: number): bigint {
    this.assertOpen(op);
    const at = BigInt(offset);
    if (at < 0n || at + BigInt(lengthBytes) > this.sizeBytes) {
      throw new LunlinkError(ErrorCode.OutOfRange, `${op} ${this.path}: ${lengthBytes} bytes at ${at} run outside the region of ${this.sizeBytes} bytes`, { path: this.path });
    }
    return this.startBytes + at;
  }

  private assertOpen(op: string): void {
    if (this.closedView) throw new LunlinkError(ErrorCode.Closed, `${op} ${this.path}: the region view is closed`, { path: this.path });
  }
}
