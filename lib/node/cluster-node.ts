// A cluster node's link side, composed: one ring writer on this node's own ring and one reader per
// peer ring (ClusterStorage), one pair of UDP sockets shared by every peer (UdpPath), and one
// PeerLink (LinkCore: path states, failover and failback, control, dedupe) per peer, so node A may
// reach B over the network and C only over storage. Pipeline:
//   send: a TUN read batch -> ClusterRoutes picks each packet's peer (broadcast/multicast: every
//         peer) -> that PeerLink picks its paths -> its UDP batch (one sendmmsg per peer at the
//         batch's end) | our ring, the frame addressed to that peer (one record per batch)
//   receive: a datagram (demuxed by source endpoint) | a peer ring frame for us or for everyone ->
//            that PeerLink -> data batches (onDataBatch: one call per UDP batch or ring poll).
// A broadcast gets this node's next broadcast seq (message.ts: its own numbering, since each pair
// numbers its own data): every peer link sends its copy on the paths its data goes on, one UDP
// datagram per peer on the primary (unicast, as knet does), and the storage copies are ONE ring frame
// with destination 0, written if any peer's data goes on storage now and not at all otherwise; every
// receiver delivers a broadcast seq once per sender, whichever path brings it first.
// Timers: one clock for all peers (ClockTimer over LinkClock, as a pair's Link).
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import { DEFAULT_LINK_TICK_MS } from "../defaults.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { FrameType } from "../format/layout.ts";
import type { StateChange, RecoveryOptions } from "../io/supervisor.ts";
import { ClockTimer } from "../link/clock-timer.ts";
import { DeliveryBatch } from "../link/delivery-batch.ts";
import type { DataBatchHandler, Endpoint, SendBatchOptions } from "../link/link.ts";
import { PathId } from "../link/message.ts";
import type { LinkTimers, Transition } from "../link/paths.ts";
import { newSession, PeerLink } from "../link/peer-link.ts";
import type { AppendResult } from "../link/peer-storage.ts";
import { CLUSTER_UDP_BATCH_BYTES, UdpPath } from "../link/udp-path.ts";
import { SuperpacketLink, type SuperpacketCounters } from "../link/superpackets.ts";
import { isFramed, VNET_HDR_BYTES } from "../tun/offload.ts";
import type { RingObserver } from "../ring/fault-memory.ts";
import type { RingWriterCounters } from "../ring/writer.ts";
import { ClusterRoutes } from "./cluster-route.ts";
import { peerStatus, type PeerStatus } from "./cluster-link.ts";
import { ClusterStorage } from "./cluster-storage.ts";

export interface ClusterMemberOptions {
  node: number;
  /** The member's address on the TUN subnet. */
  address: string;
  /** Its primary UDP endpoint (data; control on port + 1). */
  primary: Endpoint;
  /** Where its ring is read from (a cluster volume: its region; or a node volume, e.g. a mirror copy). */
  ring: string;
  /** Its X25519 public key (base64), when keys are configured. */
  publicKey?: string;
}

export interface ClusterNodeOptions {
  nodeId: number;
  /** The TUN subnet with this node's address, "198.18.100.1/24". */
  subnet: string;
  /** Every member, this node included (its entry: where it binds and writes its ring). */
  members: readonly ClusterMemberOptions[];
  storage: { dsync?: boolean; maxDelayMs?: number; pollMaxMs?: number; pollStandbyMaxMs?: number | undefined; ioTimeoutMs?: number; damageTimeoutMs?: number; recovery?: RecoveryOptions; peerDownMs: number; observer?: RingObserver };
  timers: LinkTimers;
  controlRtoMs?: number;
  /** Longest gap between two turns of the clock, which ticks every peer's state machine (default DEFAULT_LINK_TICK_MS, 35 ms). */
  tickMs?: number;
  /** This node's X25519 private key (base64): seals UDP per peer. */
  privateKey?: string;
  /** The cluster secret (32 bytes): keys every ring (docs/format.md, Keyed clusters); absent, the rings are unkeyed. */
  clusterSecret?: Uint8Array;
  log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface ClusterNodeEvents {
  transition: [peer: number, t: Transition];
  /** A storage component changed state: our ring (peer undefined) or a peer's ring. */
  storage: [StateChange & { peer?: number }];
  control: [peer: number, payload: Uint8Array];
}

/** Packets read from the TUN that went nowhere, by reason (ClusterRoutes), and those no path took. */
export interface RouteCounters {
  toPeers: number;
  broadcasts: number;
  /** Ring frames written for broadcasts (destination 0): at most one per broadcast, none while every peer is on the primary. */
  broadcastRingFrames: number;
  notSent: number;
  dropped: Record<"short" | "version" | "self" | "unknown-address" | "outside-subnet" | "too-large", number>;
}

export interface ClusterStatus {
  node: number;
  kind: "cluster";
  peers: PeerStatus[];
  ring: { headSeq: string; epoch: string; writerCounters: RingWriterCounters };
  routes: RouteCounters;
  udpStrays: number;
  /** TCP superpackets (TUN offload) sent whole or cut, delivered (lib/link/superpackets.ts). */
  superpackets: SuperpacketCounters;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
}

export type { DataBatchHandler } from "../link/link.ts";

export class ClusterNode extends EventEmitter<ClusterNodeEvents> {
  readonly options: ClusterNodeOptions;
  readonly peers: readonly PeerLink[];
  readonly routes: ClusterRoutes;
  readonly routeCounters: RouteCounters = { toPeers: 0, broadcasts: 0, broadcastRingFrames: 0, notSent: 0, dropped: { short: 0, version: 0, self: 0, "unknown-address": 0, "outside-subnet": 0, "too-large": 0 } };
  private readonly udp: UdpPath;
  private readonly storage: ClusterStorage;
  private readonly byNode = new Map<number, PeerLink>();
  /** The one timer of every peer link: the clock's turns (heartbeats and tick), which also sample the event-loop delay. */
  private readonly clock: ClockTimer;
  /** TCP superpackets from an offload TUN (superpackets.ts). */
  private readonly superpackets = new SuperpacketLink();
  private readonly peerDrained = (peer: PeerLink): boolean => this.storage.drained(peer.options.index);
  private readonly delivery = new DeliveryBatch();
  private dataBatchHandler: DataBatchHandler | undefined;
  /** The last broadcast seq given out (this session; 0: none yet). */
  private broadcastSeq = 0n;
  /** The ring frame of the broadcast being sent: every peer link asking for that seq gets this answer. */
  private readonly broadcastFrame: { seq: bigint; result: AppendResult } = { seq: 0n, result: "down" };
  private closed = false;

  private constructor(options: ClusterNodeOptions, routes: ClusterRoutes, udp: UdpPath, storage: ClusterStorage, peers: PeerLink[]) {
    super();
    this.options = options;
    this.routes = routes;
    this.udp = udp;
    this.storage = storage;
    this.peers = peers;
    for (const p of peers) {
      this.byNode.set(p.node, p);
      p.on("transition", (t) => this.emit("transition", p.node, t));
      p.on("control", (payload) => this.emit("control", p.node, payload));
      // Each peer ring's follower sleeps long only while that peer's primary carries everything (cluster-storage.ts).
      p.on("standby", (on) => storage.standby(p.options.index, on));
    }
    storage.on("change", (c) => this.emit("storage", c));
    this.clock = new ClockTimer(options.timers, options.tickMs ?? DEFAULT_LINK_TICK_MS, (turn, nowMs) => {
      // Heartbeats the UDP thread held go in first, with their arrival times: the echoes we send and the ticks see them.
      udp.drainHeld();
      for (const p of peers) {
        if (turn.primary) p.heartbeat(PathId.Primary);
        if (turn.storage) p.heartbeat(PathId.Storage);
        p.tick(nowMs);
      }
    });
  }

  /** Opens every ring (ours in a new epoch) and the UDP sockets, then starts heartbeats on both paths to every peer. */
  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    const self = options.members.find((m) => m.node === options.nodeId);
    if (self === undefined) throw new LunlinkError(ErrorCode.BadConfig, `node ${options.nodeId} is not among the cluster members (${options.members.map((m) => m.node).join(", ")})`);
    const routes = new ClusterRoutes(options.subnet, options.members, options.nodeId);
    const peerMembers = options.members.filter((m) => m.node !== options.nodeId);
    if (options.privateKey !== undefined) {
      const missing = peerMembers.find((m) => m.publicKey === undefined);
      if (missing !== undefined) throw new LunlinkError(ErrorCode.BadConfig, `keys are configured but member ${missing.node} has no publicKey`);
    }
    let node: ClusterNode | undefined;
    const storage = await ClusterStorage.open({
      ...options.storage,
      nodeId: options.nodeId,
      ring: self.ring,
      peers: peerMembers.map((m) => ({ node: m.node, ring: m.ring })),
      ...(options.clusterSecret === undefined ? {} : { clusterSecret: options.clusterSecret }),
      onFrame: (peer, _type, bytes, offset, length) => node?.peers[peer]!.receiveRing(bytes, offset, length),
    });
    // Everything opened from here on is closed again, in reverse order, if a later step throws (a
    // peer's public key the PeerLink refuses, a peer endpoint UdpPath refuses): the caller gets the
    // original error and no socket, volume handle or timer outlives the failed open.
    let udp: UdpPath | undefined;
    const peers: PeerLink[] = [];
    try {
      udp = UdpPath.open({
        bind: self.primary,
        peers: peerMembers.map((m) => m.primary),
        sources: "endpoint",
        batchBytes: CLUSTER_UDP_BATCH_BYTES,
        onDatagram: (peer, bytes, offset, length, address, port, arrivedMs) => node?.peers[peer]!.receiveUdp(bytes, offset, length, address, port, arrivedMs),
        onBatchEnd: () => node?.flushDelivery(),
        onError: (error) => options.log?.("udp-error", { message: error.message }),
      });
      const session = newSession(storage);
      for (const [index, m] of peerMembers.entries()) {
        peers.push(
          new PeerLink(
            {
              nodeId: options.nodeId,
              peerNodeId: m.node,
              index,
              session,
              timers: options.timers,
              controlRtoMs: options.controlRtoMs ?? 200,
              ...(options.privateKey === undefined ? {} : { keys: { privateKey: options.privateKey, peerPublicKey: m.publicKey! } }),
              deliver: (payload, _path, framed) => node?.deliver(payload, framed),
              broadcastRing: (seq, type, frame) => node?.broadcastRing(seq, type, frame) ?? "down",
              ...(options.log === undefined ? {} : { log: peerLog(options.log, m.node) }),
            },
            udp,
            storage,
          ),
        );
      }
      node = new ClusterNode(options, routes, udp, storage, peers);
      node.start();
      return node;
    } catch (error) {
      node?.clock.stop();
      await closeParts(peers, udp, storage);
      throw error;
    }
  }

  private start(): void {
    this.clock.start();
  }

  /** The peer link of node `node`. */
  peer(node: number): PeerLink | undefined {
    return this.byNode.get(node);
  }

  /**
   * Sends `count` IP packets stored back to back in `payloads` (packet i is lengths[i] bytes), e.g.
   * one TUN read batch, each to the peer its destination address names (every peer for broadcast and
   * multicast). Returns how many some path took (a broadcast counts once if any peer took it).
   * With `framed` (an offload TUN's batch), a vnet-framed TCP superpacket goes whole on a peer's ring
   * when storage alone carries its data, else cut (superpackets.ts); without it nothing is sniffed or cut.
   */
  sendBatch(payloads: Uint8Array, lengths: Uint32Array, count: number, options?: SendBatchOptions): number {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed cluster node");
    const now = performance.now();
    const r = this.routeCounters;
    let taken = 0;
    let offset = 0;
    const tun = options?.framed === true;
    for (const p of this.peers) p.batching = true;
    try {
      for (let i = 0; i < count; i++) {
        const length = lengths[i]!;
        const packet = payloads.subarray(offset, offset + length);
        offset += length;
        // A superpacket (TUN offload) is routed by its IP header, after the vnet header.
        const framed = tun && isFramed(packet, 0, length);
        const route = this.routes.route(framed ? packet.subarray(VNET_HDR_BYTES) : packet);
        if (route.kind === "drop") {
          r.dropped[route.reason]++;
          continue;
        }
        let sent = false;
        if (route.kind === "peer") {
          const peer = this.byNode.get(route.node)!;
          if (length > peer.maxPayloadBytes && !framed) {
            r.dropped["too-large"]++;
            continue;
          }
          r.toPeers++;
          sent = framed ? this.superpackets.sendTunPacket(peer, now, packet, this.peerDrained) : peer.sendData(now, packet);
        } else if (framed) {
          r.dropped["too-large"]++; // TCP is never broadcast: a framed broadcast is not a packet to carry
          continue;
        } else {
          r.broadcasts++;
          const seq = ++this.broadcastSeq;
          for (const peer of this.peers) if (peer.sendBroadcast(now, seq, packet)) sent = true;
        }
        if (sent) taken++;
        else r.notSent++;
      }
    } finally {
      for (const p of this.peers) {
        p.batching = false;
        p.flushUdp();
      }
    }
    return taken;
  }

  /** Data payloads in batches (one call per UDP receive batch or ring poll), for TunDevice.writeBatch. */
  onDataBatch(handler: DataBatchHandler): void {
    this.dataBatchHandler = handler;
  }

  status(): ClusterStatus {
    return {
      node: this.options.nodeId,
      kind: "cluster",
      peers: this.peers.map((p) => peerStatus(p, this.storage)),
      ring: { headSeq: String(this.storage.headSeq), epoch: String(this.storage.epoch), writerCounters: this.storage.writerCounters },
      routes: { ...this.routeCounters, dropped: { ...this.routeCounters.dropped } },
      udpStrays: this.udp.strays,
      superpackets: { ...this.superpackets.counters },
      eventLoopDelayMs: this.clock.loopDelayMs,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clock.stop();
    await closeParts(this.peers, this.udp, this.storage);
  }

  /** The storage copy of broadcast `seq`: one ring frame for every peer (destination 0), appended on the first ask. */
  private broadcastRing(seq: bigint, type: FrameType, frame: Uint8Array): AppendResult {
    const f = this.broadcastFrame;
    if (f.seq === seq) return f.result;
    if (seq <= f.seq) throw new Error(`assertion failed: broadcast seq ${seq} after ${f.seq}`);
    f.seq = seq;
    f.result = this.storage.appendBroadcast(type, frame);
    if (f.result === "queued") this.routeCounters.broadcastRingFrames++;
    return f.result;
  }

  /** framed: the message header marked the payload a superpacket (delivery-batch.ts carries the flag to the TUN). */
  private deliver(payload: Uint8Array, framed: boolean): void {
    if (this.dataBatchHandler === undefined || this.closed) return;
    if (framed) this.superpackets.delivered();
    if (!this.delivery.fits(payload.length)) this.flushDelivery();
    // Ring frames arrive one by one from a poller's record walk: flush after it (UDP flushes at batch end).
    if (this.delivery.push(payload, framed)) queueMicrotask(this.flushDelivery);
  }

  private readonly flushDelivery = (): void => {
    const count = this.delivery.take();
    if (count > 0 && !this.closed) this.dataBatchHandler?.(this.delivery.bytes, this.delivery.lengths, count, this.delivery.framed);
  };
}

/** Closes what a node opened, last opened first: its peer links, the UDP sockets, the rings (close() and a failed open() alike). */
async function closeParts(peers: readonly PeerLink[], udp: UdpPath | undefined, storage: ClusterStorage): Promise<void> {
  for (const p of [...peers].reverse()) p.close();
  udp?.close();
  await storage.close();
}

/** A peer link's log lines name the peer. */
function peerLog(log: (event: string, fields: Record<string, unknown>) => void, peer: number): (event: string, fields: Record<string, unknown>) => void {
  return (event, fields) => log(event, { peer, ...fields });
}
