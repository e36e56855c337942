// PeerLink: this node's link to one peer, the one shell over the sans-IO LinkCore (sessions, path
// states, failover and failback, control in order and acked, data dedupe and failback order) that a
// pair's Link (one PeerLink over its own sockets and rings) and a cluster node (one per peer over the
// node's shared ones) both use. It only moves bytes: UDP messages into this peer's batch of the shared
// UdpPath (sealed with the pair's X25519 secret when keys are set), ring frames onto the PeerStorage
// addressed to this peer; time comes from the owner (heartbeat, tick). Invariants: every effect of the
// core goes through `out`; a closed peer link sends and delivers nothing; sendControl calls are
// sequenced in call order, waiting for acks (never polling) while the control window is full.
// A broadcast's storage copy goes to the owner's broadcastRing (a cluster node writes one ring frame
// with destination 0 for all its peers); without one, it is a frame addressed to this peer.
import { randomInt } from "node:crypto";
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import { ErrorCode, LunlinkError } from "../errors.ts";
import type { FrameType } from "../format/layout.ts";
import { ControlWaiting, MAX_CONTROL_WAITING } from "./control-waiting.ts";
import { sharedSecret } from "./keys.ts";
import { encodeHeader, MAX_MESSAGE_BYTES, MESSAGE_HEADER_BYTES, MessageKind, PathId, RING_FRAME_TYPE, type MessageHeader } from "./message.ts";
import { LinkCore, type LinkOutput, type LinkTimers, type Transition } from "./paths.ts";
import type { AppendResult, PeerStorage } from "./peer-storage.ts";
import { Opener, SEAL_OVERHEAD_BYTES, Sealer } from "./seal.ts";
import { endpointText, type UdpPath } from "./udp-path.ts";

export interface PeerLinkOptions {
  nodeId: number;
  peerNodeId: number;
  /** This peer's index in the UDP path's and the storage's peer lists. */
  index: number;
  /** This run's session (newSession), the same for every peer link of the node. */
  session: bigint;
  timers: LinkTimers;
  controlRtoMs: number;
  /** Keys (base64 X25519, see keys.ts): when set, every UDP datagram is sealed and unsealed ones are refused. */
  keys?: { privateKey: string; peerPublicKey: string };
  /** A data payload from this peer (a view, valid during the call), once, in failback order. */
  /** framed: the message header marked the payload a vnet-framed TCP superpacket (message.ts FRAMED_KIND_BIT). */
  deliver: (payload: Uint8Array, path: PathId, framed: boolean) => void;
  /**
   * The storage copy of broadcast `seq` (an encoded message, valid during the call): the owner writes
   * one ring frame for every peer link that asks with the same seq and answers them all alike.
   */
  broadcastRing?: (seq: bigint, type: FrameType, frame: Uint8Array) => AppendResult;
  /** Every state transition and notable event, with this link's fields as given. */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface PeerLinkEvents {
  transition: [Transition];
  /** A control payload, in order, exactly once. */
  control: [payload: Uint8Array];
  /** The storage follower of this peer's ring may (true) or may no longer (false) sleep at its standby pace (LinkCore.storageStandby). */
  standby: [on: boolean];
}

/** Throws ERR_LUNLINK_FRAME_TOO_LARGE for a payload no link message carries (the sendControl and Link.sendData refusal). */
export function checkPayloadSize(payload: Uint8Array, maxPayloadBytes: number): void {
  if (payload.length > maxPayloadBytes) {
    throw new LunlinkError(ErrorCode.FrameTooLarge, `a payload of ${payload.length} bytes does not fit a link message (at most ${maxPayloadBytes})`);
  }
}

/** A run's session: strictly higher on every start (the send ring's epoch, persisted and raised by every writer open, not the wall clock), low bits random. */
export function newSession(storage: Pick<PeerStorage, "epoch">): bigint {
  return (storage.epoch << 16n) | BigInt(randomInt(0x10000));
}

export class PeerLink extends EventEmitter<PeerLinkEvents> {
  readonly options: PeerLinkOptions;
  readonly core: LinkCore;
  /** Set by the owner while it sends a batch: UDP messages wait in the batch until flushUdp. */
  batching = false;
  private readonly udp: UdpPath;
  private readonly storage: PeerStorage;
  private readonly sealer: Sealer | undefined;
  private readonly opener: Opener | undefined;
  /** Unsealed datagrams land here (reused: no allocation per datagram). */
  private readonly openScratch = Buffer.allocUnsafe(MAX_MESSAGE_BYTES);
  private readonly scratch = new Uint8Array(MESSAGE_HEADER_BYTES + 65535);
  /** UDP sends the kernel refused (what only the shell sees). */
  private udpSendErrorCount = 0;
  /** Ring appends refused (writer down, queue full): the storage copy of a message was not taken. */
  private ringNotTakenCount = 0;
  /** sendControl calls waiting for room in the control window, in call order; acks admit them (no timers). */
  private readonly controlWaiting = new ControlWaiting();
  private closed = false;
  /** The last standby verdict emitted (a link starts with its primary down: off). */
  private standbyOn = false;
  /** The core's hands: every effect it decides goes through here. */
  private readonly out: LinkOutput = {
    send: (path, header, payload) => (path === PathId.Primary ? this.sendUdp(header, payload) : this.sendRing(header, payload)),
    data: (payload, path, framed) => this.options.deliver(payload, path, framed),
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

  constructor(options: PeerLinkOptions, udp: UdpPath, storage: PeerStorage) {
    super();
    this.options = options;
    this.udp = udp;
    this.storage = storage;
    this.core = new LinkCore(options.timers, { nodeId: options.nodeId, peerNodeId: options.peerNodeId, session: options.session, controlRtoMs: options.controlRtoMs });
    if (options.keys !== undefined) {
      const secret = sharedSecret(options.keys.privateKey, options.keys.peerPublicKey);
      this.sealer = new Sealer(secret, options.session, options.nodeId, options.peerNodeId);
      this.opener = new Opener(secret, options.peerNodeId, options.nodeId, options.session);
    }
  }

  get node(): number {
    return this.options.peerNodeId;
  }

  /** The largest data payload both paths carry to this peer: a UDP datagram (sealed or not) and a ring frame. */
  get maxPayloadBytes(): number {
    return MAX_MESSAGE_BYTES - MESSAGE_HEADER_BYTES - (this.sealer === undefined ? 0 : SEAL_OVERHEAD_BYTES);
  }

  get udpSendErrors(): number {
    return this.udpSendErrorCount;
  }

  get ringNotTaken(): number {
    return this.ringNotTakenCount;
  }

  /**
   * One data payload to this peer on the paths data goes on now; false if none took it (or it is too
   * large). framed: the payload is a vnet-framed TCP superpacket from an offload TUN, marked in the
   * message header (the receiver hands it to its TUN framed); otherwise it is an opaque datagram.
   */
  sendData(nowMs: number, payload: Uint8Array, framed = false): boolean {
    if (this.closed || payload.length > this.maxPayloadBytes) return false;
    return this.core.sendData(nowMs, payload, this.storage.drained(this.options.index), this.out, framed);
  }

  /** This peer's copy of the node's broadcast `seq` (UDP on the primary; storage: the one ring frame); false if no path took it. */
  sendBroadcast(nowMs: number, seq: bigint, payload: Uint8Array): boolean {
    if (this.closed || payload.length > this.maxPayloadBytes) return false;
    return this.core.sendBroadcast(nowMs, seq, payload, this.storage.drained(this.options.index), this.out);
  }

  /** Queues one control message (reliable, in order). Resolves once it is handed to a path. */
  async sendControl(payload: Uint8Array): Promise<void> {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "send on a closed link");
    // Checked before it is numbered: an oversize message in the control window would throw on every
    // retransmission, inside the clock's turn.
    checkPayloadSize(payload, this.maxPayloadBytes);
    // Calls already waiting go first: the order of sendControl calls is the order of sequences.
    if (this.controlWaiting.length === 0 && this.core.submitControl(performance.now(), payload, this.out)) return;
    await new Promise<void>((resolve, reject) => {
      if (!this.controlWaiting.add(payload, resolve, reject)) throw new LunlinkError(ErrorCode.QueueFull, `${MAX_CONTROL_WAITING} control messages already wait for the peer's acks`);
    });
  }

  heartbeat(path: PathId): void {
    if (!this.closed) this.core.heartbeat(path, this.out);
  }

  tick(nowMs: number): void {
    if (this.closed) return;
    this.core.tick(nowMs, this.out);
    this.updateStandby(nowMs);
  }

  /** In standby (the last "standby" event said so). */
  get inStandby(): boolean {
    return this.standbyOn;
  }

  /** A datagram from this peer (by its endpoint, or any sender for a pair), received at arrivedMs (earlier than now if it was held). */
  receiveUdp(bytes: Uint8Array, offset: number, length: number, address: number, port: number, arrivedMs: number): void {
    if (this.closed) return;
    if (this.opener === undefined) this.core.receive(arrivedMs, bytes, offset, length, PathId.Primary, this.out);
    else {
      const opened = this.opener.open(bytes.subarray(offset, offset + length), this.openScratch);
      this.core.receiveSealed(arrivedMs, opened, opened.ok ? "" : endpointText(address, port), this.out);
    }
  }

  /** A frame of this peer's ring addressed to us (or to every node). */
  receiveRing(bytes: Uint8Array, offset: number, length: number): void {
    if (this.closed) return;
    const nowMs = performance.now();
    this.core.receive(nowMs, bytes, offset, length, PathId.Storage, this.out);
    // Traffic on the ring (not a heartbeat) ends standby in the poll that read it, not at the next turn.
    if (this.standbyOn) this.updateStandby(nowMs);
  }

  /** Emits "standby" when the core's verdict changed: each tick (path states) and after ring traffic. */
  private updateStandby(nowMs: number): void {
    const on = this.core.storageStandby(nowMs);
    if (on === this.standbyOn) return;
    this.standbyOn = on;
    this.emit("standby", on);
  }

  /** Hands this peer's UDP batch to the kernel (the end of a batch), counting what it refused. */
  flushUdp(): void {
    this.udpSendErrorCount += this.udp.flushPeer(this.options.index);
  }

  /** Sends and delivers nothing more; waiting sendControl calls are rejected. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.controlWaiting.rejectAll(new LunlinkError(ErrorCode.Closed, "the link closed before the control message could be sent"));
  }

  /** Encodes (or seals) the message straight into this peer's UDP batch; heartbeats and control go at once. */
  private sendUdp(header: MessageHeader, payload?: Uint8Array): boolean {
    this.udp.writeMessage(this.options.index, header, payload, this.sealer);
    // Data inside a batch waits for the batch's flush.
    if (!this.batching) this.flushUdp();
    return true;
  }

  /** Appends a copy to our ring addressed to this peer, or a broadcast's one frame ("down" while the storage recovers, or full: not taken). */
  private sendRing(header: MessageHeader, payload?: Uint8Array): boolean {
    const length = MESSAGE_HEADER_BYTES + (payload?.length ?? 0);
    encodeHeader(this.scratch, 0, header);
    if (payload !== undefined) this.scratch.set(payload, MESSAGE_HEADER_BYTES);
    const frame = this.scratch.subarray(0, length);
    const type = RING_FRAME_TYPE[header.kind];
    const broadcastRing = header.kind === MessageKind.Broadcast ? this.options.broadcastRing : undefined;
    const taken = (broadcastRing === undefined ? this.storage.append(this.options.index, type, frame) : broadcastRing(header.seq, type, frame)) === "queued";
    if (!taken) this.ringNotTakenCount++;
    return taken;
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.options.log?.(event, fields);
  }
}
