// Link: one node's end of a pair, carrying datagrams over two paths. Pipeline:
//   send: classify (heartbeat > control > data) -> header -> UDP socket and/or StoragePath (send ring)
//   receive: UDP socket | StoragePath (receive ring) -> decode -> node/session check -> path heartbeat
//            -> control (in order, acked) | data (dedupe window) -> "data"/"control" events
// Decisions live in the sans-IO parts (paths.ts, control.ts, window.ts); the storage path heals itself
// (lib/ring/storage-path.ts); this file only moves bytes and time into them. Invariants: heartbeats run on both paths all the time; the application never
// sees a data message twice (dedupe by link sequence); control is delivered once, in order.
import { randomInt } from "node:crypto";
import dgram from "node:dgram";
import { EventEmitter } from "node:events";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";

import { FrameType, FRAME_HEADER_BYTES } from "../format/layout.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { RingReader } from "../ring/reader.ts";
import { StoragePath, type StorageReport } from "../ring/storage-path.ts";
import type { RecoveryOptions, StateChange } from "../ring/supervisor.ts";
import type { RingWriter } from "../ring/writer.ts";
import { ControlReceiver, ControlSender } from "./control.ts";
import { decodeHeader, encodeHeader, MAX_MESSAGE_BYTES, MessageKind, MESSAGE_HEADER_BYTES, PathId, type MessageHeader } from "./message.ts";
import { ringKey, sharedSecret } from "./keys.ts";
import { LinkState, type LinkTimers, type Transition } from "./paths.ts";
import { Opener, SEAL_OVERHEAD_BYTES, Sealer } from "./seal.ts";
import { SequenceWindow } from "./window.ts";

export interface Endpoint {
  host: string;
  port: number;
}

export interface LinkOptions {
  nodeId: number;
  peerNodeId: number;
  /** UDP: data on `port`, heartbeats and control on `port + 1` (both ends). */
  primary: { bind: Endpoint; peer: Endpoint };
  storage: {
    /** Our send volume (we own its ring). */
    send: string;
    /** The peer's ring as the mirror delivers it to us. */
    receive: string;
    /** O_DSYNC on the send volume (default true): a record is durable before the mirror copies it. */
    dsync?: boolean;
    /** Take the send volume over from a writer that did not close it (default true: it is ours by config). */
    takeOver?: boolean;
    /** Writer: seal a record after this long (default 0: write at once when idle, batch while a write is in flight). */
    maxDelayMs?: number;
    /** Poller: longest sleep between reads while idle (default 2 ms). */
    pollMaxMs?: number;
    ioTimeoutMs?: number;
    /** Backoff between reopen attempts after a storage fault (see README, "Storage faults"). */
    recovery?: RecoveryOptions;
  };
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

export interface LinkCounters {
  sent: { primary: number; storage: number };
  received: { primary: number; storage: number };
  dataDelivered: number;
  dataDuplicates: number;
  dataTooOld: number;
  dataDroppedStorage: number;
  controlDelivered: number;
  controlDuplicates: number;
  controlRetransmits: number;
  udpSendErrors: number;
  malformed: number;
  strays: number;
  staleSession: number;
  peerRestarts: number;
  /** UDP datagrams refused: tag did not verify (forged, corrupted, wrong key). */
  authFailures: number;
  /** UDP datagrams refused: authentic but already seen (replayed) or from an older session. */
  replays: number;
  /** UDP datagrams refused: not sealed although keys are configured (downgrade attempt). */
  downgrades: number;
  /** Sealed UDP data/control dropped because it was not yet bound to our session (only heartbeats are taken unbound). */
  unbound: number;
}

export interface LinkEvents {
  /** A data payload (a view, valid only during the call). */
  data: [payload: Uint8Array, path: "primary" | "storage"];
  /** A control payload, in order, exactly once. */
  control: [payload: Uint8Array];
  transition: [Transition];
  /** A storage component (send ring, receive ring) changed state: fault, recovery, configuration fault. */
  storage: [StateChange];
  error: [Error];
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

const RING_FRAME_TYPE: Record<MessageKind, FrameType> = {
  [MessageKind.Heartbeat]: FrameType.Heartbeat,
  [MessageKind.Control]: FrameType.Control,
  [MessageKind.ControlAck]: FrameType.Control,
  [MessageKind.Data]: FrameType.Data,
};

export class Link extends EventEmitter<LinkEvents> {
  readonly options: LinkOptions;
  readonly state: LinkState;
  /** Everything counted here; control retransmits and duplicates are counted by the control channel. */
  private readonly tally: Omit<LinkCounters, "controlRetransmits" | "controlDuplicates"> = {
    sent: { primary: 0, storage: 0 },
    received: { primary: 0, storage: 0 },
    dataDelivered: 0,
    dataDuplicates: 0,
    dataTooOld: 0,
    dataDroppedStorage: 0,
    controlDelivered: 0,
    udpSendErrors: 0,
    malformed: 0,
    strays: 0,
    staleSession: 0,
    peerRestarts: 0,
    authFailures: 0,
    replays: 0,
    downgrades: 0,
    unbound: 0,
  };
  /** This run's session: the send ring's epoch in the high bits, so a restarted node's is higher. */
  readonly session: bigint;
  private peerSession = 0n;
  /** Data datagrams (bind port). */
  private readonly socket: dgram.Socket;
  /** Heartbeats and control (bind port + 1): a data flood that overflows the data socket's buffer cannot drop them. */
  private readonly controlSocket: dgram.Socket;
  private storage!: StoragePath;
  private readonly window = new SequenceWindow();
  private readonly controlOut = new ControlSender();
  private readonly controlIn = new ControlReceiver();
  private readonly heartbeatSeq = [0n, 0n];
  private dataSeq = 0n;
  private readonly scratch = new Uint8Array(MESSAGE_HEADER_BYTES + 65535);
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  private readonly controlRtoMs: number;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 1 });
  private readonly sealer: Sealer | undefined;
  private readonly opener: Opener | undefined;
  private readonly refusalLoggedMs = new Map<string, number>();
  /** sendControl calls waiting for room in the control window, in call order; acks admit them (no timers). */
  private readonly controlWaiting: { payload: Uint8Array; resolve: () => void; reject: (error: Error) => void }[] = [];

  private constructor(options: LinkOptions, sockets: [dgram.Socket, dgram.Socket], epoch: bigint) {
    super();
    this.options = options;
    this.state = new LinkState(options.timers);
    // Strictly higher on every start: the send ring's epoch (persisted on the volume, raised by every
    // RingWriter.open), not the wall clock, which may step back. Low bits random.
    this.session = (epoch << 16n) | BigInt(randomInt(0x10000));
    [this.socket, this.controlSocket] = sockets;
    this.controlRtoMs = options.controlRtoMs ?? 200;
    if (options.keys !== undefined) {
      const secret = sharedSecret(options.keys.privateKey, options.keys.peerPublicKey);
      this.sealer = new Sealer(secret, this.session, options.nodeId, options.peerNodeId);
      this.opener = new Opener(secret, options.peerNodeId, options.nodeId, this.session);
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
      link = new Link(options, sockets as [dgram.Socket, dgram.Socket], storage.epoch);
      link.storage = storage;
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
    this.timers.push(setInterval(() => this.heartbeat(PathId.Primary), t.primary.heartbeatMs));
    this.timers.push(setInterval(() => this.heartbeat(PathId.Storage), t.storage.heartbeatMs));
    this.timers.push(setInterval(() => this.tick(), this.options.tickMs ?? 5));
    this.heartbeat(PathId.Primary);
    this.heartbeat(PathId.Storage);
    this.tick();
  }

  /** Sends one data datagram, best effort (like a network). Returns false if no path took it. */
  sendData(payload: Uint8Array): boolean {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    this.checkSize(payload);
    const paths = this.state.dataPaths(performance.now(), this.storage.drained);
    const header = this.header(MessageKind.Data, ++this.dataSeq, 0n);
    let taken = false;
    if (paths.primary) taken = this.sendUdp(header, payload) || taken;
    if (paths.storage) taken = this.sendRing(header, payload) || taken;
    return taken;
  }

  /** Queues one control message (reliable, in order). Resolves once it is handed to a path. */
  async sendControl(payload: Uint8Array): Promise<void> {
    this.checkSize(payload);
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    // Calls already waiting go first: the order of sendControl calls is the order of sequences.
    const entry = this.controlWaiting.length === 0 ? this.controlOut.submit(payload, performance.now()) : undefined;
    if (entry !== undefined) {
      this.transmitControl(entry.seq, entry.payload);
      return;
    }
    if (this.controlWaiting.length >= MAX_CONTROL_WAITING) throw new LunlinkError(ErrorCode.QueueFull, `${MAX_CONTROL_WAITING} control messages already wait for the peer's acks`);
    await new Promise<void>((resolve, reject) => this.controlWaiting.push({ payload: payload.slice(), resolve, reject }));
  }

  /** The peer acked control messages: admit waiting ones, in order, as far as the window has room. */
  private controlAcked(ack: bigint): void {
    if (this.controlOut.acked(ack) === 0) return;
    while (this.controlWaiting.length > 0) {
      const entry = this.controlOut.submit(this.controlWaiting[0]!.payload, performance.now());
      if (entry === undefined) return;
      this.controlWaiting.shift()!.resolve();
      this.transmitControl(entry.seq, entry.payload);
    }
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
    return { ...this.tally, sent: { ...this.tally.sent }, received: { ...this.tally.received }, controlRetransmits: this.controlOut.retransmits, controlDuplicates: this.controlIn.duplicates };
  }

  status(): LinkStatus {
    const now = performance.now();
    const path = (p: LinkState["primary"]) => ({
      state: p.state,
      reason: p.reason,
      lastHeardAgoMs: Number.isFinite(p.lastHeardMs) ? Math.round(now - p.lastHeardMs) : null,
      upForMs: Number.isNaN(p.upSinceMs) ? null : Math.round(now - p.upSinceMs),
    });
    return {
      node: this.options.nodeId,
      peer: this.options.peerNodeId,
      active: this.state.active,
      paths: { primary: path(this.state.primary), storage: path(this.state.storage) },
      failovers: this.state.failovers,
      failbacks: this.state.failbacks,
      selfPauses: this.state.selfPauses,
      controlPending: this.controlOut.pending,
      storage: this.storage.report(),
      ring: {
        headSeq: String(this.storage.headSeq),
        peerAckSeq: this.storage.peerAck === undefined ? null : String(this.storage.peerAck.seq),
        receiveLagRecords: String(this.storage.lagRecords),
        writerQueuedBytes: this.storage.queuedBytes,
        writerCounters: this.storage.writerCounters,
        readerCounters: { ...this.storage.readerCounters, lost: String(this.storage.readerCounters.lost) },
      },
      counters: this.counters,
      eventLoopDelayMs: { p50: this.loopDelay.percentile(50) / 1e6, p99: this.loopDelay.percentile(99) / 1e6, max: this.loopDelay.max / 1e6 },
      transitions: [...this.state.transitions],
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

  // --- receive -------------------------------------------------------------------------------

  private receiveUdp(msg: Buffer, from: { address: string; port: number }): void {
    if (this.opener === undefined) {
      this.receive(msg, 0, msg.length, PathId.Primary);
      return;
    }
    const opened = this.opener.open(msg);
    if (opened.ok) {
      // Unbound (sealed before the peer knew our session): liveness only. Data and control must be
      // bound to this run's session, so nothing captured before a restart of ours is taken again.
      if (!opened.bound && opened.message[1] !== MessageKind.Heartbeat) {
        this.tally.unbound++;
        return;
      }
      this.receive(opened.message, 0, opened.message.length, PathId.Primary);
      return;
    }
    const reason = opened.reason === "version" ? "downgrades" : opened.reason === "replay" ? "replays" : "authFailures";
    this.tally[reason]++;
    const now = performance.now();
    if (now - (this.refusalLoggedMs.get(reason) ?? Number.NEGATIVE_INFINITY) >= 1000) {
      this.refusalLoggedMs.set(reason, now);
      const why = { downgrades: "not sealed although keys are configured (downgrade)", replays: "replayed or from an older session", authFailures: "authentication failed (forged, corrupted or another key)" }[reason];
      this.log("udp-refused", { from: `${from.address}:${from.port}`, reason: why, total: this.tally[reason] });
    }
  }

  private receive(bytes: Uint8Array, offset: number, length: number, arrivedOn: PathId): void {
    if (this.closed) return;
    const decoded = decodeHeader(bytes, offset, length);
    if (!decoded.ok) {
      this.tally.malformed++;
      return;
    }
    const h = decoded.header;
    if (h.node !== this.options.peerNodeId) {
      this.tally.strays++;
      return;
    }
    if (h.session !== this.peerSession) {
      if (h.session < this.peerSession) {
        this.tally.staleSession++;
        return;
      }
      if (this.peerSession !== 0n) {
        this.tally.peerRestarts++;
        this.log("peer-restarted", { session: String(h.session) });
      }
      this.peerSession = h.session;
      this.sealer?.bindTo(h.session); // authenticated (sealed UDP, or a keyed ring): bind our datagrams to it
      this.window.reset();
      this.controlIn.reset();
      // The restarted peer expects control seq 1 again: renumber what it never acked.
      this.controlOut.restart();
      this.state.primary.resetPeer();
      this.state.storage.resetPeer();
    }
    const now = performance.now();
    const path = this.state.path(arrivedOn);
    if (arrivedOn === PathId.Primary) this.tally.received.primary++;
    else this.tally.received.storage++;
    path.heard(now);
    const payload = bytes.subarray(decoded.payloadOffset, offset + length);
    switch (h.kind) {
      case MessageKind.Heartbeat:
        path.heartbeat(now, h.seq, h.ack);
        return;
      case MessageKind.ControlAck:
        this.controlAcked(h.ack);
        return;
      case MessageKind.Control: {
        this.controlAcked(h.ack);
        this.controlIn.receive(h.seq, payload, (p) => {
          this.tally.controlDelivered++;
          this.emit("control", p);
        });
        // Ack on the path it came by (it works) right away: the sender's window moves on.
        const ack = this.header(MessageKind.ControlAck, 0n, this.controlIn.delivered, arrivedOn);
        if (arrivedOn === PathId.Primary) this.sendUdp(ack);
        else this.sendRing(ack);
        return;
      }
      case MessageKind.Data: {
        const verdict = this.window.check(h.seq);
        if (verdict === "duplicate") this.tally.dataDuplicates++;
        else if (verdict === "old") this.tally.dataTooOld++;
        else {
          this.tally.dataDelivered++;
          this.emit("data", payload, arrivedOn === PathId.Primary ? "primary" : "storage");
        }
        return;
      }
    }
  }

  // --- send ----------------------------------------------------------------------------------

  private header(kind: MessageKind, seq: bigint, ack: bigint, path: PathId = PathId.Primary): MessageHeader {
    return { kind, path, node: this.options.nodeId, session: this.session, seq, ack };
  }

  private heartbeat(id: PathId): void {
    if (this.closed) return;
    const seq = ++this.heartbeatSeq[id]!;
    const header = this.header(MessageKind.Heartbeat, seq, this.state.path(id).highestHeard, id);
    if (id === PathId.Primary) this.sendUdp(header);
    else this.sendRing(header);
  }

  private tick(): void {
    if (this.closed) return;
    const now = performance.now();
    for (const t of this.state.tick(now)) {
      this.log("transition", { ...t });
      this.emit("transition", t);
    }
    for (const entry of this.controlOut.due(now, this.controlRtoMs)) this.transmitControl(entry.seq, entry.payload);
  }

  private transmitControl(seq: bigint, payload: Uint8Array): void {
    const header = this.header(MessageKind.Control, seq, this.controlIn.delivered);
    const active = this.state.active;
    if (active !== "storage") this.sendUdp(header, payload);
    if (active !== "primary") this.sendRing(header, payload);
  }

  private sendUdp(header: MessageHeader, payload?: Uint8Array): boolean {
    header.path = PathId.Primary;
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
      if (error) this.tally.udpSendErrors++;
    });
    this.tally.sent.primary++;
    return true;
  }

  private sendRing(header: MessageHeader, payload?: Uint8Array): boolean {
    header.path = PathId.Storage;
    const length = MESSAGE_HEADER_BYTES + (payload?.length ?? 0);
    encodeHeader(this.scratch, 0, header);
    if (payload !== undefined) this.scratch.set(payload, MESSAGE_HEADER_BYTES);
    // append copies the frame (into the record buffer or its class queue), so scratch is reusable;
    // while the storage path recovers it answers "down" and nothing is queued.
    const result = this.storage.append(RING_FRAME_TYPE[header.kind], this.scratch.subarray(0, length));
    if (result !== "queued") {
      if (header.kind === MessageKind.Data) this.tally.dataDroppedStorage++;
      return false;
    }
    this.tally.sent.storage++;
    return true;
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.options.log?.(event, fields);
  }
}

/** Largest data payload the storage path carries in one frame at the writer's defaults. */
export const RING_FRAME_OVERHEAD_BYTES = FRAME_HEADER_BYTES + MESSAGE_HEADER_BYTES;

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
