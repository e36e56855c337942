// UdpPath: the primary path of a node to its 1..N peers (a pair's Link has one, a ClusterNode's peers
// share one): two UDP sockets the addon owns (lib/io/udp.ts) bound at this node's endpoint, data on
// `port` and heartbeats and control on `port + 1`, so a data flood that overflows the data socket
// cannot drop them. Send: each peer has its own preallocated batch per socket; the caller writes each
// message (encoded or sealed) straight into a slot (reserve/commit: no allocation per datagram) and
// flush() hands each batch to the kernel in one sendmmsg; a full batch flushes by itself. Receive: one
// handler call per datagram with the peer it is from, then one batchEnd per recvmmsg batch. Which peer:
// "endpoint" hands a datagram to the peer whose configured endpoint sent it (as WireGuard binds a peer
// to its endpoint) and counts any other source as a stray, dropped unread; "any" (a pair's one peer,
// whose Link authenticates what arrives) takes every source. Invariant: after close() nothing is sent
// or delivered. Heartbeats: the control socket's receive thread holds a batch of nothing but
// heartbeats (up to HELD_HEARTBEATS_PER_PEER a peer) instead of waking JS for each; the owner's clock
// calls drainHeld() before every liveness decision, and each datagram carries its arrival time, so
// a decision sees what it saw before (PathMonitor keeps the latest time). Anything else on the
// control socket wakes JS at once and brings the held heartbeats along, in order; every data batch
// drains them first (a held heartbeat is never read after more data than one batch that followed it).
import { LunlinkError } from "../errors.ts";
import { ipv4, UDP_BATCH_MESSAGES, UDP_HELD_MAX, UDP_TABLE_WORDS, UdpSocket, type UdpEndpoint, type UdpSocketCounters } from "../io/udp.ts";
import { encodeHeader, MessageKind, MESSAGE_HEADER_BYTES, type MessageHeader } from "./message.ts";
import { SEAL_OVERHEAD_BYTES, type Sealer } from "./seal.ts";

/** Bytes of one outgoing batch per socket of a pair: UDP_BATCH_MESSAGES datagrams of a 1500-byte underlay, or fewer larger ones. */
export const UDP_SEND_BATCH_BYTES = 1 << 20;
/** Bytes of one outgoing batch per socket and peer of a cluster node (a quarter of a pair's: up to 15 peers each have two). */
export const CLUSTER_UDP_BATCH_BYTES = 256 * 1024;
/** Socket buffers asked of the kernel (capped at rmem_max / wmem_max): TCP bursts through the TUN overflow the default. */
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
const MAX_DATAGRAM_BYTES = 65507;
/** Heartbeats the control socket holds per peer before it wakes JS anyway (a clock period holds ~1 a peer). */
export const HELD_HEARTBEATS_PER_PEER = 4;
/**
 * The longest a heartbeat is held if nobody drains (the owner's clock drains every turn, at most
 * tickMs apart): a safety net, not a schedule.
 */
export const HOLD_MAX_MS = 100;

export interface UdpPathOptions {
  bind: UdpEndpoint;
  /** Each peer's data endpoint (its control socket is port + 1), in peer index order. */
  peers: readonly UdpEndpoint[];
  /** Whose a datagram is: the peer whose endpoint sent it ("endpoint"), or the one peer's from any source ("any"). */
  sources: "endpoint" | "any";
  /** Bytes of each outgoing batch (one per socket and peer). */
  batchBytes: number;
  /** One datagram from peer `peer` (an index into `peers`; a view, valid during the call), received at arrivedMs (performance.now()); `from` for logs. */
  onDatagram: (peer: number, bytes: Uint8Array, offset: number, length: number, fromAddress: number, fromPort: number, arrivedMs: number) => void;
  /** After the last datagram of a receive batch. */
  onBatchEnd: () => void;
  /** A receive thread stopped on a system error (the path then only sends). */
  onError: (error: LunlinkError) => void;
}

export type UdpPathState = "open" | "closed";

/** One socket's outgoing batch to one peer: datagrams back to back and their lengths. */
export class SendBatch {
  readonly bytes: Uint8Array;
  readonly lengths = new Uint32Array(UDP_BATCH_MESSAGES);
  count = 0;
  used = 0;

  constructor(capacityBytes: number) {
    this.bytes = new Uint8Array(capacityBytes);
  }

  room(length: number): boolean {
    return this.count < UDP_BATCH_MESSAGES && this.used + length <= this.bytes.length;
  }
}

export class UdpPath {
  /** Datagrams from an address:port that is no peer's (dropped unread; always 0 with sources "any"). */
  strays = 0;
  readonly options: UdpPathOptions;
  private readonly data: UdpSocket;
  private readonly control: UdpSocket;
  /** [peer][0 = data, 1 = control] */
  private readonly batches: [SendBatch, SendBatch][];
  private readonly peerAddresses: number[];
  /** (address * 65536 + data port) -> peer index; control datagrams come from data port + 1. */
  private readonly bySource = new Map<number, number>();
  private closed = false;

  private constructor(options: UdpPathOptions, peerAddresses: number[], data: UdpSocket, control: UdpSocket) {
    this.options = options;
    this.data = data;
    this.control = control;
    this.peerAddresses = peerAddresses;
    options.peers.forEach((p, i) => this.bySource.set(sourceKey(this.peerAddresses[i]!, p.port), i));
    this.batches = options.peers.map(() => [new SendBatch(options.batchBytes), new SendBatch(options.batchBytes)]);
  }

  /** Binds both sockets and starts their receive threads. */
  static open(options: UdpPathOptions): UdpPath {
    if (options.peers.length === 0 || (options.sources === "any" && options.peers.length !== 1)) {
      throw new Error(`assertion failed: ${options.peers.length} peers with sources "${options.sources}"`);
    }
    // A peer host that is no numeric IPv4 address is refused before any socket is bound.
    const peerAddresses = options.peers.map((p) => ipv4(p.host));
    const data = UdpSocket.bind(options.bind, UDP_SOCKET_BUFFER_BYTES);
    let control: UdpSocket | undefined;
    try {
      control = UdpSocket.bind({ host: options.bind.host, port: options.bind.port + 1 }, UDP_SOCKET_BUFFER_BYTES);
      const path = new UdpPath(options, peerAddresses, data, control);
      data.start(path.onData, options.onError);
      control.start(path.onControl, options.onError, { max: Math.min(UDP_HELD_MAX, HELD_HEARTBEATS_PER_PEER * options.peers.length), maxMs: HOLD_MAX_MS });
      return path;
    } catch (error) {
      control?.close();
      data.close();
      throw error;
    }
  }

  get state(): UdpPathState {
    return this.closed ? "closed" : "open";
  }

  /**
   * Room for one outgoing datagram of at most `maxBytes` to `peer` on the data or control socket: write
   * it into the returned view, then commit() its real length. Flushes that batch first if it is full.
   */
  reserve(peer: number, control: boolean, maxBytes: number): Uint8Array {
    if (maxBytes > MAX_DATAGRAM_BYTES) throw new Error(`assertion failed: a datagram of ${maxBytes} bytes`);
    const batch = this.batches[peer]![control ? 1 : 0];
    if (!batch.room(maxBytes)) this.flushOne(peer, control);
    return batch.bytes.subarray(batch.used, batch.used + maxBytes);
  }

  commit(peer: number, control: boolean, length: number): void {
    const batch = this.batches[peer]![control ? 1 : 0];
    batch.lengths[batch.count++] = length;
    batch.used += length;
  }

  /**
   * One link message to `peer`, encoded (or sealed, with `sealer`) straight into its batch: on the
   * control socket unless it is data (a broadcast is data too: it must not queue behind or crowd out
   * heartbeats). Sent at the batch's flush.
   */
  writeMessage(peer: number, header: MessageHeader, payload: Uint8Array | undefined, sealer: Sealer | undefined): void {
    const control = header.kind !== MessageKind.Data && header.kind !== MessageKind.Broadcast;
    const payloadBytes = payload?.length ?? 0;
    const slot = this.reserve(peer, control, MESSAGE_HEADER_BYTES + payloadBytes + (sealer === undefined ? 0 : SEAL_OVERHEAD_BYTES));
    let length: number;
    if (sealer !== undefined) {
      length = sealer.sealInto(slot, header, payload ?? EMPTY);
    } else {
      encodeHeader(slot, 0, header);
      if (payload !== undefined) slot.set(payload, MESSAGE_HEADER_BYTES);
      length = MESSAGE_HEADER_BYTES + payloadBytes;
    }
    this.commit(peer, control, length);
  }

  /** Sends every pending batch (one sendmmsg each); returns the datagrams the kernel refused. */
  flush(): number {
    let refused = 0;
    for (let peer = 0; peer < this.batches.length; peer++) refused += this.flushPeer(peer);
    return refused;
  }

  /** Sends one peer's pending batches; returns the datagrams the kernel refused. */
  flushPeer(peer: number): number {
    return this.flushOne(peer, false) + this.flushOne(peer, true);
  }

  /** Delivers the heartbeats the control socket holds (onDatagram, then onBatchEnd), now; returns how many. */
  drainHeld(): number {
    return this.closed ? 0 : this.control.drainHeld();
  }

  get counters(): { data: UdpSocketCounters; control: UdpSocketCounters } {
    return { data: { ...this.data.counters }, control: { ...this.control.counters } };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.data.close();
    this.control.close();
  }

  private flushOne(peer: number, control: boolean): number {
    const batch = this.batches[peer]![control ? 1 : 0];
    if (batch.count === 0) return 0;
    const count = batch.count;
    batch.count = 0;
    batch.used = 0;
    if (this.closed) return count;
    const socket = control ? this.control : this.data;
    const sent = socket.sendBatch(batch.bytes, batch.lengths, count, this.peerAddresses[peer]!, this.options.peers[peer]!.port + (control ? 1 : 0));
    return count - sent;
  }

  private readonly onData = (datagrams: Uint8Array, table: Uint32Array, arrivals: Float64Array, count: number): void => {
    // Heartbeats held on the control socket go first: sealed, they share the peer's counter and replay
    // window with this data, and a flood would push them out of the window before the clock's turn.
    this.control.drainHeld();
    this.onBatch(datagrams, table, arrivals, count, 0);
  };
  private readonly onControl = (datagrams: Uint8Array, table: Uint32Array, arrivals: Float64Array, count: number): void => this.onBatch(datagrams, table, arrivals, count, 1);

  private onBatch(datagrams: Uint8Array, table: Uint32Array, arrivals: Float64Array, count: number, portOffset: number): void {
    if (this.closed) return;
    const anySource = this.options.sources === "any";
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const length = table[UDP_TABLE_WORDS * i]!;
      const address = table[UDP_TABLE_WORDS * i + 1]!;
      const port = table[UDP_TABLE_WORDS * i + 2]!;
      const peer = anySource ? 0 : this.bySource.get(sourceKey(address, port - portOffset));
      if (peer === undefined) this.strays++;
      else this.options.onDatagram(peer, datagrams, offset, length, address, port, arrivals[i]!);
      offset += length;
    }
    this.options.onBatchEnd();
  }
}

/** An IPv4 address (host order, as the receive table has it) and port, for logs. */
export function endpointText(address: number, port: number): string {
  return `${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${address & 255}:${port}`;
}

const EMPTY = new Uint8Array(0);

function sourceKey(address: number, port: number): number {
  return address * 65536 + port;
}
