// LocalMirror: lunlink copies a send volume onto the peer's receive volume itself, for sites with no
// array replication (both volumes visible on this host). Following, status and superblock copies
// are RingMirror's; the resync here copies the whole volume: the ring from its end down to its start
// (so a record's later blocks again land first), then status, then superblock B, then A. Never
// writes a partial block: every write is whole blocks of the source's block size.
import type { Volume } from "../io/volume.ts";
import { RING_START_BLOCK } from "../format/layout.ts";
import { openSuperblock } from "../ring/superblocks.ts";
import { RingMirror, checkDestination, resolveMirrorOptions, type RingMirrorOptions } from "./ring-mirror.ts";
import type { BlockSink } from "./sink.ts";

export type { MirrorCounters, MirrorProgress, MirrorEvents } from "./ring-mirror.ts";

export interface LocalMirrorOptions extends RingMirrorOptions {
  /** Mirror onto a destination formatted for another volume or pair (default false). */
  force?: boolean;
}

export class LocalMirror extends RingMirror {
  readonly destination: Volume;

  private constructor(source: Volume, destination: Volume, superblock: LocalMirror["superblock"], options: LocalMirror["options"]) {
    super(source, superblock, options, "mirror copy");
    this.destination = destination;
  }

  static async open(source: Volume, destination: Volume, options: LocalMirrorOptions = {}): Promise<LocalMirror> {
    const resolved = resolveMirrorOptions(options);
    const { superblock } = await openSuperblock(source);
    await checkDestination(superblock, source.path, destination, options.force === true);
    return new LocalMirror(source, destination, superblock, resolved);
  }

  protected get sink(): BlockSink {
    return this.destination;
  }

  protected attempt(): Promise<void> {
    return this.follow();
  }

  protected get volumes(): readonly Volume[] {
    return [this.source, this.destination];
  }

  /**
   * Copies the source volume onto the destination, in an order safe for a live reader. With
   * changedOnly the destination is read too and only the blocks that differ are written (the
   * "once" and "interval" modes: what changed since the last copy), counted in blocksSkipped.
   */
  async resync(changedOnly = false): Promise<void> {
    const B = this.blockBytes;
    const chunkBlocks = Math.max(1, Math.floor(this.options.resyncChunkBytes / B));
    const chunks = this.resyncChunks(chunkBlocks);
    // Two buffers: the next chunk is read while the current one is written.
    const buffers = [this.source.alloc(chunkBlocks * B), this.source.alloc(chunkBlocks * B)] as const;
    const current = changedOnly ? this.source.alloc(chunkBlocks * B) : undefined;
    const read = async (i: number): Promise<Uint8Array> => {
      const [start, end] = chunks[i]!;
      const view = buffers[i % 2]!.subarray(0, (end - start) * B);
      await this.source.read((RING_START_BLOCK + start) * B, view);
      return view;
    };
    const progress = this.startResync();
    let pending = chunks.length > 0 ? read(0) : undefined;
    try {
      for (let i = 0; i < chunks.length; i++) {
        const view = await pending!;
        pending = i + 1 < chunks.length ? read(i + 1) : undefined;
        const [start, end] = chunks[i]!;
        if (current === undefined) {
          await this.destination.write((RING_START_BLOCK + start) * B, view);
          this.counters.blocksCopied += end - start;
        } else {
          await this.copyDiffering(start, view, current.subarray(0, view.length));
        }
        progress.blocksDone += end - start;
        progress.bytes += view.length;
        this.emit("progress", { ...progress });
      }
    } finally {
      pending?.catch(() => undefined); // a write failed: the read in flight is abandoned, not unhandled
    }
    await this.finishResync(progress);
  }

  /** Writes the runs of blocks where `source` (ring blocks from `start`) differs from the destination, highest first. */
  private async copyDiffering(start: number, source: Uint8Array, destination: Uint8Array): Promise<void> {
    const B = this.blockBytes;
    await this.destination.read((RING_START_BLOCK + start) * B, destination);
    const blocks = source.length / B;
    const same = (i: number): boolean => Buffer.compare(source.subarray(i * B, (i + 1) * B), destination.subarray(i * B, (i + 1) * B)) === 0;
    let end = blocks;
    while (end > 0) {
      if (same(end - 1)) {
        this.counters.blocksSkipped++;
        end--;
        continue;
      }
      let first = end - 1;
      while (first > 0 && !same(first - 1)) first--;
      await this.destination.write((RING_START_BLOCK + start + first) * B, source.subarray(first * B, end * B));
      this.counters.blocksCopied += end - first;
      end = first;
    }
  }
}
