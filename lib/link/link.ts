// Link: one node's end of a pair, carrying datagrams over two paths of one shape (UdpPath, StoragePath).
// Pipeline, batches kept whole at every stage:
//   send: sendBatch (a TUN read batch) -> LinkCore picks paths and headers per packet -> UdpPath batch
//         (encoded or sealed in place) flushed in one sendmmsg | StoragePath (frames into the ring
//         writer's open record: one record per batch)
//   receive: UdpPath recvmmsg batch (unsealed into one reused buffer) | StoragePath (receive ring) ->
//            LinkCore (decode, session, path heartbeat, control in order and acked, data dedupe and
//            failback order) -> "data"/"control" events, and data batches (onDataBatch: one call per
//            receive batch, for TunDevice.writeBatch)
// Every decision is in the sans-IO LinkCore (paths.ts, with control.ts and window.ts); delivery
// batches, waiting control calls and the status are pure too (delivery-batch.ts, control-waiting.ts,
// link-status.ts); the storage path heals itself (lib/link/storage-path.ts); this shell only moves
// bytes and time. Invariants:
// heartbeats run on both paths all the time; the application never sees a data message twice;
// control is delivered once, in order; sendControl waits for acks, never polls.
import { randomInt } from "node:crypto";
import { EventEmitter } from "node:events";
import { createHistogram, performance } from "node:perf_hooks";

import { DEFAULT_LINK_TICK_MS } from "../defaults.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import { ControlWaiting, MAX_CONTROL_WAITING } from "./control-waiting.ts";
import { DeliveryBatch } from "./delivery-batch.ts";
import { linkCounters, linkStatus, type LinkCounters, type LinkStatus } from "./link-status.ts";
import { StoragePath, type StoragePathOptions } from "./storage-path.ts";
import type { StateChange } from "../io/supervisor.ts";
import { encodeHeader, MAX_MESSAGE_BYTES, MESSAGE_HEADER_BYTES, PathId, RING_FRAME_TYPE, type MessageHeader } from "./message.ts";
import { endpointText, UDP_SEND_BATCH_BYTES, UdpPath } from "./udp-path.ts";
import { ringKey, sharedSecret } from "./keys.ts";
import { LinkClock, LinkCore, type LinkOutput, type LinkTimers, type Transition } from "./paths.ts";
import { Opener, SEAL_OVERHEAD_BYTES, Sealer } from "./seal.ts";

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
  storage: Omit<StoragePathOptions, "nodeId" | "peerNodeId" | "auth" | "onFrame">;
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

/** Receives `count` data payloads back to back in `payloads` (payload i is lengths[i] bytes); valid during the call. */
export type DataBatchHandler = (payloads: Uint8Array, lengths: Uint32Array, count: number) => void;

export class Link extends EventEmitter<LinkEvents> {
  readonly options: LinkOptions;
  readonly core: LinkCore;
  /** What only the shell sees: UDP sends the kernel refused. */
  private udpSendErrors = 0;
  /** The primary path: data on the bind port, heartbeats and control on port + 1. */
  private readonly udp: UdpPath;
  private readonly storage: StoragePath;
  /** Inside sendBatch: UDP datagrams collect in the path's batch, flushed once at the end. */
  private sending = false;
  /** Unsealed datagrams land here (reused: no allocation per datagram). */
  private readonly openScratch = Buffer.allocUnsafe(MAX_MESSAGE_BYTES);
  /** Data delivered since the last flush, for onDataBatch. */
  private readonly delivery = new DeliveryBatch();
  private dataBatchHandler: DataBatchHandler | undefined;
  private readonly scratch = new Uint8Array(MESSAGE_HEADER_BYTES + 65535);
  /** The one timer of the link: the next turn of its clock (heartbeats and tick). */
  private clockTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /**
   * Event-loop delay, ns: how late each clock turn ran. The clock's own timer is the sample, so
   * measuring the loop costs no wake-up of its own (monitorEventLoopDelay's timer was 20 a second).
   */
  private readonly loopDelay = createHistogram();
  private readonly sealer: Sealer | undefined;
  private readonly opener: Opener | undefined;
  /** sendControl calls waiting for room in the control window, in call order; acks admit them (no timers). */
  private readonly controlWaiting = new ControlWaiting();
  /** The core's hands: every effect it decides goes through here. */
  private readonly out: LinkOutput = {
    send: (path, header, payload) => (path === PathId.Primary ? this.sendUdp(header, payload) : this.sendRing(header, payload)),
    data: (payload, path) => this.deliver(payload, path),
    control: (payload) => this.emit("control", payload),
    peerSession: (session, restarted) => {
      this.sealer?.bindTo(session); // authenticated (sealed UDP, or a keyed ring): bind our datagrams to it
      if (restarted) this.log("peer-restarted", { session: String(session) });
    },
    controlRoom: () => this.controlWaiting.admit((payload) => this.core.submitControl(performance.now(), payload, this.out)),
    transition: (t) => {
      this.log("transition", { ...t });
      this.emit("transition", t);
    },
    log: (event, fields) => this.log(event, fields),
  };

  private constructor(options: LinkOptions, udp: UdpPath, storage: StoragePath) {
    super();
    this.options = options;
    // Strictly higher on every start: the send ring's epoch (persisted on the volume, raised by every
    // RingWriter.open), not the wall clock, which may step back. Low bits random.
    const session = (storage.epoch << 16n) | BigInt(randomInt(0x10000));
    this.core = new LinkCore(options.timers, { nodeId: options.nodeId, peerNodeId: options.peerNodeId, session, controlRtoMs: options.controlRtoMs ?? 200 });
    this.udp = udp;
    this.storage = storage;
    if (options.keys !== undefined) {
      const secret = sharedSecret(options.keys.privateKey, options.keys.peerPublicKey);
      this.sealer = new Sealer(secret, session, options.nodeId, options.peerNodeId);
      this.opener = new Opener(secret, options.peerNodeId, options.nodeId, session);
    }
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
        nodeId: options.nodeId,
        peerNodeId: options.peerNodeId,
        ...(secret === undefined
          ? {}
          : { auth: (pairUuid: string) => ({ send: { key: ringKey(secret, pairUuid, options.nodeId, options.peerNodeId) }, receive: { key: ringKey(secret, pairUuid, options.peerNodeId, options.nodeId) } }) }),
        onFrame: (_peer, _type, bytes, offset, length) => link?.receive(bytes, offset, length, PathId.Storage),
      });
      udp = UdpPath.open({
        bind: options.primary.bind,
        peers: [options.primary.peer],
        sources: "any",
        batchBytes: UDP_SEND_BATCH_BYTES,
        onDatagram: (_peer, bytes, offset, length, address, port) => link?.receiveUdp(bytes, offset, length, address, port),
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
    const now = performance.now();
    this.turn(new LinkClock(this.options.timers, this.options.tickMs ?? DEFAULT_LINK_TICK_MS, now), now);
  }

  /** One turn of the clock: the heartbeats due, a tick, and the timer for the next turn (scheduled for `dueMs`). */
  private turn(clock: LinkClock, dueMs: number): void {
    if (this.closed) return;
    const now = performance.now();
    this.loopDelay.record(Math.max(1, Math.round((now - dueMs) * 1e6)));
    const turn = clock.turn(now);
    if (turn.primary) this.core.heartbeat(PathId.Primary, this.out);
    if (turn.storage) this.core.heartbeat(PathId.Storage, this.out);
    this.core.tick(now, this.out);
    this.clockTimer = setTimeout(() => this.turn(clock, turn.nextMs), Math.max(1, Math.round(turn.nextMs - now)));
  }

  /** Sends one data datagram, best effort (like a network). Returns false if no path took it. */
  sendData(payload: Uint8Array): boolean {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    this.checkSize(payload);
    return this.core.sendData(performance.now(), payload, this.storage.drained(), this.out);
  }

  /**
   * Sends `count` data payloads stored back to back in `payloads` (payload i is lengths[i] bytes), e.g.
   * one TUN read batch: one sendmmsg for the UDP copies, one ring record for the storage copies.
   * Returns how many some path took. A payload too large for the link is counted as not taken.
   */
  sendBatch(payloads: Uint8Array, lengths: Uint32Array, count: number): number {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    const now = performance.now();
    const drained = this.storage.drained();
    const max = this.maxPayloadBytes;
    let taken = 0;
    let offset = 0;
    this.sending = true;
    try {
      for (let i = 0; i < count; i++) {
        const length = lengths[i]!;
        if (length <= max && this.core.sendData(now, payloads.subarray(offset, offset + length), drained, this.out)) taken++;
        offset += length;
      }
    } finally {
      this.sending = false;
      this.udpSendErrors += this.udp.flush();
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

  private deliver(payload: Uint8Array, path: PathId): void {
    if (this.listenerCount("data") > 0) this.emit("data", payload, path === PathId.Primary ? "primary" : "storage");
    if (this.dataBatchHandler === undefined) return;
    if (!this.delivery.fits(payload.length)) this.flushDelivery();
    // Ring frames arrive one by one from the poller's record walk: flush after it (UDP flushes at batch end).
    if (this.delivery.push(payload)) queueMicrotask(this.flushDelivery);
  }

  private readonly flushDelivery = (): void => {
    const count = this.delivery.take();
    if (count > 0 && !this.closed) this.dataBatchHandler?.(this.delivery.bytes, this.delivery.lengths, count);
  };

  /** Queues one control message (reliable, in order). Resolves once it is handed to a path. */
  async sendControl(payload: Uint8Array): Promise<void> {
    this.checkSize(payload);
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    // Calls already waiting go first: the order of sendControl calls is the order of sequences.
    if (this.controlWaiting.length === 0 && this.core.submitControl(performance.now(), payload, this.out)) return;
    await new Promise<void>((resolve, reject) => {
      if (!this.controlWaiting.add(payload, resolve, reject)) throw new LunlinkError(ErrorCode.QueueFull, `${MAX_CONTROL_WAITING} control messages already wait for the peer's acks`);
    });
  }

  /** The largest payload both paths carry: a UDP datagram (sealed or not) and a ring frame. */
  get maxPayloadBytes(): number {
    return MAX_MESSAGE_BYTES - MESSAGE_HEADER_BYTES - (this.sealer === undefined ? 0 : SEAL_OVERHEAD_BYTES);
  }

  private checkSize(payload: Uint8Array): void {
    if (payload.length > this.maxPayloadBytes) {
      throw new LunlinkError(ErrorCode.FrameTooLarge, `a payload of ${payload.length} bytes does not fit a link message (at most ${this.maxPayloadBytes})`);
    }
  }

  get counters(): LinkCounters {
    return linkCounters(this.core, this.udp.counters, this.udpSendErrors);
  }

  status(): LinkStatus {
    const s = this.storage;
    const storage = { report: s.report(), headSeq: s.headSeq, peerAck: s.peerAck, lagRecords: s.lagRecords, queuedBytes: s.queuedBytes, writerCounters: s.writerCounters, readerCounters: s.readerCounters };
    const loopDelayMs = { p50: this.loopDelay.percentile(50) / 1e6, p99: this.loopDelay.percentile(99) / 1e6, max: this.loopDelay.max / 1e6 };
    return linkStatus(performance.now(), this.options, this.core, storage, this.counters, loopDelayMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.clockTimer);
    this.udp.close();
    this.controlWaiting.rejectAll(new LunlinkError(ErrorCode.Closed, "the link closed before the control message could be sent"));
    await this.storage.close();
  }

  private receiveUdp(bytes: Uint8Array, offset: number, length: number, address: number, port: number): void {
    if (this.closed) return;
    if (this.opener === undefined) this.core.receive(performance.now(), bytes, offset, length, PathId.Primary, this.out);
    else {
      const opened = this.opener.open(bytes.subarray(offset, offset + length), this.openScratch);
      this.core.receiveSealed(performance.now(), opened, opened.ok ? "" : endpointText(address, port), this.out);
    }
  }

  private receive(bytes: Uint8Array, offset: number, length: number, arrivedOn: PathId): void {
    if (!this.closed) this.core.receive(performance.now(), bytes, offset, length, arrivedOn, this.out);
  }

  /** Encodes (or seals) the message straight into the UDP path's batch; sent at the batch's flush. */
  private sendUdp(header: MessageHeader, payload?: Uint8Array): boolean {
    this.udp.writeMessage(PEER, header, payload, this.sealer);
    // Heartbeats, control and acks go at once; data inside sendBatch waits for the batch's flush.
    if (!this.sending) this.udpSendErrors += this.udp.flush();
    return true;
  }

  /** Appends a copy to the send ring ("down" while the storage path recovers: not taken). */
  private sendRing(header: MessageHeader, payload?: Uint8Array): boolean {
    const length = MESSAGE_HEADER_BYTES + (payload?.length ?? 0);
    encodeHeader(this.scratch, 0, header);
    if (payload !== undefined) this.scratch.set(payload, MESSAGE_HEADER_BYTES);
    return this.storage.append(PEER, RING_FRAME_TYPE[header.kind], this.scratch.subarray(0, length)) === "queued";
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.options.log?.(event, fields);
  }
}

/** The pair's one peer: its index in the UDP path's peer list. */
const PEER = 0;
