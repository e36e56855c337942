// The addon's raw surface, private to lib/io and lib/tun. Loads build/Release/lunlink.node once per
// environment, wires the completion channel, and routes each completion to the request that
// asked for it. Completions arrive batched (one JS call drains all ready ones).
import { createRequire } from "node:module";
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

/** Every method queues work and returns false if the volume's queue refused it (closing or full). */
export interface NativeVolumeHandle {
  open(requestId: number, path: string, options: NativeOpenOptions): boolean;
  read(requestId: number, offset: number | bigint, buffer: Uint8Array): boolean;
  write(requestId: number, offset: number | bigint, buffer: Uint8Array): boolean;
  flush(requestId: number): boolean;
  watch(requestId: number, offset: number | bigint, buffer: Uint8Array, compareBytes: number, sleepUs: number, timeoutUs: number): boolean;
  close(requestId: number): boolean;
  geometry(): NativeGeometry | null;
  pending(): number;
}

export interface NativeTunInfo {
  name: string;
  ifindex: number;
  flags: number;
  mtu: number;
}

/** Called on the JS thread per batch; the slot's buffers are valid only during the call. */
export type NativeTunBatchHandler = (slot: number, count: number, bytes: number, errno: number, syscallId: number) => boolean | void;

/**
 * One TUN interface (addon/tun.cc). Every method is synchronous; a failed syscall throws an Error
 * carrying `errno` and `syscallId` (see nativeSyscallFailure).
 */
export interface NativeTunHandle {
  /** TUNSETIFF with IFF_TUN | IFF_NO_PI; "" lets the kernel pick tun%d. Returns the actual name. */
  open(name: string): string;
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

interface Addon {
  init(dispatch: (ids: Float64Array, results: Float64Array, errors: Int32Array, syscalls: Int32Array) => void): void;
  NativeVolume: new (maxThreads: number) => NativeVolumeHandle;
  NativeTun: new () => NativeTunHandle;
  alignedBuffer(length: number, alignment: number): Uint8Array;
  addressAlignment(buffer: Uint8Array): number;
  /** ChaCha20-Poly1305 seal: out (plaintext.length + 16) gets ciphertext then tag. */
  aeadSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /** ChaCha20-Poly1305 open: true and the plaintext in out if the tag verifies, else false and out zeroed. */
  aeadOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean;
}

/** Mirrors `enum class Syscall` in addon/channel.h. */
const SYSCALL_NAMES = ["", "open", "stat", "ioctl", "statx", "fstatfs", "fcntl", "pread", "pwrite", "fdatasync", "close", "read", "write", "poll", "socket", "eventfd"];

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

const handlers = new Map<number, CompletionHandler>();
let nextRequestId = 1;

function dispatch(ids: Float64Array, results: Float64Array, errors: Int32Array, syscalls: Int32Array): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const handler = handlers.get(id);
    if (handler === undefined) continue; // a request abandoned after its deadline: nothing waits
    handlers.delete(id);
    handler(results[i]!, errors[i]!, syscallName(syscalls[i]!));
  }
}

/** Registers a handler and returns the request id to pass to the addon. */
export function registerRequest(handler: CompletionHandler): number {
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

function locateAddon(): string {
  // lib/io/native.ts in the source tree, dist/lib/io/native.js when built: walk up to the package.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "build", "Release", "lunlink.node");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new LunlinkError(
    ErrorCode.System,
    "the lunlink native addon is not built (build/Release/lunlink.node is missing): run `npm ci` or `npx node-gyp rebuild`",
  );
}

let loaded: Addon | undefined;

export function addon(): Addon {
  if (loaded === undefined) {
    const require = createRequire(import.meta.url);
    const module = require(locateAddon()) as Addon;
    module.init(dispatch);
    loaded = module;
  }
  return loaded;
}
