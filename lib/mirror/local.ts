// LocalMirror: lunlink copies a send volume onto the peer's receive volume itself, for sites with no
// array replication. Pipeline: follow the source ring (a RingReader, so only verified records move)
// -> write each record's later blocks, then its first block (a reader on the destination never sees a
// header ahead of its payload) -> copy the status slots every statusCopyMs and the superblock (copy B,
// then A) when the epoch changes. A full resync (ring from its end down to its start, so a record's
// later blocks again land first; then status; then superblock B, then A) runs at start and after an
// overrun. Never writes a partial block: every write is whole blocks of the source's block size.
// The status head copied to the destination is capped at what the mirror has copied.
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import { RING_START_BLOCK, STATUS_SLOT_BLOCKS } from "../format/layout.ts";
import { decodeStatus, encodeStatus } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { Background } from "../io/background.ts";
import { ErrorCode, LunlinkError, integerOption, invalidArgument } from "../io/errors.ts";
import type { Volume } from "../io/volume.ts";
import { RingReader } from "../ring/reader.ts";
import { openSuperblock } from "../ring/superblocks.ts";

export interface LocalMirrorOptions {
  /** Mirror onto a destination formatted for another volume or pair (default false). */
  force?: boolean;
  /** Status slots are copied at least this often while following (default 10 ms). */
  statusCopyMs?: number;
  /** Watch sleep between reads of the next source block while idle (default 100 us, doubling to pollMaxMs). */
  pollMinUs?: number;
  pollMaxMs?: number;
  /** Bytes per request during a resync (default 1 MiB). */
  resyncChunkBytes?: number;
}

export interface MirrorCounters {
  records: number;
  blocksCopied: number;
  resyncs: number;
  statusCopies: number;
  superblockCopies: number;
  /** performance.now() of the last record copied, for lag. */
  lastCopyMs: number;
}

export interface MirrorEvents {
  record: [seq: bigint, blocks: number];
  resync: [];
  error: [Error];
}

export class LocalMirror extends EventEmitter<MirrorEvents> {
  readonly source: Volume;
  readonly destination: Volume;
  readonly counters: MirrorCounters = { records: 0, blocksCopied: 0, resyncs: 0, statusCopies: 0, superblockCopies: 0, lastCopyMs: 0 };
  private superblock: Superblock;
  private readonly B: number;
  private readonly options: Required<Omit<LocalMirrorOptions, "force">>;
  private reader: RingReader | undefined;
  private readonly task = new Background();

  private constructor(source: Volume, destination: Volume, superblock: Superblock, options: LocalMirror["options"]) {
    super();
    this.source = source;
    this.destination = destination;
    this.superblock = superblock;
    this.B = superblock.blockBytes;
    this.options = options;
  }

  static async open(source: Volume, destination: Volume, options: LocalMirrorOptions = {}): Promise<LocalMirror> {
    const resolved = {
      statusCopyMs: integerOption("statusCopyMs", options.statusCopyMs, 10, 1, 60_000),
      pollMinUs: integerOption("pollMinUs", options.pollMinUs, 100, 0, 1_000_000),
      pollMaxMs: integerOption("pollMaxMs", options.pollMaxMs, 10, 1, 1000),
      resyncChunkBytes: integerOption("resyncChunkBytes", options.resyncChunkBytes, 1024 * 1024, 4096, 64 * 1024 * 1024),
    };
    const { superblock } = await openSuperblock(source);
    const needed = superblock.volumeBlocks * BigInt(superblock.blockBytes);
    if (destination.geometry.sizeBytes < needed) {
      throw new LunlinkError(ErrorCode.VolumeTooSmall, `mirror ${source.path} -> ${destination.path}: the destination holds ${destination.geometry.sizeBytes} bytes, the source volume needs ${needed}`, { path: destination.path });
    }
    if (destination.geometry.logicalBlockSize > superblock.blockBytes) {
      throw new LunlinkError(ErrorCode.Misaligned, `mirror ${source.path} -> ${destination.path}: the destination's ${destination.geometry.logicalBlockSize}-byte sectors are larger than the source's ${superblock.blockBytes}-byte blocks`, { path: destination.path });
    }
    if (options.force !== true) {
      try {
        const { superblock: existing } = await openSuperblock(destination);
        if (existing.volumeUuid !== superblock.volumeUuid) {
          throw new LunlinkError(
            ErrorCode.WrongPair,
            `mirror ${source.path} -> ${destination.path}: the destination is volume ${existing.volumeUuid} of pair ${existing.pairUuid} (writer node ${existing.writerNode}), not a copy of ${superblock.volumeUuid}; use --force to overwrite it`,
            { path: destination.path },
          );
        }
      } catch (error) {
        if (!(error instanceof LunlinkError) || error.code !== ErrorCode.NotFormatted) throw error;
      }
    }
    return new LocalMirror(source, destination, superblock, resolved);
  }

  /** Copies the whole source volume onto the destination, in an order safe for a live reader. */
  async resync(): Promise<void> {
    const B = this.B;
    const sb = this.superblock;
    const ringBlocks = Number(sb.ringBlocks);
    const chunkBlocks = Math.max(1, Math.floor(this.options.resyncChunkBytes / B));
    // Ring from its end down, so within any record the later blocks are copied first. Two buffers:
    // the next chunk is read while the current one is written.
    const buffers = [this.source.alloc(chunkBlocks * B), this.source.alloc(chunkBlocks * B)] as const;
    const chunks: [number, number][] = [];
    for (let end = ringBlocks; end > 0; end -= chunkBlocks) chunks.push([Math.max(0, end - chunkBlocks), end]);
    const read = async (i: number): Promise<Uint8Array> => {
      const [start, end] = chunks[i]!;
      const view = buffers[i % 2]!.subarray(0, (end - start) * B);
      await this.source.read((RING_START_BLOCK + start) * B, view);
      return view;
    };
    let pending = chunks.length > 0 ? read(0) : undefined;
    try {
      for (let i = 0; i < chunks.length; i++) {
        const view = await pending!;
        pending = i + 1 < chunks.length ? read(i + 1) : undefined;
        const [start, end] = chunks[i]!;
        await this.destination.write((RING_START_BLOCK + start) * B, view);
        this.counters.blocksCopied += end - start;
      }
    } finally {
      pending?.catch(() => undefined); // a write failed: the read in flight is abandoned, not unhandled
    }
    await this.copyStatus();
    await this.copySuperblock();
    await this.destination.flush();
    this.counters.resyncs++;
    this.emit("resync");
  }

  /** Resyncs, then follows the source ring until stop(). */
  start(): void {
    this.task.start(
      () => this.follow(),
      (error) => {
        if (this.listenerCount("error") > 0) this.emit("error", error);
      },
    );
  }

  /** Resolves when following has stopped; rejects with the error that stopped it. */
  finished(): Promise<void> {
    return this.task.finished();
  }

  /** Stops following; rejects with the error that had stopped it, if any. */
  async stop(): Promise<void> {
    await this.task.stop();
    if (this.task.error !== undefined) throw this.task.error;
  }

  /** Records the source has and the destination does not yet (from the source status block). */
  get lagRecords(): bigint {
    const head = this.reader?.status?.headSeq;
    const at = this.reader?.seq;
    return head !== undefined && at !== undefined && head > at ? head - at : 0n;
  }

  private async follow(): Promise<void> {
    // Capture the head first: whatever lands during the resync is copied by both, which is harmless.
    this.reader = await RingReader.open(this.source, { nodeId: this.superblock.peerNode, start: "head" });
    await this.resync();
    const reader = this.reader;
    const noFrames = (): void => {};
    const B = this.B;
    const copyRecord = async (record: Uint8Array, ringBlock: number, seq: bigint): Promise<void> => {
      const offset = (RING_START_BLOCK + ringBlock) * B;
      if (record.length > B) await this.destination.write(offset + B, record.subarray(B)); // payload first
      await this.destination.write(offset, record.subarray(0, B)); // then the header block
      this.counters.records++;
      this.counters.blocksCopied += record.length / B;
      this.counters.lastCopyMs = performance.now();
      this.emit("record", seq, record.length / B);
    };
    let sleepUs = this.options.pollMinUs;
    let fresh = false;
    let lastStatusMs = performance.now();
    while (this.task.running) {
      const outcome = await reader.poll(noFrames, fresh, copyRecord);
      fresh = false;
      if (outcome === "overrun") {
        await this.resync(); // the source lapped the mirror: copy everything again
      } else if (outcome === "epoch") {
        this.superblock = (await openSuperblock(this.source)).superblock;
        await this.copySuperblock();
      }
      if (performance.now() - lastStatusMs >= this.options.statusCopyMs) {
        lastStatusMs = performance.now();
        const changed = await reader.refresh();
        if (changed === "epoch") {
          this.superblock = (await openSuperblock(this.source)).superblock;
          await this.copySuperblock();
        }
        await this.copyStatus();
      }
      if (outcome !== "waiting") {
        sleepUs = this.options.pollMinUs;
        continue;
      }
      const waitMs = Math.max(1, Math.ceil(this.options.statusCopyMs - (performance.now() - lastStatusMs)));
      fresh = await this.source.watch(reader.expectedOffset, reader.firstBlock, { compareBytes: 96, sleepUs, timeoutMs: waitMs });
      if (!fresh) sleepUs = Math.min(this.options.pollMaxMs * 1000, Math.max(1, sleepUs * 2));
    }
    await this.copyStatus();
  }

  /**
   * Copies both status slots. The head they name is capped at what the mirror has copied: a reader
   * of the destination must not learn of records that are not there yet (it would take their absence
   * for damage and skip them).
   */
  private async copyStatus(): Promise<void> {
    const B = this.B;
    const slots = this.source.alloc(2 * B);
    await this.source.read(STATUS_SLOT_BLOCKS[0] * B, slots);
    const reader = this.reader;
    if (reader !== undefined) {
      for (let i = 0; i < 2; i++) {
        const slot = slots.subarray(i * B, (i + 1) * B);
        const decoded = decodeStatus(slot);
        if (!decoded.ok || decoded.status.epoch !== reader.epoch || decoded.status.headSeq <= reader.seq) continue;
        encodeStatus({ ...decoded.status, headSeq: reader.seq, headBlock: BigInt(reader.block) }, slot);
      }
    }
    await this.destination.write(STATUS_SLOT_BLOCKS[0] * B, slots);
    this.counters.statusCopies++;
  }

  /** Copy B, sync, copy A, sync: a reader of the destination never sees A ahead of B. */
  private async copySuperblock(): Promise<void> {
    const B = this.B;
    const lastOffset = (this.superblock.volumeBlocks - 1n) * BigInt(B);
    const block = this.source.alloc(B);
    await this.source.read(0, block);
    await this.destination.write(lastOffset, block);
    await this.destination.flush();
    await this.destination.write(0, block);
    await this.destination.flush();
    this.counters.superblockCopies++;
  }
}
