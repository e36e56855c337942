// The storage side of a cluster node: one ring writer on this node's own ring (its region of the
// shared cluster volume, or a node volume) and one ReceiveRing (reader + poller) per peer ring (the
// peer's region read directly, or a mirror copy), each under a Supervisor so a storage fault heals by
// itself, as in a pair's StoragePath (the same ReceiveRing). Frames carry their destination in the
// frame's flags byte: a frame for one peer names it (append), a broadcast is 0 (appendBroadcast: one
// frame every peer's reader takes); a reader hands on only frames for this node or for everyone.
// Flow control per reader: the writer gets every peer's ack of our ring (peer P's status row about
// us, read on P's status poll) and writes our row about each peer (its ack and delivered mark);
// a peer silent for peerDownMs stops holding the ring back (the writer reports it).
// Keyed (a cluster secret): every ring is opened keyed under its writer's clusterRingKey, so a wrong
// or missing key is refused at open (ERR_LUNLINK_WRONG_KEY naming the region) and each reader applies
// the keyed rules of docs/format.md unchanged; the cluster UUID comes from our own ring's superblock.
// Restart marks: each peer reader's replay floor (notBefore) is our own status row about that peer,
// so a keyed reader never delivers a record again after a restart, whatever is copied back.
import { EventEmitter } from "node:events";

import { DEFAULT_MAX_DELAY_MS, DEFAULT_POLL_MAX_MS, DEFAULT_POLL_MIN_US } from "../defaults.ts";
import { BROADCAST, type FrameType } from "../format/layout.ts";
import type { PeerRow, StatusBlock } from "../format/status.ts";
import { Volume } from "../io/volume.ts";
import type { RecoveryOptions, StateChange } from "../io/supervisor.ts";
import { storageReport, volumeReport, type AppendResult, type PeerFrameHandler, type PeerStorage, type StorageReport } from "../link/peer-storage.ts";
import { linkReaderOptions, ReceiveRing, type ReceiveRingOptions } from "../link/receive-ring.ts";
import { SupervisedWriter } from "../link/supervised-writer.ts";
import { clusterRingAuth, isClusterVolume, openCluster, openRegion, peerAckOf, persistedPeerMarks, type PeerAck } from "../ring/cluster.ts";
import type { RingAuth } from "../ring/keys.ts";
import { openSuperblock } from "../ring/superblocks.ts";
import type { RingObserver } from "../ring/fault-memory.ts";
import type { RingReaderCounters } from "../ring/reader.ts";
import { RegionVolume } from "../ring/region.ts";
import type { RingWriterCounters } from "../ring/writer.ts";

/** The writer rewrites its status block this often (RingWriter default); the same-id live check watches 3 of them. */
const STATUS_INTERVAL_MS = 100;
/** Peer status blocks (their acks of our ring) are re-read this often while records arrive. */
const STATUS_POLL_MS = 20;

export interface ClusterStorageOptions {
  nodeId: number;
  /** Where this node's ring is: a cluster volume (its region is used) or a node volume. */
  ring: string;
  /** Each peer and where its ring is read from, in peer index order. */
  peers: readonly { node: number; ring: string }[];
  dsync?: boolean;
  maxDelayMs?: number;
  pollMaxMs?: number;
  /** Each peer ring's follower in standby (that peer's primary up; default DEFAULT_POLL_STANDBY_MAX_MS, at least pollMaxMs). */
  pollStandbyMaxMs?: number | undefined;
  ioTimeoutMs?: number;
  damageTimeoutMs?: number;
  recovery?: RecoveryOptions;
  /** A peer whose status heartbeat has not advanced this long stops holding our ring back. */
  peerDownMs: number;
  observer?: RingObserver;
  /** Keyed cluster: the 32-byte cluster secret every member holds (absent: unkeyed rings, and a keyed ring is refused). */
  clusterSecret?: Uint8Array;
  /** A frame of peer `peer`'s ring addressed to this node or to every node (a view, valid during the call). */
  onFrame: PeerFrameHandler;
}

export interface ClusterStorageEvents {
  /** A component changed state: the send ring (peer undefined) or a peer's receive ring. */
  change: [StateChange & { peer?: number }];
}

/** A region view that owns its base volume: closing it closes the handle (a reopen gets a fresh one). */
class OwnedRegion extends RegionVolume {
  private readonly owned: Volume;

  constructor(base: Volume, startBlock: bigint, blocks: bigint, blockBytes: number, label: string) {
    super(base, startBlock, blocks, blockBytes, label);
    this.owned = base;
  }

  override async close(): Promise<void> {
    await super.close();
    await this.owned.close();
  }
}

/** Opens `path` and returns node `node`'s ring in it: its checked region of a cluster volume, or the node volume itself. Closing the result closes the handle. */
export async function openRing(path: string, node: number, options: { dsync?: boolean; readOnly?: boolean; ioTimeoutMs?: number | undefined }): Promise<Volume> {
  const base = await Volume.open(path, { ...(options.dsync === true ? { dsync: true } : {}), ...(options.readOnly === true ? { readOnly: true } : {}), ...(options.ioTimeoutMs === undefined ? {} : { ioTimeoutMs: options.ioTimeoutMs }) });
  try {
    if (!(await isClusterVolume(base))) return base;
    const header = await openCluster(base);
    const { view } = await openRegion(base, header, node);
    await view.close();
    const entry = header.regions.find((r) => r.node === node)!;
    return new OwnedRegion(base, entry.startBlock, entry.blocks, header.blockBytes, `node${node}`).asVolume();
  } catch (error) {
    await base.close().catch(() => undefined);
    throw error;
  }
}

/** One peer's ring as this node reads it, and what its status block says about ours. */
interface PeerRing {
  readonly node: number;
  readonly path: string;
  readonly ring: ReceiveRing;
  /** Keyed: the key of the peer's ring. */
  readonly auth: RingAuth | undefined;
  /** What the peer's status block says about our ring. */
  ack: PeerAck;
}

export class ClusterStorage extends EventEmitter<ClusterStorageEvents> implements PeerStorage {
  readonly options: ClusterStorageOptions;
  readonly send: SupervisedWriter;
  private readonly peers: PeerRing[];
  private closed = false;

  private constructor(options: ClusterStorageOptions, send: SupervisedWriter, peers: PeerRing[]) {
    super();
    this.options = options;
    this.send = send;
    this.peers = peers;
    send.on("change", (c) => this.emit("change", c));
    for (const p of peers) p.ring.start();
  }

  /** Opens our ring (a new epoch; refused if a live writer with our id holds it) and every peer's at its head; throws on any error. */
  static async open(options: ClusterStorageOptions): Promise<ClusterStorage> {
    let own: Volume | undefined;
    let send: SupervisedWriter | undefined;
    const peers: PeerRing[] = [];
    let storage: ClusterStorage | undefined;
    try {
      own = await openRing(options.ring, options.nodeId, { dsync: options.dsync ?? true, ioTimeoutMs: options.ioTimeoutMs });
      // The cluster UUID is read unverified: a wrong one only derives keys that fail verification (our writer's open, then each reader's).
      const clusterUuid = options.clusterSecret === undefined ? undefined : (await openSuperblock(own)).superblock.pairUuid;
      const authOf = (node: number): RingAuth | undefined => (clusterUuid === undefined ? undefined : clusterRingAuth(options.clusterSecret, clusterUuid, node));
      const ownAuth = authOf(options.nodeId);
      // Our own status (MACed, so verified before any peer ring is read) holds each peer's delivered mark.
      const marks = ownAuth === undefined ? undefined : await persistedPeerMarks(own, ownAuth, options.peers.map((p) => p.node));
      for (const [i, p] of options.peers.entries()) {
        const auth = authOf(p.node);
        const ring = await ReceiveRing.open(
          {
            ...receiveOptions(options, i, p, auth),
            onStatus: (status) => storage?.peerStatus(i, status),
            onChange: (change) => storage?.emit("change", { ...change, peer: p.node }),
          },
          marks?.get(p.node),
        );
        peers.push({ node: p.node, path: p.ring, ring, auth, ack: { node: p.node, ack: undefined, heartbeat: 0n } });
      }
      send = await SupervisedWriter.open(own, {
        writer: {
          nodeId: options.nodeId,
          takeOver: true,
          maxDelayMs: options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
          // The links ack and retransmit control themselves: a dead peer must not stall the writer.
          controlWaitsForAck: false,
          statusIntervalMs: STATUS_INTERVAL_MS,
          liveCheckMs: 3 * STATUS_INTERVAL_MS,
          peerDownMs: options.peerDownMs,
          peerAcks: () => peers.map((p) => p.ack),
          peerRows: () => peers.map(peerRowOf),
          ...(ownAuth === undefined ? {} : { auth: ownAuth }),
        },
        ...(options.recovery === undefined ? {} : { recovery: options.recovery }),
        reopenVolume: () => openRing(options.ring, options.nodeId, { dsync: options.dsync ?? true, ioTimeoutMs: options.ioTimeoutMs }),
      });
      storage = new ClusterStorage(options, send, peers);
      return storage;
    } catch (error) {
      if (send === undefined) await own?.close().catch(() => undefined);
      else {
        await send.close();
        await send.volume.close().catch(() => undefined);
      }
      for (const p of peers) await p.ring.close();
      throw error;
    }
  }

  /** Queues one frame on our ring addressed to peer `i`: "down" while the writer recovers. */
  append(i: number, type: FrameType, frame: Uint8Array): AppendResult {
    return this.send.tryAppend(type, frame, this.peers[i]!.node);
  }

  /** Queues one frame on our ring for every peer (destination 0, a node's broadcast): "down" while the writer recovers. */
  appendBroadcast(type: FrameType, frame: Uint8Array): AppendResult {
    return this.send.tryAppend(type, frame, BROADCAST);
  }

  get epoch(): bigint {
    return this.send.epoch;
  }

  get headSeq(): bigint {
    return this.send.headSeq;
  }

  get writerCounters(): RingWriterCounters {
    return this.send.counters;
  }

  /** Has peer `i` read every record we wrote (a writer that is down has nothing to drain)? */
  drained(i: number): boolean {
    const writer = this.send.writer;
    if (writer === undefined) return true;
    const ack = this.peers[i]!.ack.ack;
    return ack !== undefined && ack.epoch === writer.epoch && ack.seq + 1n >= writer.headSeq;
  }

  /** Peer `i`'s ack of our ring (null: none yet), its ring's lag and its reader counters. */
  peerRing(i: number): { node: number; path: string; keyed: boolean; ackSeq: string | null; lagRecords: string; standby: boolean; reader: Pick<RingReaderCounters, "records" | "frames" | RetiredCounter> & { lost: string } } {
    const p = this.peers[i]!;
    const c = p.ring.counters;
    const reader = { records: c.records, frames: c.frames, lost: String(c.lost), overruns: c.overruns, damaged: c.damaged, tornSeen: c.tornSeen, authFailures: c.authFailures, downgrades: c.downgrades, replays: c.replays };
    return { node: p.node, path: p.path, keyed: p.auth !== undefined, ackSeq: p.ack.ack === undefined ? null : String(p.ack.ack.seq), lagRecords: String(p.ring.lagRecords), standby: p.ring.inStandby, reader };
  }

  /**
   * Peer `i`'s link verdict (PeerLink "standby"): its ring's follower re-reads every pollStandbyMaxMs
   * while that peer's primary is up both ways and its ring carries only heartbeats for us. Per ring:
   * a peer's ring is written by that peer alone, so another peer's failover never needs it faster
   * (frames it writes for others are read in the same batches, only later).
   */
  standby(i: number, on: boolean): void {
    if (!this.closed) this.peers[i]!.ring.standby(on);
  }

  /** The storage components as peer `i`'s link sees them: our send ring and its receive ring. */
  report(i: number): StorageReport {
    return storageReport(volumeReport(this.send.supervisor, this.options.ring, this.send.volume), this.peers[i]!.ring.report());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers) await p.ring.close();
    await this.send.close();
    await this.send.volume.close().catch(() => undefined);
  }

  /** Peer `i`'s status block: its row about our ring (ack, heartbeat) feeds the writer's flow control. */
  private peerStatus(i: number, status: StatusBlock): void {
    const p = this.peers[i]!;
    p.ack = peerAckOf(p.node, status, this.options.nodeId);
    this.send.writer?.peerAckChanged();
  }
}

/** Peer `i`'s ring, read-only, at its writer's head, handing on frames for us or for everyone; keyed: under its key, refusing records at or below the floor. */
function receiveOptions(o: ClusterStorageOptions, i: number, peer: { node: number; ring: string }, auth: RingAuth | undefined): Omit<ReceiveRingOptions, "onStatus" | "onChange"> {
  const self = o.nodeId;
  const onFrame = o.onFrame;
  return {
    component: `receive node ${peer.node}`,
    path: peer.ring,
    openVolume: () => openRing(peer.ring, peer.node, { readOnly: true, ioTimeoutMs: o.ioTimeoutMs }),
    readerOptions: (notBefore) => linkReaderOptions({ ...o, peerNodeId: peer.node }, auth, notBefore),
    keyed: auth !== undefined,
    poller: {
      pollMinUs: DEFAULT_POLL_MIN_US,
      pollMaxMs: o.pollMaxMs ?? DEFAULT_POLL_MAX_MS,
      ...(o.pollStandbyMaxMs === undefined ? {} : { pollStandbyMaxMs: o.pollStandbyMaxMs }),
      statusPollMs: STATUS_POLL_MS,
      onFrame: (_seq, type, flags, bytes, offset, length) => {
        if (flags === BROADCAST || flags === self) onFrame(i, type, bytes, offset, length);
      },
    },
    ...(o.recovery === undefined ? {} : { recovery: o.recovery }),
  };
}

/** Our status row about a peer: how far we read its ring (ack) and delivered from it. */
function peerRowOf(p: PeerRing): PeerRow {
  const ack = p.ring.ack;
  const delivered = p.ring.delivered;
  return { node: p.node, flags: 0, ackEpoch: ack.epoch, ackSeq: ack.seq, deliveredEpoch: delivered.epoch, deliveredSeq: delivered.seq };
}

/** The reader counters a peer ring's status shows besides records, frames and lost. */
type RetiredCounter = "damaged" | "overruns" | "tornSeen" | "authFailures" | "downgrades" | "replays";

/** A peer ring's reader at the writer's head; keyed: under the peer's ring key, refusing records at or below `notBefore`. */
