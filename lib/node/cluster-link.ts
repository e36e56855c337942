// One peer of a cluster node: the pair's link protocol (LinkCore, sans-IO: sessions, path states,
// failover and failback, control, data dedupe and order) between this node and that peer, over the
// node's shared UDP sockets (this peer's batches) and the node's shared ring (frames addressed to the
// peer). It is the cluster's counterpart of the pair's Link shell, which owns its sockets and rings
// and so cannot share them: the decisions stay in LinkCore, this only moves bytes and time. Keys: the
// pair's X25519 secret of this node and the peer seals their UDP datagrams, as a pair's link does.
// Invariant: every effect goes through `out`; a closed peer link sends and delivers nothing.
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";

import { sharedSecret } from "../link/keys.ts";
import { encodeHeader, MAX_MESSAGE_BYTES, MESSAGE_HEADER_BYTES, PathId, RING_FRAME_TYPE, type MessageHeader } from "../link/message.ts";
import { peerPathsStatus, type PeerPathsStatus } from "../link/link-status.ts";
import { LinkCore, type CoreCounters, type LinkOutput, type LinkTimers, type RefusedCounters, type Transition } from "../link/paths.ts";
import { Opener, SEAL_OVERHEAD_BYTES, Sealer } from "../link/seal.ts";
import type { StorageReport } from "../link/peer-storage.ts";
import { endpointText, type UdpPath } from "../link/udp-path.ts";
import type { ClusterStorage } from "./cluster-storage.ts";

export interface PeerLinkOptions {
  nodeId: number;
  peerNodeId: number;
  /** This peer's index in the node's UDP and storage peer lists. */
  index: number;
  /** This run's session, shared by every peer link of the node (strictly higher on every start). */
  session: bigint;
  timers: LinkTimers;
  controlRtoMs: number;
  keys?: { privateKey: string; peerPublicKey: string };
  /** A data payload from this peer (a view, valid during the call). */
  deliver: (payload: Uint8Array, path: "primary" | "storage") => void;
  log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface PeerLinkEvents {
  transition: [Transition];
  control: [payload: Uint8Array];
}

export interface PeerStatus extends PeerPathsStatus {
  node: number;
  storage: StorageReport;
  ring: ReturnType<ClusterStorage["peerRing"]>;
  counters: CoreCounters & RefusedCounters & { udpSendErrors: number; ringNotTaken: number };
  transitions: Transition[];
}

export class PeerLink extends EventEmitter<PeerLinkEvents> {
  readonly options: PeerLinkOptions;
  readonly core: LinkCore;
  /** Set by the node while it sends a TUN batch: UDP flushes once at the batch's end. */
  batching = false;
  private readonly udp: UdpPath;
  private readonly storage: ClusterStorage;
  private readonly sealer: Sealer | undefined;
  private readonly opener: Opener | undefined;
  private readonly openScratch = Buffer.allocUnsafe(MAX_MESSAGE_BYTES);
  private readonly scratch = new Uint8Array(MESSAGE_HEADER_BYTES + 65535);
  private udpSendErrors = 0;
  /** Ring appends refused (writer down, queue full): the storage copy of a message was not taken. */
  private ringNotTaken = 0;
  private closed = false;
  private readonly out: LinkOutput = {
    send: (path, header, payload) => (path === PathId.Primary ? this.sendUdp(header, payload) : this.sendRing(header, payload)),
    data: (payload, path) => this.options.deliver(payload, path === PathId.Primary ? "primary" : "storage"),
    control: (payload) => this.emit("control", payload),
    peerSession: (session, restarted) => {
      this.sealer?.bindTo(session);
      if (restarted) this.log("peer-restarted", { session: String(session) });
    },
    controlRoom: () => undefined,
    transition: (t) => {
      this.log("transition", { ...t });
      this.emit("transition", t);
    },
    log: (event, fields) => this.log(event, fields),
  };

  constructor(options: PeerLinkOptions, udp: UdpPath, storage: ClusterStorage) {
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

  /** The largest data payload both paths carry to this peer. */
  get maxPayloadBytes(): number {
    return MAX_MESSAGE_BYTES - MESSAGE_HEADER_BYTES - (this.sealer === undefined ? 0 : SEAL_OVERHEAD_BYTES);
  }

  /** One data payload to this peer on the paths data goes on now; false if none took it. */
  sendData(nowMs: number, payload: Uint8Array): boolean {
    if (this.closed || payload.length > this.maxPayloadBytes) return false;
    return this.core.sendData(nowMs, payload, this.storage.drained(this.options.index), this.out);
  }

  /** One control message (reliable, in order); false while the control window is full. */
  submitControl(payload: Uint8Array): boolean {
    return !this.closed && this.core.submitControl(performance.now(), payload, this.out);
  }

  heartbeat(path: PathId): void {
    if (!this.closed) this.core.heartbeat(path, this.out);
  }

  tick(nowMs: number): void {
    if (!this.closed) this.core.tick(nowMs, this.out);
  }

  /** A datagram from this peer's endpoint. */
  receiveUdp(bytes: Uint8Array, offset: number, length: number, address: number, port: number): void {
    if (this.closed) return;
    if (this.opener === undefined) this.core.receive(performance.now(), bytes, offset, length, PathId.Primary, this.out);
    else {
      const opened = this.opener.open(bytes.subarray(offset, offset + length), this.openScratch);
      this.core.receiveSealed(performance.now(), opened, opened.ok ? "" : endpointText(address, port), this.out);
    }
  }

  /** A frame of this peer's ring addressed to us (or to every node). */
  receiveRing(bytes: Uint8Array, offset: number, length: number): void {
    if (!this.closed) this.core.receive(performance.now(), bytes, offset, length, PathId.Storage, this.out);
  }

  status(): PeerStatus {
    return {
      node: this.options.peerNodeId,
      ...peerPathsStatus(performance.now(), this.core),
      storage: this.storage.report(this.options.index),
      ring: this.storage.peerRing(this.options.index),
      counters: { ...this.core.counters, ...this.core.refused, sent: { ...this.core.counters.sent }, received: { ...this.core.counters.received }, udpSendErrors: this.udpSendErrors, ringNotTaken: this.ringNotTaken },
      transitions: [...this.core.paths.transitions],
    };
  }

  close(): void {
    this.closed = true;
  }

  /** Encodes (or seals) the message straight into this peer's UDP batch; heartbeats and control go at once. */
  private sendUdp(header: MessageHeader, payload?: Uint8Array): boolean {
    this.udp.writeMessage(this.options.index, header, payload, this.sealer);
    if (!this.batching) this.udpSendErrors += this.udp.flushPeer(this.options.index);
    return true;
  }

  /** Appends the message to our ring addressed to this peer ("down" or full: not taken). */
  private sendRing(header: MessageHeader, payload?: Uint8Array): boolean {
    const length = MESSAGE_HEADER_BYTES + (payload?.length ?? 0);
    encodeHeader(this.scratch, 0, header);
    if (payload !== undefined) this.scratch.set(payload, MESSAGE_HEADER_BYTES);
    const taken = this.storage.append(this.options.index, RING_FRAME_TYPE[header.kind], this.scratch.subarray(0, length)) === "queued";
    if (!taken) this.ringNotTaken++;
    return taken;
  }

  /** The node's flush at the end of a TUN batch counts what the kernel refused for this peer. */
  flushUdp(): void {
    this.udpSendErrors += this.udp.flushPeer(this.options.index);
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.options.log?.(event, { peer: this.options.peerNodeId, ...fields });
  }
}

