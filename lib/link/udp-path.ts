// UdpPath: the link's primary path as one object, the same shape as StoragePath (open, send a batch,
// close, state): two UDP sockets the addon owns (lib/io/udp.ts), data on `port` and heartbeats and
// control on `port + 1`, so a data flood that overflows the data socket cannot drop them.
// Send: the Link writes each message (encoded or sealed) straight into a slot of a preallocated batch
// (reserve/commit: no allocation per datagram) and flush() hands each socket's batch to the kernel in
// one sendmmsg; a full batch flushes by itself. Receive: one handler call per datagram, then one
// batchEnd per batch (one wake-up per recvmmsg batch). Invariant: after close() nothing is sent or
// delivered.
import { LunlinkError } from "../errors.ts";
import { ipv4, UDP_BATCH_MESSAGES, UDP_TABLE_WORDS, UdpSocket, type UdpEndpoint, type UdpSocketCounters } from "../io/udp.ts";

/** Bytes of one outgoing batch per socket: UDP_BATCH_MESSAGES datagrams of a 1500-byte underlay, or fewer larger ones. */
export const UDP_SEND_BATCH_BYTES = 1 << 20;
/** Socket buffers asked of the kernel (capped at rmem_max / wmem_max): TCP bursts through the TUN overflow the default. */
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
const MAX_DATAGRAM_BYTES = 65507;

export interface UdpPathOptions {
  bind: UdpEndpoint;
  peer: UdpEndpoint;
  /** One datagram from the peer (a view, valid during the call); `from` for logs. */
  onDatagram: (bytes: Uint8Array, offset: number, length: number, fromAddress: number, fromPort: number) => void;
  /** After the last datagram of a receive batch. */
  onBatchEnd: () => void;
  /** A receive thread stopped on a system error (the path then only sends). */
  onError: (error: LunlinkError) => void;
}

export type UdpPathState = "open" | "closed";

/** One socket's outgoing batch: datagrams back to back and their lengths (also the cluster's, per peer). */
export class SendBatch {
  readonly bytes: Uint8Array;
  readonly lengths = new Uint32Array(UDP_BATCH_MESSAGES);
  count = 0;
  used = 0;

  constructor(capacityBytes = UDP_SEND_BATCH_BYTES) {
    this.bytes = new Uint8Array(capacityBytes);
  }

  room(length: number): boolean {
    return this.count < UDP_BATCH_MESSAGES && this.used + length <= this.bytes.length;
  }
}

export class UdpPath {
  readonly options: UdpPathOptions;
  private readonly data: UdpSocket;
  private readonly control: UdpSocket;
  private readonly batches: [SendBatch, SendBatch] = [new SendBatch(), new SendBatch()];
  private readonly peerAddress: number;
  private closed = false;

  private constructor(options: UdpPathOptions, data: UdpSocket, control: UdpSocket) {
    this.options = options;
    this.data = data;
    this.control = control;
    this.peerAddress = ipv4(options.peer.host);
  }

  /** Binds both sockets and starts their receive threads. */
  static async open(options: UdpPathOptions): Promise<UdpPath> {
    const data = UdpSocket.bind(options.bind, UDP_SOCKET_BUFFER_BYTES);
    let control: UdpSocket;
    try {
      control = UdpSocket.bind({ host: options.bind.host, port: options.bind.port + 1 }, UDP_SOCKET_BUFFER_BYTES);
    } catch (error) {
      data.close();
      throw error;
    }
    const path = new UdpPath(options, data, control);
    for (const socket of [data, control]) socket.start(path.onBatch, options.onError);
    return path;
  }

  get state(): UdpPathState {
    return this.closed ? "closed" : "open";
  }

  /**
   * Room for one outgoing datagram of at most `maxBytes` on the data or control socket: write it into
   * the returned view, then commit() its real length. Flushes first if the batch is full.
   */
  reserve(control: boolean, maxBytes: number): Uint8Array {
    if (maxBytes > MAX_DATAGRAM_BYTES) throw new Error(`assertion failed: a datagram of ${maxBytes} bytes`);
    const batch = this.batches[control ? 1 : 0];
    if (!batch.room(maxBytes)) this.flushOne(control);
    return batch.bytes.subarray(batch.used, batch.used + maxBytes);
  }

  commit(control: boolean, length: number): void {
    const batch = this.batches[control ? 1 : 0];
    batch.lengths[batch.count++] = length;
    batch.used += length;
  }

  /** Sends both pending batches (one sendmmsg each); returns the datagrams the kernel refused. */
  flush(): number {
    return this.flushOne(false) + this.flushOne(true);
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

  private flushOne(control: boolean): number {
    const batch = this.batches[control ? 1 : 0];
    if (batch.count === 0) return 0;
    const count = batch.count;
    batch.count = 0;
    batch.used = 0;
    if (this.closed) return count;
    const socket = control ? this.control : this.data;
    const sent = socket.sendBatch(batch.bytes, batch.lengths, count, this.peerAddress, this.options.peer.port + (control ? 1 : 0));
    return count - sent;
  }

  private readonly onBatch = (datagrams: Uint8Array, table: Uint32Array, count: number): void => {
    if (this.closed) return;
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const length = table[UDP_TABLE_WORDS * i]!;
      this.options.onDatagram(datagrams, offset, length, table[UDP_TABLE_WORDS * i + 1]!, table[UDP_TABLE_WORDS * i + 2]!);
      offset += length;
    }
    this.options.onBatchEnd();
  };
}
