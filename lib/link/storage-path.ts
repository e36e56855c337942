// StoragePath: one node's storage path as one object: the send ring (RingWriter on the send volume)
// and the receive ring (ReceiveRing: RingReader + Poller on the receive volume), each under a Supervisor, so an
// EIO, ENOSPC, stall or vanished device takes the path down and it comes back by itself (a writer
// reopen starts a new epoch; the reader keeps its position, or starts at the head on a fresh handle).
// Invariants: frames are appended only to a writer that is up (otherwise "down": the link layer
// retransmits control, data is best effort); the reader never goes back, so no frame is delivered
// twice by this layer; the first open's errors are thrown (bad config fails `up` loudly).
// It lives in lib/link, not lib/ring: it composes a ring writer and a Poller (lib/poll, a layer above
// the ring), and only the Link uses it, so every import here points down.
import { EventEmitter } from "node:events";

import { DEFAULT_LINK_TICK_MS, DEFAULT_MAX_DELAY_MS, DEFAULT_POLL_MAX_MS, DEFAULT_POLL_MIN_US, DEFAULT_RECEIVE_ENGINE } from "../defaults.ts";
import type { FrameType } from "../format/layout.ts";
import type { StatusBlock } from "../format/status.ts";
import { Volume, type EngineChoice } from "../io/volume.ts";
import type { RingObserver } from "../ring/fault-memory.ts";
import type { RingAuth } from "../ring/keys.ts";
import type { RingReaderCounters } from "../ring/reader.ts";
import { persistedDelivered } from "../ring/status.ts";
import { openSuperblock } from "../ring/superblocks.ts";
import { DEFAULT_TIMERS, STORAGE_SHARE } from "./paths.ts";
import { SupervisedWriter } from "./supervised-writer.ts";
import type { RecoveryOptions, StateChange } from "../io/supervisor.ts";
import { linkReaderOptions, ReceiveRing, type ReceiveRingOptions } from "./receive-ring.ts";
import { storageReport, volumeReport, type AppendResult, type PeerFrameHandler, type PeerStorage, type StorageReport } from "./peer-storage.ts";
import type { Ack, RingWriterCounters, RingWriterOptions } from "../ring/writer.ts";

/**
 * Largest record the link's send ring writes: 256 blocks, 1 MiB at B = 4096 (the RingWriter default is
 * 65). Each record is one O_DSYNC write, whose cost here is mostly the device flush, not the bytes
 * (bench link, 2-vCPU VM under load: 13-16 ms between record completions whatever their size, fio 4 KiB
 * O_DSYNC 12 ms p50 beside 256 KiB at 1 ms). Records only grow while LINK_RECORDS_IN_FLIGHT writes are
 * in flight, so a lone packet still goes out at once; under a TCP stream the bytes per flush set the throughput.
 * 1 MiB is also the mirror's write segment (write-pump.ts) and the reader's read-ahead window.
 */
export const LINK_MAX_RECORD_BLOCKS = 256;

/**
 * Record writes the link's send ring keeps in flight at once (RingWriter maxRecordsInFlight): O_DSYNC
 * writes in flight together share device flushes, so under a TCP stream several records land per
 * flush instead of one (bench link; fio on this VM: see the writer-core module comment). The status
 * head still moves only over records whose writes all completed (docs/format.md, "Writer: record
 * writes in flight"). Costs one record buffer (LINK_MAX_RECORD_BLOCKS blocks) each.
 */
export const LINK_RECORDS_IN_FLIGHT = 4;

/**
 * With a record write in flight, the next record is sealed (and written beside it) once it holds this
 * many bytes; below, it keeps growing until the pipeline drains (RingWriter flushThresholdBytes). So a
 * lone packet still goes out at once, and a stream adds writes only when it outruns one per flush,
 * without multiplying small records (each costs CPU: a write, a mirror copy, a reader poll).
 */
export const LINK_FLUSH_THRESHOLD_BYTES = 256 * 1024;

/**
 * When the peer's status block is re-read (Poller statusPollMs / statusIdleMs), from the period of
 * the peer's storage heartbeat records: due half a heartbeat after the last read once a record came,
 * otherwise every two heartbeats. So on an idle link the read rides the turn a heartbeat record
 * arrives in (one read a heartbeat, as before), and no watch ends just to read it: at 250 ms for both
 * the read was a wake-up of its own, out of phase with the records (the watch's timeout, a poll of
 * the unchanged block, the status read: 3 event-loop turns of ~6 per heartbeat on the receive side;
 * issue #13 section 4). Its ack of our ring only feeds `drained` (failback waits for it at most
 * failbackDrainMs, 500 ms) and the lag metrics: the link's writer overwrites unacked records, so ring
 * space never waits for it. Under traffic it is read at most every half heartbeat; with the peer's
 * records gone (its storage path down), every two heartbeats (epoch changes are seen then).
 * In standby (the primary up both ways, storage carrying heartbeats only: nothing to drain, and
 * leaving standby snaps the pace back at once) it is read in the turn of every other heartbeat
 * record: at the first record a heartbeat and a half after the last read (statusStandbyMs; two
 * records' gaps are longer, one is shorter but for a record late by more than the clock's share
 * plus the standby sleep): one status read and its completion less per two heartbeats (issue #13
 * section 4). A cluster ring keeps one read per record (its Poller default: statusPollMs).
 */
export function linkStatusPace(heartbeatMs: number): { statusPollMs: number; statusIdleMs: number; statusStandbyMs: number } {
  const statusPollMs = Math.max(1, Math.floor(heartbeatMs / 2));
  const statusIdleMs = Math.max(statusPollMs, 2 * heartbeatMs);
  return { statusPollMs, statusIdleMs, statusStandbyMs: Math.min(statusIdleMs, Math.max(statusPollMs, Math.round(1.5 * heartbeatMs))) };
}

/**
 * The send ring's status block is rewritten at least this often (RingWriter statusIntervalMs), and
 * 5 ms after a record (STATUS_IDLE_MS), at once after a lone record (STATUS_LONE_RECORD_GAP_MS). The
 * peer reads it once per storage heartbeat record (linkStatusPace), and the link's liveness rides on
 * heartbeat frames, not on the status heartbeat. On an idle link each heartbeat record brings its
 * status, so the interval must never come due before the next heartbeat record: that record rides a
 * clock turn up to STORAGE_SHARE of its period late (LinkClock), and that turn may itself run late
 * (event-loop delay: one tick of margin). At exactly the heartbeat period (250 ms), the interval came
 * due first about every other heartbeat (the record's lateness varies from one to the next): a timer
 * wake-up for a status of its own, then the record and its status again, 3 writes and ~4 main-thread
 * wake-ups instead of 2 (issue #13 section 4). Under traffic the interval only bounds a flood without
 * an idle gap of STATUS_IDLE_MS.
 */
export function linkStatusIntervalMs(heartbeatMs: number): number {
  return heartbeatMs + Math.ceil(STORAGE_SHARE * heartbeatMs) + DEFAULT_LINK_TICK_MS;
}

/**
 * The link's send-ring writer timing: the status interval above, and the owner check (the superblock
 * re-read, every second) riding the next heartbeat record once due (RingWriter ownerCheckSlackMs, the
 * same bound on the gap between two records): on its own timer it was a wake-up a second, often two
 * (the timer fired a fraction of a ms early on libuv's cached loop time and was re-armed).
 */
export function linkWriterPace(heartbeatMs: number): { statusIntervalMs: number; ownerCheckSlackMs: number; standbyStatusIntervalMs: number; standbyStatusGapMs: number } {
  const gapMs = linkStatusIntervalMs(heartbeatMs);
  return { statusIntervalMs: gapMs, ownerCheckSlackMs: gapMs, ...linkStandbyStatusPace(heartbeatMs) };
}

/**
 * In standby (the link's primary up both ways, its storage carrying heartbeat records only) the
 * status rides every other heartbeat record: a lone record brings it only a heartbeat and a half
 * after the last status write (one gap between records is shorter, at most linkStatusIntervalMs;
 * two are longer), and the interval is two of those gaps, so it never comes due before the second
 * record. The peer reads our status for its ack of its ring (drained, lag metrics) and epoch
 * changes: standby holds no drain (LinkCore.storageStandby waits for the failback drains to end),
 * and leaving it writes a held status at once. One status write and its completion less per two
 * heartbeats (issue #13 section 4).
 */
export function linkStandbyStatusPace(heartbeatMs: number): { standbyStatusIntervalMs: number; standbyStatusGapMs: number } {
  return { standbyStatusIntervalMs: 2 * linkStatusIntervalMs(heartbeatMs), standbyStatusGapMs: Math.round(1.5 * heartbeatMs) };
}

export interface StoragePathOptions {
  nodeId: number;
  peerNodeId: number;
  /** Our send volume (we own its ring). */
  send: string;
  /** The peer's ring as the mirror (or the shared LUN) delivers it to us. */
  receive: string;
  /** O_DSYNC on the send volume (default true). */
  dsync?: boolean;
  /** Take the send volume over from a writer that did not close it (default true). */
  takeOver?: boolean;
  /** Writer: seal a record after this long (default 0). */
  maxDelayMs?: number;
  /** Poller: longest sleep between reads while idle (default DEFAULT_POLL_MAX_MS). */
  pollMaxMs?: number;
  /** Poller: sleep between reads in standby (the link's primary up; default DEFAULT_POLL_STANDBY_MAX_MS, at least pollMaxMs). */
  pollStandbyMaxMs?: number;
  /** The storage heartbeat period, both ends (ms; default DEFAULT_TIMERS.storage.heartbeatMs): the status reads ride the peer's records (linkStatusPace), our status writes ride ours (linkStatusIntervalMs). */
  heartbeatMs?: number;
  /** Per-request deadline on both volumes (Volume default when absent). */
  ioTimeoutMs?: number;
  /** I/O engine of the receive volume (default: LUNLINK_ENGINE when set, else DEFAULT_RECEIVE_ENGINE, "threads"). The send volume takes the Volume default. */
  receiveEngine?: EngineChoice;
  /** Keyed rings: the two ring keys, derived from the pair UUID (read, unverified, from the send superblock). */
  auth?: (pairUuid: string) => { send: RingAuth; receive: RingAuth };
  recovery?: RecoveryOptions;
  /** Reader: a slot invalid this long while the peer's head is past it is damaged and skipped (RingReader default when absent). */
  damageTimeoutMs?: number;
  /** Reader: told of each ring fault counted and each record delivered (the node logs and measures them). */
  observer?: RingObserver;
  /** Every frame of the peer's ring (peer 0), zero-copy (valid during the call). */
  onFrame: PeerFrameHandler;
}

export interface StoragePathEvents {
  /** The peer's status block (its ack of our records, its heartbeat). */
  status: [StatusBlock];
  /** A component changed state (one event per change, not per retry). */
  change: [StateChange];
}

export type { StorageReport, StorageState, VolumeReport } from "./peer-storage.ts";

/** The pair's storage path: the PeerStorage of a node with one peer (index 0). */
export class StoragePath extends EventEmitter<StoragePathEvents> implements PeerStorage {
  readonly options: StoragePathOptions;
  readonly send: SupervisedWriter;
  /** The peer's ring as we read it (healing itself). */
  readonly receive: ReceiveRing;
  private readonly auth: { send: RingAuth; receive: RingAuth } | undefined;
  /** The peer's ack of our ring, from its status block. */
  peerAck: Ack | undefined;
  /** The link's standby verdict (standby()): the send ring's status pace follows it too. */
  private standbyOn = false;
  private closed = false;

  private constructor(options: StoragePathOptions, send: SupervisedWriter, receive: ReceiveRing, auth: StoragePath["auth"]) {
    super();
    this.options = options;
    this.send = send;
    this.receive = receive;
    this.auth = auth;
    send.on("change", (c) => this.emit("change", c));
    receive.start();
  }

  /**
   * Opens both volumes, a reader at the peer's head and a writer (new epoch); throws on any error.
   * The receive ring is opened first: a bad receive path (missing, unreadable, not a lunlink volume,
   * another pair's) is refused before the writer raises the send volume's epoch. A receive ring the
   * reader accepts (an older epoch, nothing written yet) is followed and heals as before.
   */
  static async open(options: StoragePathOptions): Promise<StoragePath> {
    let sendVolume: Volume | undefined;
    let receive: ReceiveRing | undefined;
    let send: SupervisedWriter | undefined;
    try {
      sendVolume = await openSend(options);
      let auth: StoragePath["auth"];
      let notBefore: Ack | undefined;
      if (options.auth !== undefined) {
        // The UUID is read unverified: a wrong one only derives keys that fail verification.
        auth = options.auth((await openSuperblock(sendVolume)).superblock.pairUuid);
        // Anti-replay across restarts: what this node acked last time (its own, MACed status block)
        // is the floor below which the peer's ring is refused, even if an old epoch is restored.
        notBefore = await persistedDelivered(sendVolume, auth.send);
      }
      let path: StoragePath | undefined;
      receive = await ReceiveRing.open(receiveOptions(options, auth, () => path), notBefore);
      send = await SupervisedWriter.open(sendVolume, {
        writer: writerOptions(options, auth, () => path, notBefore),
        ...(options.recovery === undefined ? {} : { recovery: options.recovery }),
        reopenVolume: () => openSend(options),
      });
      path = new StoragePath(options, send, receive, auth);
      return path;
    } catch (error) {
      if (send === undefined) await sendVolume?.close().catch(() => undefined);
      else {
        await send.close();
        await send.volume.close().catch(() => undefined);
      }
      await receive?.close();
      throw error;
    }
  }

  /** Queues one frame on the send ring for the peer (index 0): "down" while the writer is being recovered. */
  append(peer: number, type: FrameType, frame: Uint8Array): AppendResult {
    if (peer !== 0) throw new Error(`assertion failed: StoragePath has one peer, not ${peer}`);
    return this.send.tryAppend(type, frame);
  }

  /**
   * The link's verdict (PeerLink "standby"): on while its primary is up both ways and storage carries
   * only heartbeats, so the receive ring's follower re-reads every pollStandbyMaxMs and the send
   * ring's status rides every other heartbeat record (linkStandbyStatusPace); off snaps both back to
   * the normal pace at once (a watch asleep at the standby pace is woken, a held status is written).
   */
  standby(on: boolean): void {
    if (this.closed) return;
    this.receive.standby(on);
    if (on === this.standbyOn) return;
    this.standbyOn = on;
    this.send.writer?.paceChanged();
  }

  /** In standby (the last standby() said so): read by the send ring's writer at every step. */
  get inStandby(): boolean {
    return this.standbyOn;
  }

  /** The current (or last) writer's epoch and next sequence. */
  get epoch(): bigint {
    return this.send.epoch;
  }

  get headSeq(): bigint {
    return this.send.headSeq;
  }

  get queuedBytes(): number {
    return this.send.queuedBytes;
  }

  get lagRecords(): bigint {
    return this.receive.lagRecords;
  }

  /** Has the peer acked every record we wrote (a writer that is down has nothing to drain)? */
  drained(): boolean {
    const writer = this.send.writer;
    if (writer === undefined) return true;
    const ack = this.peerAck;
    return ack !== undefined && ack.epoch === writer.epoch && ack.seq + 1n >= writer.headSeq;
  }

  get writerCounters(): RingWriterCounters {
    return this.send.counters;
  }

  get readerCounters(): RingReaderCounters {
    return this.receive.counters;
  }

  /** Keyed: the authenticated high-water mark the status block's delivered fields persist. */
  deliveredMark(): Ack {
    return this.receive.delivered;
  }

  /** What our status block acks: keyed, the authenticated high-water mark (never lower); else the reader's position. */
  localAck(): Ack {
    return this.auth === undefined ? this.receive.ack : this.receive.delivered;
  }

  report(): StorageReport {
    return storageReport(volumeReport(this.send.supervisor, this.options.send, this.send.volume), this.receive.report());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.receive.close();
    await this.send.close();
    await this.send.volume.close().catch(() => undefined);
  }
}

function openSend(o: StoragePathOptions): Promise<Volume> {
  return Volume.open(o.send, { dsync: o.dsync ?? true, exclusive: true, ...(o.ioTimeoutMs === undefined ? {} : { ioTimeoutMs: o.ioTimeoutMs }) });
}

/** The receive volume's engine option: as named, else LUNLINK_ENGINE's (Volume reads it), else DEFAULT_RECEIVE_ENGINE. */
export function receiveVolumeEngine(named: EngineChoice | undefined): { engine?: EngineChoice } {
  if (named !== undefined) return { engine: named };
  return process.env["LUNLINK_ENGINE"] === undefined ? { engine: DEFAULT_RECEIVE_ENGINE } : {};
}

/** The peer's ring, read-only, at the writer's head; keyed: under the receive key, refusing records at or below the floor. */
function receiveOptions(o: StoragePathOptions, auth: StoragePath["auth"], path: () => StoragePath | undefined): ReceiveRingOptions {
  return {
    component: "receive",
    path: o.receive,
    openVolume: () => Volume.open(o.receive, { readOnly: true, ...receiveVolumeEngine(o.receiveEngine), ...(o.ioTimeoutMs === undefined ? {} : { ioTimeoutMs: o.ioTimeoutMs }) }),
    readerOptions: (notBefore) => linkReaderOptions(o, auth?.receive, notBefore),
    keyed: auth !== undefined,
    poller: { pollMinUs: DEFAULT_POLL_MIN_US, pollMaxMs: o.pollMaxMs ?? DEFAULT_POLL_MAX_MS, ...(o.pollStandbyMaxMs === undefined ? {} : { pollStandbyMaxMs: o.pollStandbyMaxMs }), ...linkStatusPace(o.heartbeatMs ?? DEFAULT_TIMERS.storage.heartbeatMs), onFrame: (_seq, type, _flags, bytes, offset, length) => o.onFrame(0, type, bytes, offset, length) },
    // The peer's status block: its ack of our ring feeds drained() and the lag metrics.
    onStatus: (status) => {
      const p = path();
      if (p === undefined) return;
      if (status.ackSeq > 0n) p.peerAck = { epoch: status.ackEpoch, seq: status.ackSeq };
      p.emit("status", status);
    },
    onChange: (change) => path()?.emit("change", change),
    ...(o.recovery === undefined ? {} : { recovery: o.recovery }),
  };
}

function writerOptions(o: StoragePathOptions, auth: StoragePath["auth"], path: () => StoragePath | undefined, notBefore: Ack | undefined): RingWriterOptions {
  return {
    nodeId: o.nodeId,
    // It is ours by config; after a fault of our own writer, the superblock still names us.
    takeOver: o.takeOver ?? true,
    maxDelayMs: o.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
    maxRecordBlocks: LINK_MAX_RECORD_BLOCKS,
    ...linkWriterPace(o.heartbeatMs ?? DEFAULT_TIMERS.storage.heartbeatMs),
    maxRecordsInFlight: LINK_RECORDS_IN_FLIGHT,
    flushThresholdBytes: LINK_FLUSH_THRESHOLD_BYTES,
    // The link acks and retransmits control itself: a dead peer must not stall the writer.
    controlWaitsForAck: false,
    peerAck: () => path()?.peerAck,
    standby: () => path()?.inStandby === true,
    localAck: () => path()?.localAck() ?? notBefore,
    // Keyed: the authenticated high-water mark, persisted in the status block's delivered fields
    // (docs/format.md), where a restarted reader takes its replay floor from (persistedDelivered).
    ...(auth === undefined ? {} : { auth: auth.send, delivered: () => path()?.deliveredMark() ?? notBefore }),
  };
}

