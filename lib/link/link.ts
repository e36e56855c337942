// Link: one node's end of a pair, carrying datagrams over two paths. Pipeline:
//   send: LinkCore picks paths and headers -> UDP socket (sealed when keyed) and/or StoragePath (send ring)
//   receive: UDP socket (unsealed) | StoragePath (receive ring) -> LinkCore (decode, session, path
//            heartbeat, control in order and acked, data dedupe) -> "data"/"control" events
// Every decision is in the sans-IO LinkCore (paths.ts, with control.ts and window.ts); the storage
// path heals itself (lib/link/storage-path.ts); this shell only moves bytes and time. Invariants:
// heartbeats run on both paths all the time; the application never sees a data message twice;
// control is delivered once, in order; sendControl waits for acks, never polls.
import { randomInt } from "node:crypto";
import dgram from "node:dgram";
import { EventEmitter } from "node:events";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";

import { FRAME_HEADER_BYTES } from "../format/layout.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { RingReader } from "../ring/reader.ts";
import { StoragePath, type StoragePathOptions, type StorageReport } from "./storage-path.ts";
import type { StateChange } from "../io/supervisor.ts";
import type { RingWriter } from "../ring/writer.ts";
import { encodeHeader, MAX_MESSAGE_BYTES, MessageKind, MESSAGE_HEADER_BYTES, PathId, RING_FRAME_TYPE, type MessageHeader } from "./message.ts";
import { ringKey, sharedSecret } from "./keys.ts";
import { LinkCore, type CoreCounters, type LinkOutput, type RefusedCounters, type LinkState, type LinkTimers, type Transition } from "./paths.ts";
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
  /** Tick period of the state machine (default 5 ms). */
  tickMs?: number;
  /** Called for every state transition and notable event (the CLI logs them). */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface LinkCounters extends CoreCounters, RefusedCounters {
  controlDuplicates: number;
  controlRetransmits: number;
  udpSendErrors: number;
}

export interface LinkEvents {
  /** A data payload (a view, valid only during the call). */
  data: [payload: Uint8Array, path: "primary" | "storage"];
  /** A control payload, in order, exactly once. */
  control: [payload: Uint8Array];
  transition: [Transition];
  /** A storage component (send ring, receive ring) changed state: fault, recovery, configuration fault. */
  storage: [StateChange];
}

export interface LinkStatus {
  node: number;
  peer: number;
  active: string;
  paths: Record<"primary" | "storage", { state: string; reason: string; lastHeardAgoMs: number | null; upForMs: number | null }>;
  failovers: number;
  failbacks: number;
  selfPauses: number;
  controlPending: number;
  /** The local storage components: up, recovering (stalled or retrying, with why), failed (configuration). */
  storage: StorageReport;
  ring: { headSeq: string; peerAckSeq: string | null; receiveLagRecords: string; writerQueuedBytes: number; writerCounters: RingWriter["counters"]; readerCounters: Omit<RingReader["counters"], "lost"> & { lost: string } };
  counters: LinkCounters;
  /** Event-loop delay since the link opened (ms): what a paused loop costs heartbeats and packets. */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  transitions: Transition[];
}

export class Link extends EventEmitter<LinkEvents> {
  readonly options: LinkOptions;
  readonly core: LinkCore;
  /** What only the shell sees: UDP sends the kernel refused. */
  private udpSendErrors = 0;
  /** Data datagrams (bind port). */
  private readonly socket: dgram.Socket;
  /** Heartbeats and control (bind port + 1): a data flood that overflows the data socket's buffer cannot drop them. */
  private readonly controlSocket: dgram.Socket;
  private readonly storage: StoragePath;
  private readonly scratch = new Uint8Array(MESSAGE_HEADER_BYTES + 65535);
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 1 });
  private readonly sealer: Sealer | undefined;
  private readonly opener: Opener | undefined;
  /** sendControl calls waiting for room in the control window, in call order; acks admit them (no timers). */
  private readonly controlWaiting: { payload: Uint8Array; resolve: () => void; reject: (error: Error) => void }[] = [];
  /** The core's hands: every effect it decides goes through here. */
  private readonly out: LinkOutput = {
    send: (path, header, payload) => (path === PathId.Primary ? this.sendUdp(header, payload) : this.sendRing(header, payload)),
    data: (payload, path) => this.emit("data", payload, path === PathId.Primary ? "primary" : "storage"),
    control: (payload) => this.emit("control", payload),
    peerSession: (session, restarted) => {
      this.sealer?.bindTo(session); // authenticated (sealed UDP, or a keyed ring): bind our datagrams to it
      if (restarted) this.log("peer-restarted", { session: String(session) });
    },
    controlRoom: () => this.admitControl(),
    transition: (t) => {
      this.log("transition", { ...t });
      this.emit("transition", t);
    },
    log: (event, fields) => this.log(event, fields),
  };

  private constructor(options: LinkOptions, sockets: [dgram.Socket, dgram.Socket], storage: StoragePath) {
    super();
    this.options = options;
    // Strictly higher on every start: the send ring's epoch (persisted on the volume, raised by every
    // RingWriter.open), not the wall clock, which may step back. Low bits random.
    const session = (storage.epoch << 16n) | BigInt(randomInt(0x10000));
    this.core = new LinkCore(options.timers, { nodeId: options.nodeId, peerNodeId: options.peerNodeId, session, controlRtoMs: options.controlRtoMs ?? 200 });
    [this.socket, this.controlSocket] = sockets;
    this.storage = storage;
    if (options.keys !== undefined) {
      const secret = sharedSecret(options.keys.privateKey, options.keys.peerPublicKey);
      this.sealer = new Sealer(secret, session, options.nodeId, options.peerNodeId);
      this.opener = new Opener(secret, options.peerNodeId, options.nodeId, session);
    }
  }

  /** Opens both paths: binds the UDP sockets and opens the storage path (send ring in a new epoch, receive ring from its head). */
  static async open(options: LinkOptions): Promise<Link> {
    const sockets: dgram.Socket[] = [];
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
        onFrame: (_seq, _type, _flags, bytes, offset, length) => link?.receive(bytes, offset, length, PathId.Storage),
      });
      sockets.push(await bindSocket(options.primary.bind));
      sockets.push(await bindSocket({ host: options.primary.bind.host, port: options.primary.bind.port + 1 }));
      link = new Link(options, sockets as [dgram.Socket, dgram.Socket], storage);
      link.start();
      return link;
    } catch (error) {
      for (const socket of sockets) socket.close();
      await storage?.close();
      throw error;
    }
  }

  private start(): void {
    for (const socket of [this.socket, this.controlSocket]) {
      socket.on("message", (msg, from) => this.receiveUdp(msg, from));
      socket.on("error", (error) => this.log("udp-error", { message: error.message }));
    }
    // One event per state change of a storage component (not per retry): the node logs it.
    this.storage.on("change", (change) => this.emit("storage", change));
    this.loopDelay.enable();
    const t = this.options.timers;
    const heartbeat = (path: PathId) => () => this.closed || this.core.heartbeat(path, this.out);
    this.timers.push(setInterval(heartbeat(PathId.Primary), t.primary.heartbeatMs));
    this.timers.push(setInterval(heartbeat(PathId.Storage), t.storage.heartbeatMs));
    this.timers.push(setInterval(() => this.tick(), this.options.tickMs ?? 5));
    heartbeat(PathId.Primary)();
    heartbeat(PathId.Storage)();
    this.tick();
  }

  /** Sends one data datagram, best effort (like a network). Returns false if no path took it. */
  sendData(payload: Uint8Array): boolean {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    this.checkSize(payload);
    return this.core.sendData(performance.now(), payload, this.storage.drained, this.out);
  }

  /** Queues one control message (reliable, in order). Resolves once it is handed to a path. */
  async sendControl(payload: Uint8Array): Promise<void> {
    this.checkSize(payload);
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    // Calls already waiting go first: the order of sendControl calls is the order of sequences.
    if (this.controlWaiting.length === 0 && this.core.submitControl(performance.now(), payload, this.out)) return;
    if (this.controlWaiting.length >= MAX_CONTROL_WAITING) throw new LunlinkError(ErrorCode.QueueFull, `${MAX_CONTROL_WAITING} control messages already wait for the peer's acks`);
    await new Promise<void>((resolve, reject) => this.controlWaiting.push({ payload: payload.slice(), resolve, reject }));
  }

  /** Acks made room: admit waiting control messages, in order, as far as the window goes. */
  private admitControl(): void {
    while (this.controlWaiting.length > 0 && this.core.submitControl(performance.now(), this.controlWaiting[0]!.payload, this.out)) this.controlWaiting.shift()!.resolve();
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
    const c = this.core.counters;
    return { ...c, ...this.core.refused, udpSendErrors: this.udpSendErrors, sent: { ...c.sent }, received: { ...c.received }, controlRetransmits: this.core.controlOut.retransmits, controlDuplicates: this.core.controlIn.duplicates };
  }

  status(): LinkStatus {
    const now = performance.now();
    const state = this.core.paths;
    const path = (p: LinkState["primary"]) => ({
      state: p.state,
      reason: p.reason,
      lastHeardAgoMs: Number.isFinite(p.lastHeardMs) ? Math.round(now - p.lastHeardMs) : null,
      upForMs: Number.isNaN(p.upSinceMs) ? null : Math.round(now - p.upSinceMs),
    });
    const storage = this.storage;
    return {
      node: this.options.nodeId,
      peer: this.options.peerNodeId,
      active: state.active,
      paths: { primary: path(state.primary), storage: path(state.storage) },
      failovers: state.failovers,
      failbacks: state.failbacks,
      selfPauses: state.selfPauses,
      controlPending: this.core.controlOut.pending,
      storage: storage.report(),
      ring: {
        headSeq: String(storage.headSeq),
        peerAckSeq: storage.peerAck === undefined ? null : String(storage.peerAck.seq),
        receiveLagRecords: String(storage.lagRecords),
        writerQueuedBytes: storage.queuedBytes,
        writerCounters: storage.writerCounters,
        readerCounters: { ...storage.readerCounters, lost: String(storage.readerCounters.lost) },
      },
      counters: this.counters,
      eventLoopDelayMs: { p50: this.loopDelay.percentile(50) / 1e6, p99: this.loopDelay.percentile(99) / 1e6, max: this.loopDelay.max / 1e6 },
      transitions: [...state.transitions],
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.loopDelay.disable();
    this.socket.close();
    this.controlSocket.close();
    for (const waiting of this.controlWaiting.splice(0)) waiting.reject(new LunlinkError(ErrorCode.Closed, "the link closed before the control message could be sent"));
    await this.storage.close();
  }

  private receiveUdp(msg: Buffer, from: { address: string; port: number }): void {
    if (this.closed) return;
    if (this.opener === undefined) this.core.receive(performance.now(), msg, 0, msg.length, PathId.Primary, this.out);
    else this.core.receiveSealed(performance.now(), this.opener.open(msg), `${from.address}:${from.port}`, this.out);
  }

  private receive(bytes: Uint8Array, offset: number, length: number, arrivedOn: PathId): void {
    if (!this.closed) this.core.receive(performance.now(), bytes, offset, length, arrivedOn, this.out);
  }

  private tick(): void {
    if (!this.closed) this.core.tick(performance.now(), this.out);
  }

  private sendUdp(header: MessageHeader, payload?: Uint8Array): boolean {
    let out: Buffer;
    if (this.sealer !== undefined) {
      out = this.sealer.sealParts(header, payload ?? EMPTY);
    } else {
      out = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + (payload?.length ?? 0));
      encodeHeader(out, 0, header);
      if (payload !== undefined) out.set(payload, MESSAGE_HEADER_BYTES);
    }
    const peer = this.options.primary.peer;
    const data = header.kind === MessageKind.Data;
    (data ? this.socket : this.controlSocket).send(out, data ? peer.port : peer.port + 1, peer.host, (error) => {
      if (error) this.udpSendErrors++;
    });
    return true;
  }

  /** Appends a copy to the send ring ("down" while the storage path recovers: not taken). */
  private sendRing(header: MessageHeader, payload?: Uint8Array): boolean {
    const length = MESSAGE_HEADER_BYTES + (payload?.length ?? 0);
    encodeHeader(this.scratch, 0, header);
    if (payload !== undefined) this.scratch.set(payload, MESSAGE_HEADER_BYTES);
    return this.storage.append(RING_FRAME_TYPE[header.kind], this.scratch.subarray(0, length)) === "queued";
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.options.log?.(event, fields);
  }
}

const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
/** sendControl calls that may wait for room in the control window (beyond: ERR_LUNLINK_QUEUE_FULL). */
const MAX_CONTROL_WAITING = 4096;
const EMPTY = new Uint8Array(0);

function bindSocket(bind: Endpoint): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: "udp4", reuseAddr: false });
    const onError = (error: NodeJS.ErrnoException) => {
      socket.close();
      reject(new LunlinkError(ErrorCode.System, `bind UDP ${bind.host}:${bind.port}: ${error.message}`, { ...(error.errno === undefined ? {} : { errno: Math.abs(error.errno) }), syscall: "bind", path: `${bind.host}:${bind.port}`, cause: error }));
    };
    socket.once("error", onError);
    socket.bind(bind.port, bind.host, () => {
      socket.off("error", onError);
      // Bursts (a TCP window through the TUN) overflow the default ~208 KiB buffer while the event
      // loop is busy, and every overflow is a TCP loss: ask for SOCKET_BUFFER_BYTES (the kernel caps
      // it at net.core.rmem_max / wmem_max).
      for (const set of [() => socket.setRecvBufferSize(SOCKET_BUFFER_BYTES), () => socket.setSendBufferSize(SOCKET_BUFFER_BYTES)]) {
        try {
          set();
        } catch {
          // Above the system maximum: keep what the kernel gave.
        }
      }
      resolve(socket);
    });
  });
}
