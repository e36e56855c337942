// Link: one node's end of a pair, carrying datagrams over two paths of one shape (UdpPath, StoragePath).
// Pipeline, batches kept whole at every stage:
//   send: sendBatch (a TUN read batch; superpackets only with `framed`) -> LinkCore picks paths and headers per packet -> UdpPath batch
//         (encoded or sealed in place) flushed in one sendmmsg | StoragePath (frames into the ring
//         writer's open record: one record per batch)
//   receive: UdpPath recvmmsg batch (unsealed into one reused buffer) | StoragePath (receive ring) ->
//            LinkCore (decode, session, path heartbeat, control in order and acked, data dedupe and
//            failback order) -> "data"/"control" events, and data batches (onDataBatch: one call per
//            receive batch, for TunDevice.writeBatch)
// Every decision is in the sans-IO LinkCore (paths.ts, with control.ts and window.ts), driven by the
// per-peer shell a cluster node has one of per peer (PeerLink, peer-link.ts): the pair is its N = 2
// case. This adds what is the pair's own: opening its sockets and rings, its clock, the delivery batch
// and the pair's status (pure: delivery-batch.ts, link-status.ts); the storage path heals itself
// (lib/link/storage-path.ts). Invariants:
// heartbeats run on both paths all the time; the application never sees a data message twice;
// control is delivered once, in order; sendControl waits for acks, never polls.
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import { DEFAULT_LINK_TICK_MS } from "../defaults.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import { DeliveryBatch } from "./delivery-batch.ts";
import { linkCounters, linkStatus, type LinkCounters, type LinkStatus } from "./link-status.ts";
import { StoragePath, type StoragePathOptions } from "./storage-path.ts";
import type { StateChange } from "../io/supervisor.ts";
import { PathId } from "./message.ts";
import { checkPayloadSize, newSession, PeerLink } from "./peer-link.ts";
import { UDP_SEND_BATCH_BYTES, UdpPath } from "./udp-path.ts";
import { ringKey, sharedSecret } from "./keys.ts";
import type { LinkCore, LinkTimers, Transition } from "./paths.ts";
import { ClockTimer } from "./clock-timer.ts";
import { SuperpacketLink, type SuperpacketCounters } from "./superpackets.ts";

export interface Endpoint {
  host: string;
  port: number;
}

export interface LinkOptions {
  nodeId: number;
  peerNodeId: number;
  /** UDP: data on `port`, heartbeats and control on `port + 1` (both ends). */
  primary: { bind: Endpoint; peer: Endpoint };
  /** The storage path: volumes, writer and poller settings, recovery after faults (StoragePathOptions). */
  storage: Omit<StoragePathOptions, "nodeId" | "peerNodeId" | "heartbeatMs" | "auth" | "onFrame">;
  timers: LinkTimers;
  /**
   * Keys (base64 X25519, see keys.ts): when set, every UDP datagram is sealed (ChaCha20-Poly1305)
   * and unsealed or downgraded datagrams are refused.
   */
  keys?: { privateKey: string; peerPublicKey: string };
  /** Control retransmission timeout (default 200 ms). */
  controlRtoMs?: number;
  /** Longest gap between two turns of the link's clock, which ticks the state machine (default DEFAULT_LINK_TICK_MS, 35 ms). */
  tickMs?: number;
  /** Called for every state transition and notable event (the CLI logs them). */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

export type { LinkCounters, LinkStatus } from "./link-status.ts";
export { DELIVERY_BATCH_BYTES, DELIVERY_BATCH_PACKETS } from "./delivery-batch.ts";

export interface LinkEvents {
  /** A data payload (a view, valid only during the call). */
  data: [payload: Uint8Array, path: "primary" | "storage"];
  /** A control payload, in order, exactly once. */
  control: [payload: Uint8Array];
  transition: [Transition];
  /** A storage component (send ring, receive ring) changed state: fault, recovery, configuration fault. */
  storage: [StateChange];
}

/**
 * Receives `count` data payloads back to back in `payloads` (payload i is lengths[i] bytes; framed[i]
 * is 1 if its message header marked it a vnet-framed TCP superpacket, else it is an opaque datagram);
 * valid during the call.
 */
export type DataBatchHandler = (payloads: Uint8Array, lengths: Uint32Array, count: number, framed: Uint8Array) => void;

export interface SendBatchOptions {
  /**
   * The batch is an offload TUN's read batch (TunDevice with `offload`): a payload whose first nibble
   * is 0 is a vnet-framed TCP superpacket (superpackets.ts). Without it every payload is an opaque
   * datagram, carried as it is.
   */
  framed?: boolean;
}

export class Link extends EventEmitter<LinkEvents> {
  readonly options: LinkOptions;
  /** The link to the peer: LinkCore and the bytes it moves (the same shell a cluster node has per peer). */
  readonly peer: PeerLink;
  /** The primary path: data on the bind port, heartbeats and control on port + 1. */
  private readonly udp: UdpPath;
  private readonly storage: StoragePath;
  /** Data delivered since the last flush, for onDataBatch. */
  private readonly delivery = new DeliveryBatch();
  private dataBatchHandler: DataBatchHandler | undefined;
  /** TCP superpackets from an offload TUN: whole on storage alone, else cut (superpackets.ts). */
  private readonly superpackets = new SuperpacketLink();
  private readonly storageDrained = (): boolean => this.storage.drained(); // the pair's one peer
  /** The one timer of the link: its clock's turns (heartbeats and tick), which also sample the event-loop delay. */
  private readonly clock: ClockTimer;
  private closed = false;

  private constructor(options: LinkOptions, udp: UdpPath, storage: StoragePath) {
    super();
    this.options = options;
    this.udp = udp;
    this.storage = storage;
    this.peer = new PeerLink(
      {
        nodeId: options.nodeId,
        peerNodeId: options.peerNodeId,
        index: PEER,
        session: newSession(storage),
        timers: options.timers,
        controlRtoMs: options.controlRtoMs ?? 200,
        ...(options.keys === undefined ? {} : { keys: options.keys }),
        deliver: (payload, path, framed) => this.deliver(payload, path, framed),
        log: (event, fields) => this.log(event, fields),
      },
      udp,
      storage,
    );
    this.peer.on("transition", (t) => this.emit("transition", t));
    this.peer.on("control", (payload) => this.emit("control", payload));
    // The receive ring's follower sleeps long only while the primary carries everything (storage-path.ts).
    this.peer.on("standby", (on) => this.storage.standby(on));
    this.clock = new ClockTimer(options.timers, options.tickMs ?? DEFAULT_LINK_TICK_MS, (turn, nowMs) => {
      // Heartbeats the UDP thread held go in first, with their arrival times: the echo we send and the tick see them.
      udp.drainHeld();
      if (turn.primary) this.peer.heartbeat(PathId.Primary);
      if (turn.storage) this.peer.heartbeat(PathId.Storage);
      this.peer.tick(nowMs);
    });
  }

  /** The state machine of the pair (path states, transitions): what the node's status and notifier read. */
  get core(): LinkCore {
    return this.peer.core;
  }

  /** Opens both paths: binds the UDP sockets and opens the storage path (send ring in a new epoch, receive ring from its head). */
  static async open(options: LinkOptions): Promise<Link> {
    let udp: UdpPath | undefined;
    let storage: StoragePath | undefined;
    try {
      let link: Link | undefined;
      const { keys } = options;
      // Keys: the storage path's ring keys come from the same X25519 secret, salted with the pair's UUID.
      const secret = keys === undefined ? undefined : sharedSecret(keys.privateKey, keys.peerPublicKey);
      storage = await StoragePath.open({
        ...options.storage,
        heartbeatMs: options.timers.storage.heartbeatMs,
        nodeId: options.nodeId,
        peerNodeId: options.peerNodeId,
        ...(secret === undefined
          ? {}
          : { auth: (pairUuid: string) => ({ send: { key: ringKey(secret, pairUuid, options.nodeId, options.peerNodeId) }, receive: { key: ringKey(secret, pairUuid, options.peerNodeId, options.nodeId) } }) }),
        onFrame: (_peer, _type, bytes, offset, length) => link?.peer.receiveRing(bytes, offset, length),
      });
      udp = UdpPath.open({
        bind: options.primary.bind,
        peers: [options.primary.peer],
        sources: "any",
        batchBytes: UDP_SEND_BATCH_BYTES,
        onDatagram: (_peer, bytes, offset, length, address, port, arrivedMs) => link?.peer.receiveUdp(bytes, offset, length, address, port, arrivedMs),
        onBatchEnd: () => link?.flushDelivery(),
        onError: (error) => link?.log("udp-error", { message: error.message }),
      });
      link = new Link(options, udp, storage);
      link.start();
      return link;
    } catch (error) {
      udp?.close();
      await storage?.close();
      throw error;
    }
  }

  private start(): void {
    // One event per state change of a storage component (not per retry): the node logs it.
    this.storage.on("change", (change) => this.emit("storage", change));
    this.clock.start();
  }

  /** Sends one data datagram, best effort (like a network). Returns false if no path took it. */
  sendData(payload: Uint8Array): boolean {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    checkPayloadSize(payload, this.maxPayloadBytes);
    return this.peer.sendData(performance.now(), payload);
  }

  /**
   * Sends `count` data payloads stored back to back in `payloads` (payload i is lengths[i] bytes), e.g.
   * one TUN read batch: one sendmmsg for the UDP copies, one ring record for the storage copies.
   * Returns how many some path took. A payload too large for the link is counted as not taken.
   * With `framed` (an offload TUN's batch), a vnet-framed TCP superpacket goes whole on storage alone,
   * else as its segments (superpackets.ts); without it nothing is sniffed or cut.
   */
  sendBatch(payloads: Uint8Array, lengths: Uint32Array, count: number, options?: SendBatchOptions): number {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    const now = performance.now();
    let taken = 0;
    let offset = 0;
    const framed = options?.framed === true;
    this.peer.batching = true;
    try {
      for (let i = 0; i < count; i++) {
        const length = lengths[i]!;
        const payload = payloads.subarray(offset, offset + length);
        if (framed ? this.superpackets.sendTunPacket(this.peer, now, payload, this.storageDrained) : this.peer.sendData(now, payload)) taken++;
        offset += length;
      }
    } finally {
      this.peer.batching = false;
      this.peer.flushUdp();
    }
    return taken;
  }

  /**
   * Data payloads in batches (one call per UDP receive batch or ring poll): the TUN bridge writes
   * each with one TunDevice.writeBatch. "data" events still fire for their listeners.
   */
  onDataBatch(handler: DataBatchHandler): void {
    this.dataBatchHandler = handler;
  }

  /** framed: the message header marked the payload a superpacket (only then is it cut for "data" listeners). */
  private deliver(payload: Uint8Array, path: PathId, framed: boolean): void {
    if (this.listenerCount("data") > 0) {
      const name = path === PathId.Primary ? "primary" : "storage";
      if (framed) this.superpackets.eachSegment(payload, (segment) => this.emit("data", segment, name));
      else this.emit("data", payload, name);
    }
    if (this.dataBatchHandler === undefined) return;
    if (framed) this.superpackets.delivered();
    if (!this.delivery.fits(payload.length)) this.flushDelivery();
    // Ring frames arrive one by one from the poller's record walk: flush after it (UDP flushes at batch end).
    if (this.delivery.push(payload, framed)) queueMicrotask(this.flushDelivery);
  }

  private readonly flushDelivery = (): void => {
    const count = this.delivery.take();
    if (count > 0 && !this.closed) this.dataBatchHandler?.(this.delivery.bytes, this.delivery.lengths, count, this.delivery.framed);
  };

  /** Queues one control message (reliable, in order). Resolves once it is handed to a path. */
  async sendControl(payload: Uint8Array): Promise<void> {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    await this.peer.sendControl(payload); // the peer link refuses an oversize payload before numbering it
  }

  /** The largest payload both paths carry: a UDP datagram (sealed or not) and a ring frame. */
  get maxPayloadBytes(): number {
    return this.peer.maxPayloadBytes;
  }

  /** TCP superpackets carried (TUN offload): sent whole or cut, delivered. */
  get superpacketCounters(): Readonly<SuperpacketCounters> {
    return this.superpackets.counters;
  }

  get counters(): LinkCounters {
    return linkCounters(this.peer.core, this.udp.counters, this.peer.udpSendErrors);
  }

  status(): LinkStatus {
    const s = this.storage;
    const storage = { report: s.report(), headSeq: s.headSeq, peerAck: s.peerAck, lagRecords: s.lagRecords, queuedBytes: s.queuedBytes, writerCounters: s.writerCounters, readerCounters: s.readerCounters, drained: s.drained() };
    return linkStatus(performance.now(), this.options, this.peer.core, storage, this.counters, this.clock.loopDelayMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clock.stop();
    this.udp.close();
    this.peer.close();
    await this.storage.close();
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.options.log?.(event, fields);
  }
}

/** The pair's one peer: its index in the UDP path's peer list. */
const PEER = 0;
