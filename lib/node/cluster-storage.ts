// The storage side of a cluster node: one ring writer on this node's own ring (its region of the
// shared cluster volume, or a node volume) and one reader + poller per peer ring (the peer's region
// read directly, or a mirror copy), each under a Supervisor so a storage fault heals by itself, as a
// pair's StoragePath does. Frames carry their destination in the frame's flags byte: a frame for one
// peer names it, a broadcast is 0; a reader hands on only frames for this node or for everyone.
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
import type { PeerRow } from "../format/status.ts";
import { Volume } from "../io/volume.ts";
import { Supervisor, type Incarnation, type RecoveryOptions, type StateChange } from "../io/supervisor.ts";
import { storageReport, volumeReport, type AppendResult, type PeerFrameHandler, type PeerStorage, type StorageReport } from "../link/peer-storage.ts";
import { SupervisedWriter } from "../link/supervised-writer.ts";
import { Poller } from "../poll/poller.ts";
import { clusterRingAuth, isClusterVolume, openCluster, openRegion, peerAckOf, persistedPeerMarks, type PeerAck } from "../ring/cluster.ts";
import type { RingAuth } from "../ring/keys.ts";
import { openSuperblock } from "../ring/superblocks.ts";
import type { RingObserver } from "../ring/fault-memory.ts";
import { RingReader, type RingReaderCounters } from "../ring/reader.ts";
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

/** One peer's ring as this node reads it. */
class PeerRing {
  readonly node: number;
  readonly path: string;
  volume: Volume;
  reader: RingReader;
  poller!: Poller;
  supervisor!: Supervisor;
  /** What the peer's status block says about our ring. */
  ack: PeerAck;
  /** Keyed: the key of the peer's ring. */
  readonly auth: RingAuth | undefined;
  readonly retired: Pick<RingReaderCounters, RetiredCounter | "lost"> = { lost: 0n, damaged: 0, overruns: 0, tornSeen: 0, authFailures: 0, downgrades: 0, replays: 0 };

  constructor(node: number, path: string, volume: Volume, reader: RingReader, auth: RingAuth | undefined) {
    this.node = node;
    this.path = path;
    this.volume = volume;
    this.reader = reader;
    this.auth = auth;
    this.ack = { node, ack: undefined, heartbeat: 0n };
  }
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
    peers.forEach((p, i) => {
      this.watch(p);
      p.poller = this.newPoller(p, i);
      p.supervisor = new Supervisor(`receive node ${p.node}`, () => p.volume, (reopen) => this.reopenPeer(p, i, reopen), options.recovery);
      p.supervisor.on("change", (c) => this.emit("change", { ...c, peer: p.node }));
      p.supervisor.adopt(this.pollerIncarnation(p));
    });
  }

  /** Opens our ring (a new epoch; refused if a live writer with our id holds it) and every peer's at its head; throws on any error. */
  static async open(options: ClusterStorageOptions): Promise<ClusterStorage> {
    const opened: Volume[] = [];
    let send: SupervisedWriter | undefined;
    const peers: PeerRing[] = [];
    try {
      const own = await openRing(options.ring, options.nodeId, { dsync: options.dsync ?? true, ioTimeoutMs: options.ioTimeoutMs });
      opened.push(own);
      // The cluster UUID is read unverified: a wrong one only derives keys that fail verification (our writer's open, then each reader's).
      const clusterUuid = options.clusterSecret === undefined ? undefined : (await openSuperblock(own)).superblock.pairUuid;
      const authOf = (node: number): RingAuth | undefined => (clusterUuid === undefined ? undefined : clusterRingAuth(options.clusterSecret, clusterUuid, node));
      const ownAuth = authOf(options.nodeId);
      // Our own status (MACed, so verified before any peer ring is read) holds each peer's delivered mark.
      const marks = ownAuth === undefined ? undefined : await persistedPeerMarks(own, ownAuth, options.peers.map((p) => p.node));
      for (const p of options.peers) {
        const volume = await openRing(p.ring, p.node, { readOnly: true, ioTimeoutMs: options.ioTimeoutMs });
        opened.push(volume);
        const auth = authOf(p.node);
        peers.push(new PeerRing(p.node, p.ring, volume, await RingReader.open(volume, readerOptions(options, p.node, auth, marks?.get(p.node))), auth));
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
      return new ClusterStorage(options, send, peers);
    } catch (error) {
      await send?.close();
      for (const v of opened) await v.close().catch(() => undefined);
      throw error;
    }
  }

  /** Queues one frame on our ring addressed to peer `i`: "down" while the writer recovers. */
  append(i: number, type: FrameType, frame: Uint8Array): AppendResult {
    return this.send.tryAppend(type, frame, this.peers[i]!.node);
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
  peerRing(i: number): { node: number; path: string; keyed: boolean; ackSeq: string | null; lagRecords: string; reader: { records: number; frames: number; lost: string } & Record<RetiredCounter, number> } {
    const p = this.peers[i]!;
    const c = p.reader.counters;
    const reader = { records: c.records, frames: c.frames, lost: String(c.lost + p.retired.lost), overruns: 0, damaged: 0, tornSeen: 0, authFailures: 0, downgrades: 0, replays: 0 };
    for (const name of RETIRED_COUNTERS) reader[name] = c[name] + p.retired[name];
    return { node: p.node, path: p.path, keyed: p.auth !== undefined, ackSeq: p.ack.ack === undefined ? null : String(p.ack.ack.seq), lagRecords: String(p.poller.lagRecords), reader };
  }

  /** The storage components as peer `i`'s link sees them: our send ring and its receive ring. */
  report(i: number): StorageReport {
    const p = this.peers[i]!;
    return storageReport(volumeReport(this.send.supervisor, this.options.ring, this.send.volume), volumeReport(p.supervisor, p.path, p.volume));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers) {
      await p.supervisor.close();
      await p.poller.stop().catch(() => undefined);
    }
    await this.send.close();
    await this.send.volume.close().catch(() => undefined);
    for (const p of this.peers) await p.volume.close().catch(() => undefined);
  }

  private newPoller(p: PeerRing, i: number): Poller {
    const self = this.options.nodeId;
    const onFrame = this.options.onFrame;
    const poller = new Poller(p.reader, {
      pollMinUs: DEFAULT_POLL_MIN_US,
      pollMaxMs: this.options.pollMaxMs ?? DEFAULT_POLL_MAX_MS,
      statusPollMs: STATUS_POLL_MS,
      onFrame: (_seq, type, flags, bytes, offset, length) => {
        if (flags === BROADCAST || flags === self) onFrame(i, type, bytes, offset, length);
      },
    });
    poller.on("status", (status) => {
      p.ack = peerAckOf(p.node, status, self);
      this.send.writer?.peerAckChanged();
    });
    return poller;
  }

  private pollerIncarnation(p: PeerRing): Incarnation {
    const poller = p.poller;
    poller.start();
    return {
      failed: poller.finished().then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      ),
      close: () => poller.stop(),
    };
  }

  private async reopenPeer(p: PeerRing, i: number, reopenVolume: boolean): Promise<Incarnation> {
    if (reopenVolume) {
      // A fresh handle: a new reader at the writer's head (data written meanwhile is lost; the link retransmits control).
      // Keyed: never below what we delivered (the new reader refuses older records as replays).
      const delivered = p.auth === undefined ? undefined : p.reader.delivered;
      await p.volume.close().catch(() => undefined);
      p.volume = await openRing(p.path, p.node, { readOnly: true, ioTimeoutMs: this.options.ioTimeoutMs });
      this.watch(p);
      const reader = await RingReader.open(p.volume, readerOptions(this.options, p.node, p.auth, delivered));
      const c = p.reader.counters;
      p.retired.lost += c.lost;
      for (const name of RETIRED_COUNTERS) p.retired[name] += c[name];
      p.reader = reader;
      p.poller = this.newPoller(p, i);
    } else {
      await p.reader.refresh();
    }
    return this.pollerIncarnation(p);
  }

  private watch(p: PeerRing): void {
    const volume = p.volume;
    volume.on("stall", (parked) => {
      if (p.volume === volume) p.supervisor.parked = parked;
    });
    volume.on("recover", () => {
      if (p.volume === volume) p.supervisor.parked = 0;
    });
  }
}

/** Our status row about a peer: how far we read its ring (ack) and delivered from it. */
function peerRowOf(p: PeerRing): PeerRow {
  const ack = p.reader.ack;
  const delivered = p.reader.delivered;
  return { node: p.node, flags: 0, ackEpoch: ack.epoch, ackSeq: ack.seq, deliveredEpoch: delivered.epoch, deliveredSeq: delivered.seq };
}

/** Reader counters carried over when a fresh volume handle replaces a reader (totals never go back: Prometheus counters). */
const RETIRED_COUNTERS = ["damaged", "overruns", "tornSeen", "authFailures", "downgrades", "replays"] as const;
type RetiredCounter = (typeof RETIRED_COUNTERS)[number];

/** A peer ring's reader at the writer's head; keyed: under the peer's ring key, refusing records at or below `notBefore`. */
function readerOptions(o: ClusterStorageOptions, peer: number, auth: RingAuth | undefined, notBefore: { epoch: bigint; seq: bigint } | undefined): Parameters<typeof RingReader.open>[1] {
  return {
    nodeId: o.nodeId,
    peerNodeId: peer,
    start: "head",
    ...(o.damageTimeoutMs === undefined ? {} : { damageTimeoutMs: o.damageTimeoutMs }),
    ...(o.observer === undefined ? {} : { observer: o.observer }),
    ...(auth === undefined ? {} : { auth, ...(notBefore === undefined ? {} : { notBefore }) }),
  };
}
