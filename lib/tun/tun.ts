// TunDevice: one TUN interface (IFF_TUN | IFF_NO_PI: bare IPv4/IPv6 packets) in the calling process's
// network namespace. Receive: the addon's reader thread drains every ready packet per wake-up into one
// of TUN_BATCH_SLOTS reused native-owned buffers; onPackets sees each batch zero-copy, valid only
// during the call (a view kept later shows later packets; transferring it copies, never moves it).
// Send: write()/writeBatch() on the JS thread; a packet the kernel refuses is a counted drop, never an
// exception. Offload (default on): TCP superpackets arrive vnet-framed and may be written so
// (lib/tun/offload.ts); the interface MTU is unchanged, so every packet on a wire stays within it. Invariant: after close() no handler runs and no syscall is made on the descriptor.
import { EventEmitter } from "node:events";

import { ErrorCode, LunlinkError, errnoName, integerOption, invalidArgument, systemError } from "../errors.ts";
import { TunHandle, nativeSyscallFailure, syscallName } from "../io/tun-handle.ts";
import { isFramed, MAX_FRAMED_BYTES } from "./offload.ts";

/** Mirror the bounds in addon/tun.h. */
export const TUN_BATCH_SLOTS = 4;
export const TUN_BATCH_PACKETS = 256;
export const TUN_BATCH_BYTES = 1 << 20;

export const DEFAULT_TUN_NAME = "lunlink0";
export const DEFAULT_TUN_MTU = 1400;
export const MIN_TUN_MTU = 68;
export const MAX_TUN_MTU = 65535;
/** IFNAMSIZ - 1. */
export const MAX_TUN_NAME_BYTES = 15;

const TUN_PATH = "/dev/net/tun";

export interface TunOptions {
  /** Interface name (default "lunlink0"); "" lets the kernel pick tun%d; one "%d" is a kernel-numbered pattern. */
  name?: string;
  /** 68..65535 (default 1400). */
  mtu?: number;
  /** IPv4 address and prefix, "198.18.100.1/24"; none by default. */
  address?: string;
  /** Bring the interface up (default true). */
  up?: boolean;
  /**
   * TUN offload (default true): IFF_VNET_HDR + TUNSETOFFLOAD(CSUM | TSO4 | TSO6), so the kernel hands
   * over TCP superpackets of up to 64 KiB (vnet-framed, lib/tun/offload.ts) instead of one packet per
   * MTU. A kernel that refuses it leaves it off (`offload` false, `offloadRefusedErrno` set).
   */
  offload?: boolean;
}

export interface TunCounters {
  /** Packets and bytes read from the interface (handed to onPackets). */
  packetsIn: number;
  bytesIn: number;
  /** Packets and bytes the kernel accepted from write()/writeBatch(). */
  packetsOut: number;
  bytesOut: number;
  /** Packets given to write()/writeBatch() that the kernel refused (no buffer, not IP, interface down). */
  dropped: number;
  /** Batches read; packetsIn / batches is the mean batch size. */
  batches: number;
  /** Of packetsIn: TCP superpackets (offload on), vnet-framed. */
  superpacketsIn: number;
  /** Packets read whose vnet header the checks refused (dropped; the kernel never sends one). */
  malformedIn: number;
  /** Of the packets given to write()/writeBatch(): vnet-framed superpackets (written whole with offload, else cut). */
  superpacketsOut: number;
}

export interface TunEvents {
  /** The reader stopped on a system error; the device should be closed. */
  error: [error: LunlinkError];
  close: [];
}

/** Receives `count` packets back to back in `packets`, packet i being `lengths[i]` bytes. */
export type TunPacketHandler = (packets: Uint8Array, lengths: Uint32Array, count: number) => void;

export class TunDevice extends EventEmitter<TunEvents> {
  readonly name: string;
  readonly mtu: number;
  readonly ifindex: number;
  /** The address as configured ("198.18.100.1/24"), if any. */
  readonly address: string | undefined;
  /** Offload in effect (see TunOptions.offload). */
  readonly offload: boolean;
  /** errno of the TUNSETOFFLOAD the kernel refused, if it did (offload then off). */
  readonly offloadRefusedErrno: number;
  readonly counters: Readonly<TunCounters>;

  private readonly handle: TunHandle;
  private readonly live: TunCounters = { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, dropped: 0, batches: 0, superpacketsIn: 0, malformedIn: 0, superpacketsOut: 0 };
  private handler: TunPacketHandler | undefined;
  private slots: [Uint8Array, Uint32Array][] = [];
  private closed = false;
  /** writeBatch's second result (bytes written), preallocated: no allocation per batch. */
  private readonly writtenBytes = new Float64Array(1);

  private constructor(handle: TunHandle, name: string, mtu: number, ifindex: number, address: string | undefined, offload: { on: boolean; errno: number }) {
    super();
    this.offload = offload.on;
    this.offloadRefusedErrno = offload.errno;
    this.handle = handle;
    this.name = name;
    this.mtu = mtu;
    this.ifindex = ifindex;
    this.address = address;
    this.counters = this.live;
  }

  static async open(options: TunOptions = {}): Promise<TunDevice> {
    const name = tunName(options.name);
    const mtu = integerOption("mtu", options.mtu, DEFAULT_TUN_MTU, MIN_TUN_MTU, MAX_TUN_MTU);
    const address = options.address === undefined ? undefined : parseCidr(options.address);
    if (options.up !== undefined && typeof options.up !== "boolean") throw invalidArgument("up", "a boolean", options.up);
    const up = options.up ?? true;
    if (options.offload !== undefined && typeof options.offload !== "boolean") throw invalidArgument("offload", "a boolean", options.offload);
    const offload = options.offload ?? true;

    const handle = new TunHandle();
    let actual: string;
    try {
      actual = handle.open(name, offload);
    } catch (error) {
      throw tunError(error, TUN_PATH, `open TUN interface ${JSON.stringify(name)} on`);
    }
    try {
      handle.setMtu(mtu);
      if (address !== undefined) handle.setAddress(address.address, address.prefixLength);
      if (up) handle.setUp(true);
      const info = handle.info();
      return new TunDevice(handle, actual, info.mtu, info.ifindex, options.address, { on: info.offload, errno: info.offloadErrno });
    } catch (error) {
      handle.close();
      throw tunError(error, actual, "configure TUN interface");
    }
  }

  /**
   * Sets the packet handler; the first call starts the reader thread. Until then nothing reads the
   * interface and the kernel queues, then drops, what is routed into it.
   */
  onPackets(handler: TunPacketHandler): void {
    if (typeof handler !== "function") throw invalidArgument("handler", "a function", handler);
    this.assertOpen("onPackets");
    const first = this.handler === undefined;
    this.handler = handler;
    if (first) this.slots = this.handle.start(this.onBatch);
  }

  /**
   * Writes one IP packet, bare or vnet-framed (a device without offload gets a framed one cut into
   * segments); false if the kernel dropped it (counted in `counters.dropped`).
   */
  write(packet: Uint8Array): boolean {
    this.assertOpen("write");
    if (!(packet instanceof Uint8Array) || packet.byteLength < 1 || packet.byteLength > MAX_FRAMED_BYTES) {
      throw invalidArgument("packet", `a Uint8Array of 1..${MAX_FRAMED_BYTES} bytes`, packet);
    }
    if (isFramed(packet, 0, packet.length)) this.live.superpacketsOut++;
    const ok = this.nativeWrite(() => (this.handle.write(packet) ? 1 : 0));
    if (ok === 1) {
      this.live.packetsOut++;
      this.live.bytesOut += packet.byteLength;
      return true;
    }
    this.live.dropped++;
    return false;
  }

  /**
   * Writes `count` packets stored back to back in `buffer` (packet i is `lengths[i]` bytes).
   * Returns the packets written; the others were dropped (counted). A bad length table writes nothing.
   * A packet whose first nibble is 0 is taken as vnet-framed: give one only if it is (the bridge
   * passes only payloads their message header marked, lib/node/bridge.ts).
   */
  writeBatch(buffer: Uint8Array, lengths: Uint32Array | Uint16Array, count: number): number {
    this.assertOpen("writeBatch");
    if (!(buffer instanceof Uint8Array)) throw invalidArgument("buffer", "a Uint8Array", buffer);
    if (!(lengths instanceof Uint32Array) && !(lengths instanceof Uint16Array)) {
      throw invalidArgument("lengths", "a Uint32Array or Uint16Array", lengths);
    }
    if (!Number.isInteger(count) || count < 0 || count > lengths.length) {
      throw invalidArgument("count", `an integer in 0..${lengths.length} (lengths.length)`, count);
    }
    let totalBytes = 0;
    let framed = 0;
    for (let i = 0; i < count; i++) {
      const length = lengths[i]!;
      if (length < 1 || length > MAX_FRAMED_BYTES) throw invalidArgument(`lengths[${i}]`, `1..${MAX_FRAMED_BYTES}`, length);
      if (totalBytes < buffer.byteLength && isFramed(buffer, totalBytes, length)) framed++;
      totalBytes += length;
    }
    if (totalBytes > buffer.byteLength) {
      throw invalidArgument("lengths", `to add up to at most buffer.byteLength (${buffer.byteLength})`, totalBytes);
    }
    const written = this.nativeWrite(() => this.handle.writeBatch(buffer, lengths, count, this.writtenBytes));
    this.live.packetsOut += written;
    this.live.bytesOut += this.writtenBytes[0]!;
    this.live.dropped += count - written;
    this.live.superpacketsOut += framed;
    return written;
  }

  /** Sets the interface up or down (SIOCSIFFLAGS, synchronous). */
  setUp(up: boolean): void {
    if (typeof up !== "boolean") throw invalidArgument("up", "a boolean", up);
    this.assertOpen("setUp");
    try {
      this.handle.setUp(up);
    } catch (error) {
      throw tunError(error, this.name, `set ${up ? "up" : "down"} TUN interface`);
    }
  }

  /** Stops the reader thread and closes the descriptor; the kernel then deletes the interface. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handler = undefined;
    this.slots = [];
    try {
      this.handle.close();
    } catch (error) {
      throw tunError(error, this.name, "close TUN interface");
    } finally {
      this.emit("close");
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // Slots handed back once per event-loop turn (setImmediate), not right after each batch: the
  // reader thread can then post at most TUN_BATCH_SLOTS batches per turn, so a busy interface
  // cannot keep timers (heartbeats) waiting.
  private readonly kept: number[] = [];
  private recycleScheduled = false;
  private readonly recycleKept = (): void => {
    this.recycleScheduled = false;
    if (this.closed) return;
    for (const slot of this.kept.splice(0)) this.handle.recycle(slot);
  };

  private readonly onBatch = (slot: number, count: number, bytes: number, errno: number, syscallId: number, superpackets: number, malformed: number): boolean => {
    if (this.closed) return false;
    this.live.malformedIn += malformed;
    if (count > 0) {
      const views = this.slots[slot];
      const handler = this.handler;
      if (views === undefined || handler === undefined) throw new Error(`TUN batch for unknown slot ${slot}`);
      this.live.batches++;
      this.live.packetsIn += count;
      this.live.bytesIn += bytes;
      this.live.superpacketsIn += superpackets;
      handler(views[0], views[1], count); // a throwing handler is an uncaught exception, like any listener
    }
    if (errno !== 0) {
      this.emit("error", systemError(errno, syscallName(syscallId), this.name, "read TUN interface"));
      return false;
    }
    this.kept.push(slot);
    if (!this.recycleScheduled) {
      this.recycleScheduled = true;
      setImmediate(this.recycleKept);
    }
    return true;
  };

  private nativeWrite(write: () => number): number {
    try {
      return write();
    } catch (error) {
      throw tunError(error, this.name, "write to TUN interface");
    }
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, `${what} ${this.name}: the TUN device is closed`, { path: this.name });
  }
}

function tunName(value: unknown): string {
  if (value === undefined) return DEFAULT_TUN_NAME;
  const expected = `"" or 1..${MAX_TUN_NAME_BYTES} characters of A-Z a-z 0-9 _ . - (and at most one %d)`;
  if (typeof value !== "string") throw invalidArgument("name", expected, value);
  const ok =
    Buffer.byteLength(value) <= MAX_TUN_NAME_BYTES &&
    /^(?:[A-Za-z0-9_.-]|%d)*$/.test(value) &&
    (value.match(/%d/g) ?? []).length <= 1 &&
    value !== "." &&
    value !== "..";
  if (!ok) throw invalidArgument("name", expected, value);
  return value;
}

/** "198.18.100.1/24" -> address as an unsigned 32-bit integer and the prefix length. */
export function parseCidr(value: unknown): { address: number; prefixLength: number } {
  const expected = 'an IPv4 address with a prefix length 1..32, like "198.18.100.1/24"';
  if (typeof value !== "string") throw invalidArgument("address", expected, value);
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (match === null) throw invalidArgument("address", expected, value);
  const parts = match.slice(1).map((part) => (part.length > 1 && part.startsWith("0") ? Number.NaN : Number(part)));
  const octets = parts.slice(0, 4);
  const prefixLength = parts[4]!;
  if (octets.some((o) => !(o <= 255)) || !(prefixLength >= 1 && prefixLength <= 32)) throw invalidArgument("address", expected, value);
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  if (address === 0) throw invalidArgument("address", `${expected}, not 0.0.0.0`, value);
  return { address, prefixLength };
}

const tunHints: Readonly<Record<string, string>> = {
  ENOENT: "the kernel lacks TUN support (no /dev/net/tun: load the tun module, CONFIG_TUN)",
  ENODEV: "the kernel lacks TUN support (load the tun module, CONFIG_TUN)",
  EPERM: "creating or configuring a network interface needs CAP_NET_ADMIN",
  EACCES: "no permission to open /dev/net/tun (run as root or grant access and CAP_NET_ADMIN)",
  EBUSY: "the name belongs to a TUN interface another descriptor already holds",
};

/** Maps an addon error to a coded LunlinkError; anything that is not a syscall failure is rethrown as is. */
function tunError(error: unknown, path: string, what: string): unknown {
  const failure = nativeSyscallFailure(error);
  if (failure === undefined) return error;
  const { errno, syscall } = failure;
  const name = errnoName(errno);
  if (syscall === "ioctl" && path === TUN_PATH && name === "EINVAL") {
    // TUNSETIFF refuses a name that belongs to an interface of another kind (veth, lo...).
    return new LunlinkError(ErrorCode.Busy, `${what} ${path}: ioctl(TUNSETIFF) failed with EINVAL (the name belongs to a network interface that is not a TUN device)`, {
      errno,
      syscall,
      path,
    });
  }
  const base = systemError(errno, syscall, path, what);
  const hint = tunHints[name];
  const code = (name === "ENOENT" || name === "ENODEV") && path === TUN_PATH && syscall === "open" ? ErrorCode.NoTun : base.code;
  if (hint === undefined && code === base.code) return base;
  return new LunlinkError(code, `${what} ${path}: ${syscall}() failed with ${name}${hint === undefined ? "" : ` (${hint})`}`, { errno, syscall, path });
}
