// The primary path of a cluster node: one pair of UDP sockets bound at this node's endpoint (data on
// `port`, heartbeats and control on `port + 1`, as a pair's UdpPath) shared by every peer. Each peer
// has its own outgoing batches (one sendmmsg per socket and peer at flush), and an incoming datagram
// is handed to the peer whose configured endpoint it came from (as WireGuard binds a peer to its
// endpoint); any other source is counted and dropped before anything parses it.
// Invariant: after close() nothing is sent or delivered. No allocation per datagram.
import { ipv4, UDP_TABLE_WORDS, UdpSocket, type UdpEndpoint, type UdpSocketCounters } from "../io/udp.ts";
import type { LunlinkError } from "../errors.ts";
import { SendBatch, UDP_SOCKET_BUFFER_BYTES } from "../link/udp-path.ts";

/** Bytes of one outgoing batch per socket and peer (a quarter of a pair's: up to 15 peers each have two). */
export const CLUSTER_UDP_BATCH_BYTES = 256 * 1024;
const MAX_DATAGRAM_BYTES = 65507;

export interface ClusterUdpOptions {
  bind: UdpEndpoint;
  /** Each peer's data endpoint (its control socket is port + 1), in peer index order. */
  peers: readonly UdpEndpoint[];
  /** One datagram from peer `peer` (an index into `peers`; a view, valid during the call). */
  onDatagram: (peer: number, bytes: Uint8Array, offset: number, length: number, fromAddress: number, fromPort: number) => void;
  /** After the last datagram of a receive batch. */
  onBatchEnd: () => void;
  /** A receive thread stopped on a system error (the path then only sends). */
  onError: (error: LunlinkError) => void;
}

export class ClusterUdp {
  /** Datagrams from an address:port that is no peer's (dropped unread). */
  strays = 0;
  private readonly options: ClusterUdpOptions;
  private readonly data: UdpSocket;
  private readonly control: UdpSocket;
  /** [peer][0 = data, 1 = control] */
  private readonly batches: [SendBatch, SendBatch][];
  private readonly peerAddresses: number[];
  /** (address * 65536 + data port) -> peer index; control datagrams come from data port + 1. */
  private readonly bySource = new Map<number, number>();
  private closed = false;

  private constructor(options: ClusterUdpOptions, data: UdpSocket, control: UdpSocket) {
    this.options = options;
    this.data = data;
    this.control = control;
    this.peerAddresses = options.peers.map((p) => ipv4(p.host));
    options.peers.forEach((p, i) => this.bySource.set(sourceKey(this.peerAddresses[i]!, p.port), i));
    this.batches = options.peers.map(() => [new SendBatch(CLUSTER_UDP_BATCH_BYTES), new SendBatch(CLUSTER_UDP_BATCH_BYTES)]);
  }

  static open(options: ClusterUdpOptions): ClusterUdp {
    const data = UdpSocket.bind(options.bind, UDP_SOCKET_BUFFER_BYTES);
    let control: UdpSocket;
    try {
      control = UdpSocket.bind({ host: options.bind.host, port: options.bind.port + 1 }, UDP_SOCKET_BUFFER_BYTES);
    } catch (error) {
      data.close();
      throw error;
    }
    const udp = new ClusterUdp(options, data, control);
    data.start(udp.onData, options.onError);
    control.start(udp.onControl, options.onError);
    return udp;
  }

  /** Room for one datagram of at most `maxBytes` to `peer`: write it into the view, then commit() its length. */
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

  /** Sends every pending batch; returns the datagrams the kernel refused. */
  flush(): number {
    let refused = 0;
    for (let peer = 0; peer < this.batches.length; peer++) refused += this.flushOne(peer, false) + this.flushOne(peer, true);
    return refused;
  }

  /** Sends one peer's pending batches; returns the datagrams the kernel refused. */
  flushPeer(peer: number): number {
    return this.flushOne(peer, false) + this.flushOne(peer, true);
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

  private readonly onData = (datagrams: Uint8Array, table: Uint32Array, count: number): void => this.onBatch(datagrams, table, count, 0);
  private readonly onControl = (datagrams: Uint8Array, table: Uint32Array, count: number): void => this.onBatch(datagrams, table, count, 1);

  private onBatch(datagrams: Uint8Array, table: Uint32Array, count: number, portOffset: number): void {
    if (this.closed) return;
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const length = table[UDP_TABLE_WORDS * i]!;
      const address = table[UDP_TABLE_WORDS * i + 1]!;
      const port = table[UDP_TABLE_WORDS * i + 2]!;
      const peer = this.bySource.get(sourceKey(address, port - portOffset));
      if (peer === undefined) this.strays++;
      else this.options.onDatagram(peer, datagrams, offset, length, address, port);
      offset += length;
    }
    this.options.onBatchEnd();
  }
}

function sourceKey(address: number, port: number): number {
  return address * 65536 + port;
}
