// ReceiveRing: one peer's ring as this node reads it, healing itself: a RingReader and its Poller on
// the volume, under a Supervisor, so an EIO, stall or vanished device takes it down and it comes back
// by itself (same handle: the same reader at the same position; a fresh handle: a new reader at the
// writer's head, keyed never below what it delivered). A pair's StoragePath has one, a cluster's
// ClusterStorage one per peer. Invariants: the reader never goes back, so no frame is delivered twice
// here; counter totals never go back across readers (Prometheus counters); only the current volume's
// stall events count.
import type { StatusBlock } from "../format/status.ts";
import { Supervisor, type Incarnation, type RecoveryOptions, type StateChange } from "../io/supervisor.ts";
import type { Volume } from "../io/volume.ts";
import { Poller, type PollerOptions } from "../poll/poller.ts";
import type { RingObserver } from "../ring/fault-memory.ts";
import type { RingAuth } from "../ring/keys.ts";
import { RingReader, type RingReaderCounters } from "../ring/reader.ts";
import { volumeReport, type VolumeReport } from "./peer-storage.ts";

type ReaderOptions = Parameters<typeof RingReader.open>[1];

export interface ReceiveRingOptions {
  /** The supervisor's component name in logs and status ("receive", "receive node 3"). */
  component: string;
  /** The volume's path as the status shows it. */
  path: string;
  /** Opens a fresh read-only handle on the ring (a node volume, or a peer's region of a cluster volume). */
  openVolume: () => Promise<Volume>;
  /** The reader's options; keyed: refusing records at or below `notBefore`. */
  readerOptions: (notBefore: { epoch: bigint; seq: bigint } | undefined) => ReaderOptions;
  /** Keyed ring: a fresh reader starts no lower than what this one delivered. */
  keyed: boolean;
  poller: Required<Pick<PollerOptions, "pollMinUs" | "pollMaxMs" | "statusPollMs" | "onFrame">> & Pick<PollerOptions, "statusIdleMs" | "statusStandbyMs" | "pollStandbyMaxMs">;
  /** The peer's status block, from every status poll (its ack of our ring, its heartbeat). */
  onStatus: (status: StatusBlock) => void;
  /** One call per state change of the supervisor (not per retry). */
  onChange: (change: StateChange) => void;
  recovery?: RecoveryOptions;
}

/**
 * The reader options of a link's receive ring (a pair's, or one of a cluster node's): at the writer's
 * head; keyed under `auth`, refusing records at or below `notBefore`. No held-record search after an
 * overrun (resumeAtOldest false): the link's writers hold nothing (controlWaitsForAck false).
 */
export function linkReaderOptions(o: { nodeId: number; peerNodeId: number; damageTimeoutMs?: number; observer?: RingObserver }, auth: RingAuth | undefined, notBefore: { epoch: bigint; seq: bigint } | undefined): ReaderOptions {
  return {
    nodeId: o.nodeId,
    peerNodeId: o.peerNodeId,
    start: "head",
    resumeAtOldest: false,
    ...(o.damageTimeoutMs === undefined ? {} : { damageTimeoutMs: o.damageTimeoutMs }),
    ...(o.observer === undefined ? {} : { observer: o.observer }),
    ...(auth === undefined ? {} : { auth, ...(notBefore === undefined ? {} : { notBefore }) }),
  };
}

/** Reader counters carried over when a fresh volume handle replaces the reader (all but lost, a bigint). */
const RETIRED_COUNTERS = ["records", "frames", "pads", "damaged", "overruns", "tornSeen", "epochChanges", "staleDataDropped", "authFailures", "downgrades", "replays"] as const;

export class ReceiveRing {
  readonly options: ReceiveRingOptions;
  readonly supervisor: Supervisor;
  private volume: Volume;
  private reader: RingReader;
  private poller: Poller;
  private readonly retired: Pick<RingReaderCounters, (typeof RETIRED_COUNTERS)[number] | "lost"> = { lost: 0n, records: 0, frames: 0, pads: 0, damaged: 0, overruns: 0, tornSeen: 0, epochChanges: 0, staleDataDropped: 0, authFailures: 0, downgrades: 0, replays: 0 };

  private constructor(options: ReceiveRingOptions, volume: Volume, reader: RingReader) {
    this.options = options;
    this.volume = volume;
    this.reader = reader;
    this.poller = this.newPoller(reader, false);
    this.supervisor = new Supervisor(options.component, () => this.volume, (reopen) => this.reopen(reopen), options.recovery);
    this.supervisor.on("change", options.onChange);
    this.watch(volume);
  }

  /** Starts polling under supervision (once, after the owner is ready for frames and status blocks). */
  start(): void {
    this.supervisor.adopt(this.pollerIncarnation());
  }

  /** Opens the volume and a reader at the writer's head (keyed: above `notBefore`); throws on any error. Polling begins at start(). */
  static async open(options: ReceiveRingOptions, notBefore: { epoch: bigint; seq: bigint } | undefined): Promise<ReceiveRing> {
    const volume = await options.openVolume();
    try {
      return new ReceiveRing(options, volume, await RingReader.open(volume, options.readerOptions(notBefore)));
    } catch (error) {
      await volume.close().catch(() => undefined);
      throw error;
    }
  }

  /** How far we read the peer's ring (what an unkeyed status block acks). */
  get ack(): { epoch: bigint; seq: bigint } {
    return this.reader.ack;
  }

  /** Keyed: the authenticated high-water mark (never lower across readers). */
  get delivered(): { epoch: bigint; seq: bigint } {
    return this.reader.delivered;
  }

  get lagRecords(): bigint {
    return this.poller.lagRecords;
  }

  /** The reader's counters, totals over every reader this ring had. */
  get counters(): RingReaderCounters {
    const c = { ...this.reader.counters };
    c.lost += this.retired.lost;
    for (const name of RETIRED_COUNTERS) c[name] += this.retired[name];
    return c;
  }

  /** The follower's standby pace on or off (Poller.standby); kept across reopens. */
  standby(on: boolean): void {
    this.poller.standby(on);
  }

  /** The poller in standby (for status and tests). */
  get inStandby(): boolean {
    return this.poller.inStandby;
  }

  report(): VolumeReport {
    return volumeReport(this.supervisor, this.options.path, this.volume);
  }

  /** Stops polling and supervision, then closes the volume. */
  async close(): Promise<void> {
    await this.supervisor.close();
    await this.poller.stop().catch(() => undefined);
    await this.volume.close().catch(() => undefined);
  }

  private async reopen(reopenVolume: boolean): Promise<Incarnation> {
    if (reopenVolume) {
      // A fresh handle: a new reader at the writer's head (what was written meanwhile is lost for
      // data and retransmitted by the link for control). Keyed: never below what we delivered.
      const delivered = this.options.keyed ? this.reader.delivered : undefined;
      await this.volume.close().catch(() => undefined);
      this.volume = await this.options.openVolume();
      this.watch(this.volume);
      const reader = await RingReader.open(this.volume, this.options.readerOptions(delivered));
      const c = this.reader.counters;
      this.retired.lost += c.lost;
      for (const name of RETIRED_COUNTERS) this.retired[name] += c[name];
      this.reader = reader;
      // The link's standby verdict carries over to the poller that replaces this one.
      this.poller = this.newPoller(reader, this.poller.inStandby);
    } else {
      // Same handle, same reader, same position: a status read proves the device answers again.
      await this.reader.refresh();
    }
    return this.pollerIncarnation();
  }

  private newPoller(reader: RingReader, standby: boolean): Poller {
    const poller = new Poller(reader, this.options.poller);
    poller.standby(standby);
    poller.on("status", this.options.onStatus);
    return poller;
  }

  /** Starts (or restarts, at the reader's position) the poller; its life ends with the error that stops it. */
  private pollerIncarnation(): Incarnation {
    const poller = this.poller;
    poller.start();
    return {
      failed: poller.finished().then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      ),
      close: () => poller.stop(),
    };
  }

  private watch(volume: Volume): void {
    volume.on("stall", (parked) => {
      if (this.volume === volume) this.supervisor.parked = parked;
    });
    volume.on("recover", () => {
      if (this.volume === volume) this.supervisor.parked = 0;
    });
  }
}
