// The typed facade of the addon's UDP socket (addon/udp.cc) for lib/link: only lib/io touches the raw
// addon. Receive batches arrive in native-owned slots (external ArrayBuffers, like the TUN's),
// valid only during the handler; a slot goes back to the receive thread once per event-loop turn, so
// a flood cannot keep timers (heartbeats) waiting. Send: a whole batch in one sendmmsg (UDP GSO for
// runs of equal sizes), never throwing for a network condition: what the kernel refused is counted.
// Every datagram comes with its arrival time on performance.now()'s clock. Held heartbeats (start's
// heldMax): the receive thread keeps a batch of nothing but heartbeats from waking JS; drainHeld()
// hands it over synchronously, and whoever enables holding calls it before each liveness decision.
import { performance } from "node:perf_hooks";

import { invalidArgument, type LunlinkError, systemError } from "../errors.ts";
import { addon, nativeSyscallFailure, syscallName, type NativeUdpHandle } from "./native.ts";

/** Mirror the bounds in addon/udp.h. */
export const UDP_BATCH_SLOTS = 4;
export const UDP_BATCH_MESSAGES = 256;
export const UDP_BATCH_BYTES = 2 << 20;
/** Words per datagram in a receive batch's table: length, source IPv4 (host order), source port. */
export const UDP_TABLE_WORDS = 3;
/** Mirror kUdpHeldMax in addon/udp.h: the most heartbeats a socket holds without waking JS. */
export const UDP_HELD_MAX = 64;

/**
 * performance.now() minus CLOCK_MONOTONIC in ms: both run on CLOCK_MONOTONIC (libuv's hrtime), so
 * one difference taken at load converts the addon's arrival times (sub-microsecond error).
 */
const MONOTONIC_TO_PERFORMANCE_MS = performance.now() - Number(process.hrtime.bigint()) / 1e6;

/**
 * `count` datagrams back to back in `datagrams`; datagram i is table[3i] bytes from
 * table[3i+1]:table[3i+2], received at arrivals[i] (performance.now() ms; earlier than now if it was held).
 */
export type UdpBatchHandler = (datagrams: Uint8Array, table: Uint32Array, arrivals: Float64Array, count: number) => void;

/** Held heartbeats (start): at most `max` wait for drainHeld(), none longer than `maxMs` (the safety net if nobody drains). */
export interface UdpHoldOptions {
  max: number;
  maxMs: number;
}

export interface UdpEndpoint {
  host: string;
  port: number;
}

export interface UdpSocketCounters {
  datagramsIn: number;
  batchesIn: number;
  datagramsOut: number;
  /** Datagrams the kernel refused (buffer full, no route while the underlay is cut, filtered). */
  sendDrops: number;
  sendCalls: number;
}

export class UdpSocket {
  readonly port: number;
  readonly counters: UdpSocketCounters = { datagramsIn: 0, batchesIn: 0, datagramsOut: 0, sendDrops: 0, sendCalls: 0 };
  /** UDP GSO (UDP_SEGMENT) for runs of equal-sized datagrams; the addon turns it off if the kernel refuses. */
  gso = true;
  private readonly native: NativeUdpHandle;
  private slots: [Uint8Array, Uint32Array, Float64Array][] = [];
  private handler: UdpBatchHandler | undefined;
  private onError: ((error: LunlinkError) => void) | undefined;
  private closed = false;
  private readonly kept: number[] = [];
  private recycleScheduled = false;

  private constructor(native: NativeUdpHandle, port: number) {
    this.native = native;
    this.port = port;
  }

  /** Binds an IPv4 socket (port 0: any) and asks for bufferBytes of socket buffers. */
  static bind(bind: UdpEndpoint, bufferBytes: number): UdpSocket {
    const native = new (addon().NativeUdp)();
    try {
      return new UdpSocket(native, native.bind(ipv4(bind.host), bind.port, bufferBytes));
    } catch (error) {
      throw udpError(error, `${bind.host}:${bind.port}`, "bind UDP");
    }
  }

  /** Starts the receive thread; `handler` gets every batch, `onError` the error that stopped it; `hold`: see UdpHoldOptions (none: every batch wakes JS). */
  start(handler: UdpBatchHandler, onError: (error: LunlinkError) => void, hold?: UdpHoldOptions): void {
    this.handler = handler;
    this.onError = onError;
    this.slots = this.native.start(this.onBatch, hold?.max ?? 0, hold?.maxMs ?? 1);
  }

  /** Hands the heartbeats the receive thread holds to the handler now (synchronously); returns how many. */
  drainHeld(): number {
    if (this.closed || this.handler === undefined) return 0;
    const held = this.native.drain();
    if (held === undefined) return 0;
    const [slot, count] = held;
    try {
      this.handle(slot, count);
    } finally {
      if (!this.closed) this.native.recycle(slot);
    }
    return count;
  }

  /** Sends `count` datagrams stored back to back in `buffer` to `to` (numeric IPv4); returns how many the kernel took. */
  sendBatch(buffer: Uint8Array, lengths: Uint32Array, count: number, toAddress: number, toPort: number): number {
    if (this.closed || count === 0) return 0;
    const sent = this.native.sendBatch(buffer, lengths, count, toAddress, toPort, this.gso);
    this.counters.sendCalls++;
    this.counters.datagramsOut += sent;
    this.counters.sendDrops += count - sent;
    return sent;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handler = undefined;
    this.slots = [];
    this.native.close();
  }

  private readonly recycleKept = (): void => {
    this.recycleScheduled = false;
    if (this.closed) return;
    for (const slot of this.kept.splice(0)) this.native.recycle(slot);
  };

  private readonly onBatch = (slot: number, count: number, _bytes: number, errno: number, syscallId: number): boolean => {
    if (this.closed) return false;
    if (count > 0) this.handle(slot, count);
    if (errno !== 0) {
      this.onError?.(systemError(errno, syscallName(syscallId), `udp:${this.port}`, "receive UDP"));
      return false;
    }
    this.kept.push(slot);
    if (!this.recycleScheduled) {
      this.recycleScheduled = true;
      setImmediate(this.recycleKept);
    }
    return true;
  };

  private handle(slot: number, count: number): void {
    const views = this.slots[slot];
    if (views === undefined || this.handler === undefined) throw new Error(`UDP batch for unknown slot ${slot}`);
    this.counters.batchesIn++;
    this.counters.datagramsIn += count;
    const arrivals = views[2];
    for (let i = 0; i < count; i++) arrivals[i] = arrivals[i]! + MONOTONIC_TO_PERFORMANCE_MS;
    this.handler(views[0], views[1], arrivals, count);
  }
}

/** "198.18.0.1" -> the address as an unsigned 32-bit integer (host order). */
export function ipv4(host: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host === "localhost" ? "127.0.0.1" : host);
  if (m === null || m.slice(1).some((o) => Number(o) > 255)) throw invalidArgument("host", "a numeric IPv4 address", host);
  return m.slice(1).reduce((acc, o) => acc * 256 + Number(o), 0);
}

function udpError(error: unknown, path: string, what: string): unknown {
  const failure = nativeSyscallFailure(error);
  return failure === undefined ? error : systemError(failure.errno, failure.syscall === "socket" ? "bind" : failure.syscall, path, what);
}
