// SupervisedWriter: a RingWriter on the send volume under a Supervisor. After a storage fault
// (EIO, ENOSPC, short I/O, stall, device gone; the writer's run ends, appends throw) it is closed and
// a new one is opened on the volume (a new epoch above every stamp on it), after the volume's
// `recover` (stall) or a backoff (error); a configuration fault (another owner took the volume) is
// reported and not retried. Invariant: frames go only to a writer that is up; while it is down,
// tryAppend answers "down" (the layer above decides: the link retransmits control, drops data).
// Beside StoragePath (its only user) in lib/link: a ring component plus the lib/io supervisor.
import { EventEmitter } from "node:events";

import type { FrameType } from "../format/layout.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { Volume } from "../io/volume.ts";
import { Supervisor, type Incarnation, type RecoveryOptions, type StateChange } from "../io/supervisor.ts";
import { RingWriter, type RingWriterCounters, type RingWriterOptions } from "../ring/writer.ts";

export interface SupervisedWriterOptions {
  writer: RingWriterOptions;
  recovery?: RecoveryOptions;
  /**
   * Opens the send volume again by path, for a handle that keeps failing or a device that went
   * away and came back. Absent: the same handle is used for every reopen.
   */
  reopenVolume?: () => Promise<Volume>;
}

export interface SupervisedWriterEvents {
  change: [StateChange];
}

export class SupervisedWriter extends EventEmitter<SupervisedWriterEvents> {
  readonly supervisor: Supervisor;
  private readonly options: SupervisedWriterOptions;
  private currentVolume: Volume;
  private current: RingWriter | undefined;
  private last: RingWriter;
  /** Counters of the writers retired after faults (reported as totals). */
  private readonly retired: RingWriterCounters;
  private readonly upWaiters: (() => void)[] = [];

  private constructor(volume: Volume, writer: RingWriter, options: SupervisedWriterOptions) {
    super();
    this.currentVolume = volume;
    this.current = writer;
    this.last = writer;
    this.options = options;
    this.retired = { ...writer.counters };
    for (const k of keys(this.retired)) this.retired[k] = 0;
    this.supervisor = new Supervisor("send", () => this.currentVolume, (reopen) => this.reopen(reopen), options.recovery);
    this.supervisor.on("change", (change) => {
      if (change.to === "up") for (const wake of this.upWaiters.splice(0)) wake();
      this.emit("change", change);
    });
    this.watch(volume);
  }

  /** Opens the first writer (its errors are thrown: a bad config fails loudly) and supervises it. */
  static async open(volume: Volume, options: SupervisedWriterOptions): Promise<SupervisedWriter> {
    const writer = await RingWriter.open(volume, options.writer);
    const supervised = new SupervisedWriter(volume, writer, options);
    supervised.supervisor.adopt(incarnation(writer));
    return supervised;
  }

  get volume(): Volume {
    return this.currentVolume;
  }

  /** The writer while it is up; undefined while the path recovers. */
  get writer(): RingWriter | undefined {
    return this.supervisor.up && this.current?.error === undefined ? this.current : undefined;
  }

  /** The current (or last) writer's epoch and next sequence. */
  get epoch(): bigint {
    return this.last.epoch;
  }

  get headSeq(): bigint {
    return this.last.headSeq;
  }

  get queuedBytes(): number {
    return this.writer?.queuedBytes ?? 0;
  }

  /** Totals over every writer this one opened. */
  get counters(): RingWriterCounters {
    const out = { ...this.retired };
    if (this.current !== undefined) for (const k of keys(out)) out[k] += this.current.counters[k];
    return out;
  }

  /** Queues one frame without waiting (RingWriter.tryAppend), or "down" while no writer is up. */
  tryAppend(type: FrameType, payload: Uint8Array, flags = 0): "queued" | "dropped" | "full" | "down" {
    const writer = this.writer;
    return writer === undefined ? "down" : writer.tryAppend(type, payload, flags);
  }

  /** Resolves once a writer is up (at once if one is); rejects after timeoutMs, or if the fault is a configuration fault. */
  async whenUp(timeoutMs: number): Promise<RingWriter> {
    for (;;) {
      const writer = this.writer;
      if (writer !== undefined) return writer;
      if (this.supervisor.core.state === "failed" || this.supervisor.core.state === "closed") {
        throw new LunlinkError(ErrorCode.Closed, `${this.currentVolume.path}: the ring writer is ${this.supervisor.core.state}${this.supervisor.core.fault === undefined ? "" : ` (${this.supervisor.core.fault.message})`}`, { path: this.currentVolume.path });
      }
      let timer: NodeJS.Timeout | undefined;
      const woke = await new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        this.upWaiters.push(() => resolve(true));
      });
      clearTimeout(timer);
      if (!woke) throw new LunlinkError(ErrorCode.IoStalled, `${this.currentVolume.path}: no ring writer up within ${timeoutMs} ms (${this.supervisor.core.state})`, { path: this.currentVolume.path });
    }
  }

  /** Stops supervising and closes the writer (not the volume: its opener closes it, see `volume`). */
  async close(): Promise<void> {
    await this.supervisor.close();
    await this.current?.close().catch(() => undefined);
    for (const wake of this.upWaiters.splice(0)) wake();
  }

  private async reopen(freshVolume: boolean): Promise<Incarnation> {
    const failed = this.current;
    if (failed !== undefined) {
      for (const k of keys(this.retired)) this.retired[k] += failed.counters[k];
      this.current = undefined;
    }
    if (freshVolume && this.options.reopenVolume !== undefined) {
      await this.currentVolume.close().catch(() => undefined);
      this.currentVolume = await this.options.reopenVolume();
      this.watch(this.currentVolume);
    }
    const writer = await RingWriter.open(this.currentVolume, this.options.writer);
    this.current = writer;
    this.last = writer;
    return incarnation(writer);
  }

  private watch(volume: Volume): void {
    volume.on("stall", (parked) => (this.supervisor.parked = parked));
    volume.on("recover", () => (this.supervisor.parked = 0));
  }
}

/** A writer's life ends with its first error (its run stops and appends throw it). */
function incarnation(writer: RingWriter): Incarnation {
  return {
    failed: new Promise<Error | undefined>((resolve) => {
      if (writer.error !== undefined) resolve(writer.error);
      else writer.once("error", resolve);
    }),
    close: async () => {
      await writer.close();
    },
  };
}

function keys(counters: RingWriterCounters): (keyof RingWriterCounters)[] {
  return Object.keys(counters) as (keyof RingWriterCounters)[];
}
