// RingWriter's options, counters and close report, and the defaults and bounds of every option
// (one place, so the core and the shell agree). Options are validated once, at open.
import { MAX_RECORD_BLOCKS } from "../format/layout.ts";
import { DEFAULT_MAX_DELAY_MS } from "../defaults.ts";
import { integerOption, invalidArgument } from "../errors.ts";
import type { LunlinkError } from "../errors.ts";
import type { Clock } from "./clock.ts";
import type { PeerRow } from "../format/status.ts";
import { REKEY_AFTER_RECORDS, type RingAuth } from "./keys.ts";

/** Default record writes in flight (writer-core.ts): see RingWriterOptions.maxRecordsInFlight and bench link. */
export const DEFAULT_RECORDS_IN_FLIGHT = 1;
/** Bound on maxRecordsInFlight (each costs a record buffer of up to 4 MiB). */
export const MAX_RECORDS_IN_FLIGHT = 16;

export interface Ack {
  epoch: bigint;
  seq: bigint;
}

/** One peer's ack of this ring, with its status heartbeat (its liveness). */
export interface PeerAckInput {
  node: number;
  ack: Ack | undefined;
  heartbeat: bigint;
}

export interface RingWriterOptions {
  /** This host's node id; must be the superblock's writer unless takeOver. */
  nodeId: number;
  takeOver?: boolean;
  /** Seal a record once this many payload bytes are buffered (default 64 KiB). */
  flushThresholdBytes?: number;
  /** ... or once the oldest buffered frame waited this long (default 2 ms). */
  maxDelayMs?: number;
  /** Largest record in blocks (default 65, i.e. 256 KiB at B = 4096; at most 1024). */
  maxRecordBlocks?: number;
  /**
   * Record writes in flight at once (default DEFAULT_RECORDS_IN_FLIGHT, at most MAX_RECORDS_IN_FLIGHT).
   * With O_DSYNC each record write costs mostly a device flush; writes in flight together share
   * flushes. The head (and the status block) moves only over records whose writes all completed;
   * pads, status writes, rekeys and the owner check wait for the records in flight to drain. Each
   * costs a record buffer (maxRecordBlocks blocks): there are this many plus one.
   */
  maxRecordsInFlight?: number;
  /** Overflow bound per class while the record buffer is full, frame headers included (default 4 MiB each). */
  queueLimitBytes?: number;
  /**
   * When a heartbeat or data queue is full: "drop" the frame (counted; append resolves false), as a
   * network would (default), or "wait" for room (back-pressure). Control frames always wait.
   */
  fullQueue?: "drop" | "wait";
  /** Storage heartbeat: the status block is rewritten at least this often (default 100 ms). */
  statusIntervalMs?: number;
  /**
   * While `standby()` says so (a link whose primary is up both ways: its ring carries heartbeat
   * records only and nobody drains it), the status interval (default statusIntervalMs)...
   */
  standbyStatusIntervalMs?: number;
  /**
   * ... and a lone record (STATUS_LONE_RECORD_GAP_MS after the one before) brings its status only
   * this long after the last status write (default 0: every lone record), else the status rides a
   * later record. A link sets both so that its status rides every other heartbeat record.
   */
  standbyStatusGapMs?: number;
  /** Standby now (read at every step; default: never). Changes are signalled with RingWriter.paceChanged(). */
  standby?: () => boolean;
  /** Re-read the superblock this often and stop if another writer took the volume (default 1000 ms). */
  ownerCheckMs?: number;
  /**
   * The owner check, once due, waits up to this long for a wake-up the writer has anyway (an append, a
   * completion) before it wakes the writer by itself (default 0: on time). A link's writer is woken by
   * its storage heartbeat record: with the slack at least that period, an idle link's check rides the
   * record instead of a timer wake-up of its own (issue #13 section 4).
   */
  ownerCheckSlackMs?: number;
  /**
   * May records of heartbeat and data frames be overwritten before the peer acked them (default
   * true, counted in overwrittenUnacked, as a network drops)? false: every record waits for its ack.
   * Records holding control frames always wait.
   */
  overwriteUnacked?: boolean;
  /**
   * Do records holding control frames wait for the peer's ack before being overwritten (default
   * true)? false only for a layer above that acks and retransmits control itself (the link does),
   * so a dead peer cannot stall the writer.
   */
  controlWaitsForAck?: boolean;
  /** The peer's ack of our records (from the peer's status block); undefined = nothing acked yet. */
  peerAck?: () => Ack | undefined;
  /**
   * Cluster (replaces peerAck): every peer's ack of this ring with its status heartbeat
   * (lib/ring/cluster.ts readPeerAcks). A record counts as acked once every peer still holding the
   * ring acked it.
   */
  peerAcks?: () => readonly PeerAckInput[];
  /** Cluster: this node's rows about its peers (ack and delivered mark of each peer's ring) for the status block. */
  peerRows?: () => readonly PeerRow[];
  /**
   * Cluster: a peer whose status heartbeat has not advanced for this long no longer holds the ring
   * back (counted in peersReleased, event peerReleased, flagged in its status row) until it moves
   * again. Default 0: never (a pair's control frames wait for a dead peer, as in format version 1).
   */
  peerDownMs?: number;
  /**
   * Before taking the ring, watch its status heartbeat this long: if it moves, a live writer (a node
   * configured with the same id) owns it and open fails with ERR_LUNLINK_NOT_OWNER. Default 0: off
   * (a cluster node sets it to about 3 x statusIntervalMs).
   */
  liveCheckMs?: number;
  /**
   * While waiting for an ack, re-read peerAck this often (default 1 ms) unless woken earlier by
   * peerAckChanged(); a caller that calls peerAckChanged() on every new ack may raise it.
   */
  ackPollMs?: number;
  /** What we ack to the peer (highest (epoch, seq) received from it): the status block's ack. */
  localAck?: () => Ack | undefined;
  /**
   * Highest authenticated (epoch, seq) delivered from the peer: the status block's delivered mark
   * (anti-replay floor after a restart). The writer persists the highest value it was ever given,
   * starting from the one already on the volume, so it never goes lower; absent: that value is kept.
   */
  delivered?: () => Ack | undefined;
  /** close() gives up draining after this long and reports what it could not write (default 3000 ms). */
  closeTimeoutMs?: number;
  /**
   * Keyed mode: records AEAD-sealed, status and superblock MACed under keys derived from auth.key.
   * The volume must have been formatted with the same key (otherwise ERR_LUNLINK_DOWNGRADE or
   * ERR_LUNLINK_WRONG_KEY); a keyed volume refuses a writer without it (ERR_LUNLINK_KEY_REQUIRED).
   */
  auth?: RingAuth;
  /** Keyed: start a new epoch (new key) before this many records in one epoch (default 2^48; tests lower it). */
  rekeyAfterRecords?: bigint;
  /** Time source (default the system clock); tests pass a fake clock. */
  clock?: Clock;
  /** Random bytes for epoch salts (default crypto.randomBytes); deterministic simulations pass a seeded source. */
  entropy?: (lengthBytes: number) => Uint8Array;
}

export interface RingWriterCounters {
  framesAppended: number;
  framesDropped: number;
  records: number;
  pads: number;
  bytesWritten: number;
  statusWrites: number;
  /** Records overwritten before the peer acked them (heartbeat/data only; control never is). */
  overwrittenUnacked: number;
  /** Records the writer had to wait on for an ack before overwriting them. */
  ackWaits: number;
  /** Keyed: epochs started in place to change the record key before rekeyAfterRecords. */
  rekeys: number;
  /** Cluster: peers released after peerDownMs of silence (they stopped holding the ring back). */
  peersReleased: number;
  /** Cluster: released peers whose heartbeat moved again (they hold the ring again). */
  peersReturned: number;
}

/** What close() resolves with (and the 'close' event carries): what never reached the volume. */
export interface WriterCloseReport {
  /** Frames appended but not written (in the record buffers or the class queues). */
  unflushedFrames: number;
  /** Their bytes, frame headers included. */
  unflushedBytes: number;
  /** Set when the writer had stopped on a fatal error. */
  error?: LunlinkError;
}

export type ResolvedWriterOptions = Required<Omit<RingWriterOptions, "peerAck" | "peerAcks" | "peerRows" | "localAck" | "delivered" | "standby" | "takeOver" | "auth" | "clock" | "entropy">>;

export function resolveOptions(o: RingWriterOptions): ResolvedWriterOptions {
  if (!Number.isInteger(o.nodeId) || o.nodeId < 1 || o.nodeId > 0xffffffff) throw invalidArgument("nodeId", "an integer in 1..4294967295", o.nodeId);
  const resolved: ResolvedWriterOptions = {
    nodeId: o.nodeId,
    flushThresholdBytes: integerOption("flushThresholdBytes", o.flushThresholdBytes, 64 * 1024, 1, 64 * 1024 * 1024),
    maxDelayMs: integerOption("maxDelayMs", o.maxDelayMs, DEFAULT_MAX_DELAY_MS, 0, 10_000),
    maxRecordBlocks: integerOption("maxRecordBlocks", o.maxRecordBlocks, 65, 1, MAX_RECORD_BLOCKS),
    maxRecordsInFlight: integerOption("maxRecordsInFlight", o.maxRecordsInFlight, DEFAULT_RECORDS_IN_FLIGHT, 1, MAX_RECORDS_IN_FLIGHT),
    queueLimitBytes: integerOption("queueLimitBytes", o.queueLimitBytes, 4 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    statusIntervalMs: integerOption("statusIntervalMs", o.statusIntervalMs, 100, 1, 60_000),
    standbyStatusIntervalMs: integerOption("standbyStatusIntervalMs", o.standbyStatusIntervalMs, o.statusIntervalMs ?? 100, 1, 60_000),
    standbyStatusGapMs: integerOption("standbyStatusGapMs", o.standbyStatusGapMs, 0, 0, 60_000),
    ownerCheckMs: integerOption("ownerCheckMs", o.ownerCheckMs, 1000, 10, 600_000),
    ownerCheckSlackMs: integerOption("ownerCheckSlackMs", o.ownerCheckSlackMs, 0, 0, 600_000),
    ackPollMs: integerOption("ackPollMs", o.ackPollMs, 1, 1, 60_000),
    closeTimeoutMs: integerOption("closeTimeoutMs", o.closeTimeoutMs, 3000, 0, 600_000),
    peerDownMs: integerOption("peerDownMs", o.peerDownMs, 0, 0, 3_600_000),
    liveCheckMs: integerOption("liveCheckMs", o.liveCheckMs, 0, 0, 600_000),
    overwriteUnacked: o.overwriteUnacked ?? true,
    controlWaitsForAck: o.controlWaitsForAck ?? true,
    fullQueue: o.fullQueue ?? "drop",
    rekeyAfterRecords: o.rekeyAfterRecords ?? REKEY_AFTER_RECORDS,
  };
  if (resolved.rekeyAfterRecords < 1n || resolved.rekeyAfterRecords > REKEY_AFTER_RECORDS) {
    throw invalidArgument("rekeyAfterRecords", `a bigint in 1..2^48`, o.rekeyAfterRecords);
  }
  return resolved;
}
