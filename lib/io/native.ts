// The addon's raw surface, private to lib/io (other layers use the typed facades: volume.ts,
// tun-handle.ts, aead.ts, notify.ts). Loads the addon once, through node-gyp-build: a local build
// (build/Release, from source) wins, else the prebuilt N-API binary shipped in the package
// (prebuilds/linux-<arch>/*.node), so an install needs no compiler where a prebuild matches. Main
// thread only (a worker gets ERR_LUNLINK_WORKER_UNSUPPORTED); wires the completion channel, and routes
// each completion to the request that asked for it. Completions arrive batched (one JS call drains all
// ready ones); a handler that throws never keeps the rest of its batch from being delivered.
import { createRequire } from "node:module";
import { isMainThread } from "node:worker_threads";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

import { ErrorCode, LunlinkError } from "../errors.ts";

export interface NativeGeometry {
  isBlockDevice: boolean;
  sizeBytes: bigint;
  logicalBlockSize: number;
  physicalBlockSize: number;
  memoryAlignment: number;
  dioAlignReported: boolean;
  fsMagic: number;
  deviceMajor: number;
  deviceMinor: number;
}

export interface NativeOpenOptions {
  direct: boolean;
  dsync: boolean;
  exclusive: boolean;
  readOnly: boolean;
}

/** Why the addon refused to queue a request; mirrors `enum class Submitted` in addon/pool.h (0: accepted). */
export const Submitted = { Accepted: 0, Closing: 1, QueueFull: 2, PinnedFull: 3, NoThread: 4 } as const;
export type Submitted = (typeof Submitted)[keyof typeof Submitted];

/**
 * Every submitting method queues work and returns a Submitted code. read/write/watch accept only
 * native-owned buffers (alignedBuffer): the I/O thread never touches memory JS could detach.
 */
export interface NativeVolumeHandle {
  open(requestId: number, path: string, options: NativeOpenOptions): Submitted;
  read(requestId: number, offset: number | bigint, buffer: Uint8Array): Submitted;
  write(requestId: number, offset: number | bigint, buffer: Uint8Array): Submitted;
  flush(requestId: number): Submitted;
  /** With stampMagic and untilSeq: until the range starts with a stamp of that magic and a seq >= untilSeq (Volume.watch untilStamp). */
  watch(requestId: number, offset: number | bigint, buffer: Uint8Array, compareBytes: number, sleepUs: number, timeoutUs: number, maxSleepUs: number, stampMagic?: number, untilSeq?: bigint): Submitted;
  /** true: the request had not started; it is removed and will never run nor complete. */
  cancel(requestId: number): boolean;
  /** Queued requests complete with ECANCELED; false if already closing. */
  close(requestId: number): boolean;
  /** Every watch queued or running now re-reads at once and ends (unchanged: false); later watches are not affected. */
  wakeWatches(): void;
  geometry(): NativeGeometry | null;
  pending(): number;
  /** The engine serving read/write/flush (open and watch always run on the volume's threads). */
  engine(): "io_uring" | "threads";
  /** Why io_uring was asked for and not used; null if it is used or was not asked for. */
  engineFailure(): { errno: number; syscallId: number; detail: string } | null;
}

export type NativeEngine = "io_uring" | "threads";

export interface NativeTunInfo {
  name: string;
  ifindex: number;
  flags: number;
  mtu: number;
  /** IFF_VNET_HDR + TUNSETOFFLOAD in effect (see addon/tun.h). */
  offload: boolean;
  /** errno of a TUNSETOFFLOAD the kernel refused (offload then off); 0 if none. */
  offloadErrno: number;
}

/** Called on the JS thread per batch; the slot's buffers are valid only during the call. */
export type NativeTunBatchHandler = (slot: number, count: number, bytes: number, errno: number, syscallId: number, superpackets: number, malformed: number) => boolean | void;

/**
 * One TUN interface (addon/tun.cc). Every method is synchronous; a failed syscall throws an Error
 * carrying `errno` and `syscallId` (see nativeSyscallFailure).
 */
export interface NativeTunHandle {
  /** TUNSETIFF with IFF_TUN | IFF_NO_PI (+ IFF_VNET_HDR and TUNSETOFFLOAD with offload); "" lets the kernel pick tun%d. Returns the actual name. */
  open(name: string, offload: boolean): string;
  setMtu(mtu: number): void;
  setAddress(address: number, prefixLength: number): void;
  setUp(up: boolean): void;
  info(): NativeTunInfo;
  /** Starts the reader thread; returns each slot's [packets, lengths] views. */
  start(onBatch: NativeTunBatchHandler): [Uint8Array, Uint32Array][];
  /** false: the kernel dropped the packet. */
  write(packet: Uint8Array): boolean;
  /** Packets written (the rest were dropped); their total bytes go to writtenBytes[0]. */
  writeBatch(buffer: Uint8Array, lengths: Uint32Array | Uint16Array, count: number, writtenBytes: Float64Array): number;
  /** Idempotent: joins the reader thread, closes the descriptor. */
  close(): void;
  /** Hands back a slot onBatch kept (it returned true). */
  recycle(slot: number): void;
}

/** addon/udp.cc: an IPv4 UDP socket with a recvmmsg thread and sendmmsg (lib/io/udp.ts is its facade). */
export interface NativeUdpHandle {
  /** Binds (address in host order, port 0: any); returns the bound port. */
  bind(address: number, port: number, bufferBytes: number): number;
  /** Slots of [datagrams, table, arrivals (CLOCK_MONOTONIC ms)]; heldMax > 0 holds up to that many heartbeats for drain() (at most holdMaxMs). */
  start(onBatch: (slot: number, count: number, bytes: number, errno: number, syscallId: number) => boolean, heldMax: number, holdMaxMs: number): [Uint8Array, Uint32Array, Float64Array][];
  /** The held heartbeats' [slot, count], now JS's until recycle(slot); undefined if none are held. */
  drain(): [number, number] | undefined;
  /** Datagrams the kernel took of `count` back to back in buffer. */
  sendBatch(buffer: Uint8Array, lengths: Uint32Array, count: number, address: number, port: number, gso: boolean): number;
  close(): void;
  recycle(slot: number): void;
}

interface Addon {
  init(dispatch: (ids: Float64Array, results: Float64Array, errors: Int32Array, syscalls: Int32Array) => void): void;
  /** engine "io_uring" sets up a ring (or records why not, see engineFailure); dispatch gets its completions. */
  NativeVolume: new (maxThreads: number, engine?: NativeEngine, dispatch?: typeof routeCompletions) => NativeVolumeHandle;
  NativeTun: new () => NativeTunHandle;
  NativeUdp: new () => NativeUdpHandle;
  /** A zeroed view over a native-owned block (an external ArrayBuffer). */
  alignedBuffer(length: number, alignment: number): Uint8Array;
  addressAlignment(buffer: Uint8Array): number;
  isNativeOwned(buffer: Uint8Array): boolean;
  /** ChaCha20-Poly1305 seal: out (plaintext.length + 16) gets ciphertext then tag. */
  aeadSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /** ChaCha20-Poly1305 open: true and the plaintext in out if the tag verifies, else false and out zeroed. */
  aeadOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean;
  /** ChaCha20-Poly1305 in place over `count` [start, end) ranges of buffer; the tag goes to `tag`. */
  /** addon/gso.h: a vnet-framed packet cut into complete segments back to back in out; the count, or -GsoError. */
  segmentTcp(input: Uint8Array, out: Uint8Array, lengths: Uint32Array): number;
  aeadSealSegments(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, buffer: Uint8Array, segments: Uint32Array, count: number, tag: Uint8Array): void;
  /** Verifies and decrypts in place: true if authentic, else false and the ranges zeroed. */
  aeadOpenSegments(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, buffer: Uint8Array, segments: Uint32Array, count: number, tag: Uint8Array): boolean;
  /** One datagram to a unix socket (a path, or "@name" abstract); throws with `errno` and `syscall` (a name). */
  sdNotify(socket: string, message: string): void;
}

/** Mirrors `enum class Syscall` in addon/channel.h. */
const SYSCALL_NAMES = ["", "open", "stat", "ioctl", "statx", "fstatfs", "fcntl", "pread", "pwrite", "fdatasync", "close", "read", "write", "poll", "socket", "eventfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "mmap"];

export function syscallName(id: number): string {
  return SYSCALL_NAMES[id] ?? `syscall#${id}`;
}

/** The errno and syscall of an error a synchronous addon call threw for a failed syscall; undefined for any other error. */
export function nativeSyscallFailure(error: unknown): { errno: number; syscall: string } | undefined {
  if (!(error instanceof Error)) return undefined;
  const { errno, syscallId } = error as Error & { errno?: unknown; syscallId?: unknown };
  if (typeof errno !== "number" || typeof syscallId !== "number") return undefined;
  return { errno, syscall: syscallName(syscallId) };
}

/** Receives one completion: bytes transferred (or 0), errno (0 on success) and the failing syscall. */
export type CompletionHandler = (result: number, errno: number, syscall: string) => void;

/** A completion receiver that is an object (a volume's request): no closure per request. */
export interface CompletionTarget {
  complete(result: number, errno: number, syscall: string): void;
}

const handlers = new Map<number, CompletionHandler | CompletionTarget>();
let nextRequestId = 1;

/**
 * Delivers one batch of completions: the first `count` entries of the arrays (all of them when
 * count is not given; the io_uring engine passes its ring's persistent arrays and the batch's
 * count). A handler that throws (a user's `recover` listener runs inside one) does not stop the
 * batch: every other request still settles, then the first error is rethrown and surfaces as an
 * uncaught exception, as for any throwing listener.
 */
export function routeCompletions(ids: Float64Array, results: Float64Array, errors: Int32Array, syscalls: Int32Array, count = ids.length): void {
  let failure: { error: unknown } | undefined;
  const end = Math.min(count, ids.length);
  for (let i = 0; i < end; i++) {
    const id = ids[i]!;
    const handler = handlers.get(id);
    if (handler === undefined) continue; // a request abandoned after its deadline: nothing waits
    handlers.delete(id);
    try {
      if (typeof handler === "function") handler(results[i]!, errors[i]!, syscallName(syscalls[i]!));
      else handler.complete(results[i]!, errors[i]!, syscallName(syscalls[i]!));
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure !== undefined) throw failure.error;
}

/** Registers a handler and returns the request id to pass to the addon. */
export function registerRequest(handler: CompletionHandler | CompletionTarget): number {
  const id = nextRequestId++;
  handlers.set(id, handler);
  return id;
}

/** Forgets a request whose submission was refused. */
export function unregisterRequest(id: number): void {
  handlers.delete(id);
}

// Busy polling: while requests are in flight, keep the event loop turning (setImmediate) instead
// of letting it sleep in epoll, so a completion is picked up without a thread wake-up. On the VMs
// measured (bench raw), a wake-up costs ~25 us; polling brings a 4 KiB round trip from ~28 us to
// ~5 us at the price of one busy core while I/O is pending. Bounded by the latest deadline asked for.
let busyPollUntilMs = 0;
let busyPolling = false;

function busyPollTick(): void {
  if (handlers.size > 0 && performance.now() < busyPollUntilMs) setImmediate(busyPollTick);
  else busyPolling = false;
}

/** Keeps the event loop polling for completions for up to `us` microseconds from now. */
export function busyPoll(us: number): void {
  const untilMs = performance.now() + us / 1000;
  if (untilMs > busyPollUntilMs) busyPollUntilMs = untilMs;
  if (!busyPolling) {
    busyPolling = true;
    setImmediate(busyPollTick);
  }
}

/** The package root: the nearest directory up from this file that holds binding.gyp (source tree, or the installed package). */
function packageRoot(): string {
  // lib/io/native.ts in the source tree, dist/lib/io/native.js when built.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, "binding.gyp"))) return dir;
    dir = dirname(dir);
  }
  throw new LunlinkError(ErrorCode.System, `the lunlink package root (with binding.gyp) was not found above ${fileURLToPath(import.meta.url)}`);
}

function locateAddon(require: NodeJS.Require): string {
  // A sanitizer build (scripts/asan.sh) lives outside build/Release and is named by LUNLINK_ADDON.
  const override = process.env["LUNLINK_ADDON"];
  if (override !== undefined && override !== "") return override;
  const root = packageRoot();
  const nodeGypBuild = require("node-gyp-build") as { resolve(dir: string): string };
  try {
    return nodeGypBuild.resolve(root);
  } catch (error) {
    throw new LunlinkError(
      ErrorCode.System,
      `the lunlink native addon is missing: no build/Release/lunlink.node and no prebuilt binary in prebuilds/ matches this machine (${process.platform}-${process.arch}); ` +
        "build it from source with `npm rebuild lunlink` (needs g++, make and python3)",
      { path: root, cause: error },
    );
  }
}

let loaded: Addon | undefined;

export function addon(): Addon {
  if (loaded === undefined) {
    if (!isMainThread) {
      // A worker's environment can be torn down while lunlink's I/O or TUN threads still run for it
      // (a thread parked on a stalled device returns whenever the device answers).
      throw new LunlinkError(
        ErrorCode.WorkerUnsupported,
        "lunlink's native addon runs on the main thread only: open volumes and TUN devices there and pass data to workers by message",
      );
    }
    const require = createRequire(import.meta.url);
    const path = locateAddon(require);
    let module: Addon;
    try {
      module = require(path) as Addon;
    } catch (error) {
      if ((error as { code?: string }).code === "ERR_LUNLINK_WORKER_UNSUPPORTED") throw error;
      // A prebuilt binary needs glibc >= 2.33 and GCC 12's libstdc++ (see scripts/prebuild.sh).
      throw new LunlinkError(
        ErrorCode.System,
        `the lunlink native addon ${path} does not load on this system (${(error as Error).message.split("\n")[0]}): build it from source with \`npm rebuild lunlink\` (needs g++, make and python3)`,
        { path, cause: error },
      );
    }
    module.init(routeCompletions);
    loaded = module;
  }
  return loaded;
}
