// Volume: one block device or file opened for O_DIRECT I/O off the event loop and the libuv pool:
// through the volume's own io_uring (engine "io_uring", addon/uring.cc) or lunlink's own threads
// (engine "threads", addon/pool.cc); "auto", the default, takes io_uring when the kernel allows it
// and falls back to threads (volume.engineFallback says why). io_uring is the default because it
// was ahead of threads in 18 and then 20 of 24 bench raw cells of two runs (the second: geometric
// mean 0.97x fio psync against 0.64x) and passes every device test (README "I/O engines").
// Invariants checked before every syscall: the volume is open, offsets and lengths are multiples
// of the logical block size, buffer addresses are aligned, the range lies inside the volume.
// Every request has a deadline (ioTimeoutMs): past it a request that never started is cancelled
// (ERR_LUNLINK_CANCELLED: it will never run), one that started rejects with ERR_LUNLINK_IO_STALLED
// and the volume reports itself stalled until the parked thread returns.
// Memory (README "Buffers"): the I/O thread only touches native-owned blocks. alloc() buffers are
// such blocks and are used in place; any other buffer is bounced through a spare block (copied in
// for a write, copied out on completion for a read, only if the caller still waits and the buffer
// is still attached). Memory a parked request owns is never reused: its bounce block stays out of
// the spares, and its alloc() buffer is refused (ERR_LUNLINK_BUFFER_BUSY) until the request returns.
import { EventEmitter } from "node:events";
import { statfs } from "node:fs/promises";
import { performance } from "node:perf_hooks";

import { DeadlineTracker, type Tracked } from "./deadlines.ts";
import { ErrorCode, LunlinkError, describe, errnoName, integerOption, invalidArgument, systemError } from "../errors.ts";
import { DEFAULT_ENGINE, DEFAULT_IO_THREADS, DEFAULT_IO_TIMEOUT_MS } from "../defaults.ts";
import { fileSystemName, geometryFrom, type VolumeGeometry } from "./geometry.ts";
import { Submitted, addon, busyPoll, registerRequest, routeCompletions, syscallName, unregisterRequest, type CompletionTarget, type NativeVolumeHandle } from "./native.ts";

/** Which addon engine serves a volume's reads, writes and flushes. */
export type IoEngine = "io_uring" | "threads";
/** The `engine` open option: "auto" takes io_uring when the kernel allows it, else threads. */
export type EngineChoice = "auto" | IoEngine;
/** The `engine` choices, as the open option, LUNLINK_ENGINE and the node config (storage.receiveEngine) take them. */
export const ENGINE_CHOICES = ["auto", "io_uring", "threads"] as const satisfies readonly EngineChoice[];

export interface VolumeOptions {
  /** O_DIRECT (default true). Without it reads of a receive volume may be served from stale page cache. */
  direct?: boolean;
  /** O_DSYNC: each write is durable when it completes (default false). */
  dsync?: boolean;
  /** O_EXCL on block devices, an OFD lock on files (default false). */
  exclusive?: boolean;
  readOnly?: boolean;
  /** Deadline for each request, including open (default 10000 ms, range 1..3600000). */
  ioTimeoutMs?: number;
  /** Most threads this volume's I/O may use at once, i.e. its queue depth (default 4, range 1..64). */
  ioThreads?: number;
  /**
   * Busy-poll for completions for up to this many microseconds after each request (default 0: off).
   * Trades one busy core for the cost of a thread wake-up per request (see README, bench raw).
   */
  busyPollUs?: number;
  /**
   * I/O engine (default "auto", or the LUNLINK_ENGINE environment variable): "auto" takes io_uring
   * where the kernel allows it, else threads; "io_uring" refuses to open where io_uring is
   * unavailable, "threads" never tries it. See README "I/O engines".
   */
  engine?: EngineChoice;
  signal?: AbortSignal;
}

export const MAX_IO_TIMEOUT_MS = 3_600_000;
export const MAX_IO_THREADS = 64;
export const MAX_BUSY_POLL_US = 1_000_000;
/** Spare bounce blocks a volume keeps for foreign buffers, in bytes (beyond this they are freed). */
export const MAX_SPARE_BOUNCE_BYTES = 16 * 1024 * 1024;

const ECANCELED = 125;

export interface VolumeEvents {
  /** A request passed its deadline; `parked` requests are stuck in the kernel. */
  stall: [parked: number];
  /** Every parked request has returned. */
  recover: [];
}

type Offset = number | bigint;

/** Bytes of a ring stamp a stamp watch reads (WatchOptions.untilStamp). */
const STAMP_WATCH_BYTES = 16;

/** How a watch waits (Volume.watch). */
export interface WatchOptions {
  /** Bytes at the start of the range whose change ends the wait. */
  compareBytes: number;
  /** Sleep between re-reads at the start of the wait (us). */
  sleepUs: number;
  /** The sleep backs off up to this (us; default sleepUs: a constant pace). */
  maxSleepUs?: number;
  /** The wait ends unchanged after this long (ms). */
  timeoutMs: number;
  /**
   * Wait for a ring stamp instead of a change (docs/format.md: u32 magic at byte 0, u64 seq at byte
   * 8): the wait ends once the range starts with `magic` and a seq of at least `seq`. No baseline is
   * compared, so the caller needs no read of its own before the wait (compareBytes is still checked).
   */
  untilStamp?: { magic: number; seq: bigint };
}

export class Volume extends EventEmitter<VolumeEvents> {
  readonly path: string;
  readonly geometry: VolumeGeometry;
  readonly readOnly: boolean;
  readonly ioTimeoutMs: number;
  readonly busyPollUs: number;
  /** The engine serving reads, writes and flushes ("io_uring" or "threads"). */
  readonly engine: IoEngine;
  /** Why engine "auto" fell back to threads (io_uring unavailable), else undefined. */
  readonly engineFallback: string | undefined;
  /** Conditions a storage engineer should know about (e.g. a memory-backed volume). */
  readonly warnings: readonly string[];

  private readonly handle: NativeVolumeHandle;
  private readonly tracker: DeadlineTracker;
  private readonly sizeBytes: bigint;
  private readonly ioThreads: number;
  private closing: Promise<void> | undefined;
  /** Bounce blocks no request owns, by length; at most MAX_SPARE_BOUNCE_BYTES in all. */
  private readonly spareBounces = new Map<number, Uint8Array[]>();
  private spareBounceBytes = 0;
  /** What this volume's requests need of it, made once (a request holds this, not closures). */
  private readonly requestContext: RequestContext;

  private constructor(
    path: string,
    handle: NativeVolumeHandle,
    geometry: VolumeGeometry,
    readOnly: boolean,
    ioTimeoutMs: number,
    ioThreads: number,
    busyPollUs: number,
    tracker: DeadlineTracker,
    engineFallback: string | undefined,
  ) {
    super();
    this.engine = handle.engine();
    this.engineFallback = engineFallback;
    this.path = path;
    this.ioThreads = ioThreads;
    this.handle = handle;
    this.geometry = geometry;
    this.sizeBytes = geometry.sizeBytes;
    this.readOnly = readOnly;
    this.ioTimeoutMs = ioTimeoutMs;
    this.busyPollUs = busyPollUs;
    this.tracker = tracker;
    this.requestContext = { path, handle, tracker, giveBounce: (block) => this.giveBounce(block) };
    const warnings: string[] = [];
    if (geometry.memoryBacked) {
      warnings.push(`${path} is on tmpfs: the volume is memory-backed, not shared storage, and is lost on reboot`);
    }
    this.warnings = warnings;
  }

  static async open(path: string, options: VolumeOptions = {}): Promise<Volume> {
    if (typeof path !== "string" || path.length === 0 || path.includes("\0")) {
      throw invalidArgument("path", "a non-empty string without NUL bytes", path);
    }
    const direct = booleanOption(options, "direct", true);
    const dsync = booleanOption(options, "dsync", false);
    const exclusive = booleanOption(options, "exclusive", false);
    const readOnly = booleanOption(options, "readOnly", false);
    const ioTimeoutMs = integerOption("ioTimeoutMs", options.ioTimeoutMs, DEFAULT_IO_TIMEOUT_MS, 1, MAX_IO_TIMEOUT_MS);
    const ioThreads = integerOption("ioThreads", options.ioThreads, DEFAULT_IO_THREADS, 1, MAX_IO_THREADS);
    const busyPollUs = integerOption("busyPollUs", options.busyPollUs, 0, 0, MAX_BUSY_POLL_US);
    const engine = engineOption(options.engine);
    if (options.signal?.aborted === true) {
      throw new LunlinkError(ErrorCode.Aborted, `open ${path}: aborted before it started`, { path, cause: options.signal.reason });
    }

    const handle = new (addon().NativeVolume)(ioThreads, engine === "threads" ? "threads" : "io_uring", routeCompletions);
    const failure = handle.engineFailure();
    let engineFallback: string | undefined;
    if (failure !== null) {
      const syscall = syscallName(failure.syscallId);
      const why = `${syscall}() failed with ${errnoName(failure.errno)}${failure.detail === "" ? "" : ` (${failure.detail})`}`;
      if (engine === "io_uring") {
        // No descriptor is open yet; the handle's finalizer releases the rest.
        throw new LunlinkError(
          ErrorCode.System,
          `open ${path}: engine "io_uring" asked for, but io_uring is unavailable here: ${why} (kernel.io_uring_disabled, a seccomp filter such as Docker's default, or an old kernel); use engine "auto" or "threads"`,
          { errno: failure.errno, syscall, path },
        );
      }
      engineFallback = `io_uring unavailable: ${why}`;
    }
    // Until open completes the tracker reports nothing: a stalled open is reported by its rejection.
    let volume: Volume | undefined;
    const tracker = new DeadlineTracker(
      (parked) => volume?.emit("stall", parked),
      () => volume?.emit("recover"),
    );
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (error?: unknown): void => {
        if (settled) return;
        settled = true;
        options.signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onAbort = (): void => {
        abandon();
        finish(new LunlinkError(ErrorCode.Aborted, `open ${path}: aborted`, { path, cause: options.signal?.reason }));
      };
      // If the caller gave up (deadline or abort) a late success must not leak the descriptor.
      const abandon = (): void => {
        tracker.complete(id);
      };
      const id = registerRequest((_result, errno, syscall) => {
        const fresh = tracker.complete(id);
        if (!fresh || settled) {
          handle.close(registerRequest(() => {}));
          return;
        }
        if (errno === 0) {
          finish();
          return;
        }
        handle.close(registerRequest(() => {}));
        openFailure(path, errno, syscall, direct).then(finish, finish);
      });
      tracker.add(id, {
        deadlineMs: performance.now() + ioTimeoutMs,
        expire: () => finish(stalled(path, "open", ioTimeoutMs)),
      });
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const submitted = handle.open(id, path, { direct, dsync, exclusive, readOnly });
      if (submitted !== Submitted.Accepted) {
        unregisterRequest(id);
        tracker.complete(id);
        finish(refusal(submitted, "open", path));
      }
    });
    const native = handle.geometry();
    if (native === null) throw new Error(`assertion failed: ${path} opened without geometry`);
    volume = new Volume(path, handle, geometryFrom(native), readOnly, ioTimeoutMs, ioThreads, busyPollUs, tracker, engineFallback);
    for (const warning of volume.warnings) process.emitWarning(warning, { code: "LUNLINK_MEMORY_BACKED" });
    return volume;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** True while a request that passed its deadline is still stuck in the kernel. */
  get stalled(): boolean {
    return this.tracker.parkedCount > 0;
  }

  /** Requests queued or running in the addon, including parked ones. */
  get inFlight(): number {
    return this.tracker.liveCount + this.tracker.parkedCount;
  }

  /** A zeroed buffer whose address, and length, suit this volume's O_DIRECT alignment. */
  alloc(lengthBytes: number): Uint8Array {
    const block = this.geometry.logicalBlockSize;
    if (!Number.isSafeInteger(lengthBytes) || lengthBytes <= 0 || lengthBytes % block !== 0) {
      throw new LunlinkError(
        ErrorCode.Misaligned,
        `buffer length must be a positive multiple of the logical block size ${block}; found ${describe(lengthBytes)}`,
      );
    }
    return alignedBuffer(lengthBytes, Math.max(this.geometry.memoryAlignment, 4096));
  }

  /** Reads `length` bytes (into a new aligned buffer) or fills `buffer`, at `offset`. */
  read(offset: Offset, lengthOrBuffer: number | Uint8Array): Promise<Uint8Array> {
    // Not async: the request's own promise is returned (one promise and no extra turn per request);
    // a refusal still arrives as a rejection.
    try {
      const buffer = typeof lengthOrBuffer === "number" ? this.alloc(lengthOrBuffer) : lengthOrBuffer;
      const at = this.check("read", offset, buffer);
      return this.submit("read", at, buffer, buffer);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  write(offset: Offset, buffer: Uint8Array): Promise<void> {
    try {
      if (this.readOnly && !this.closed) {
        throw new LunlinkError(ErrorCode.ReadOnly, `write ${this.path}: the volume was opened read-only`, { path: this.path });
      }
      const at = this.check("write", offset, buffer);
      return this.submit("write", at, buffer, undefined);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Waits for a range to change: re-reads `buffer.length` bytes at `offset` (O_DIRECT) until the
   * first `compareBytes` differ from what `buffer` holds now, or `timeoutMs` passes. Resolves true
   * (the new content is in `buffer`) or false (timed out, unchanged). The waiting happens on the
   * volume's I/O thread, with nanosleep resolution, not on JS timers: it sleeps `sleepUs` between
   * reads, backing off to `maxSleepUs` (default sleepUs) on the schedule of paceAfter()
   * (lib/poll/adaptive-wait.ts), so an idle wait costs re-reads and no JS turn.
   */
  async watch(offset: Offset, buffer: Uint8Array, options: WatchOptions): Promise<boolean> {
    const at = this.check("read", offset, buffer);
    const { compareBytes, sleepUs, timeoutMs } = options;
    if (!Number.isInteger(compareBytes) || compareBytes < 1 || compareBytes > buffer.length) {
      throw invalidArgument("compareBytes", `an integer in 1..${buffer.length}`, compareBytes);
    }
    if (!Number.isInteger(sleepUs) || sleepUs < 0 || sleepUs > 1_000_000) throw invalidArgument("sleepUs", "an integer in 0..1000000", sleepUs);
    const maxSleepUs = options.maxSleepUs ?? sleepUs;
    if (!Number.isInteger(maxSleepUs) || maxSleepUs < sleepUs || maxSleepUs > 1_000_000) throw invalidArgument("maxSleepUs", `an integer in ${sleepUs} (sleepUs)..1000000`, maxSleepUs);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 60_000) throw invalidArgument("timeoutMs", "an integer in 0..60000", timeoutMs);
    const until = options.untilStamp;
    if (until !== undefined) {
      if (!Number.isInteger(until.magic) || until.magic < 0 || until.magic > 0xffffffff) throw invalidArgument("untilStamp.magic", "a u32", until.magic);
      if (typeof until.seq !== "bigint" || until.seq < 0n || until.seq >= 1n << 63n) throw invalidArgument("untilStamp.seq", "a bigint in 0..2^63-1", until.seq);
      if (buffer.length < STAMP_WATCH_BYTES) throw invalidArgument("buffer", `at least ${STAMP_WATCH_BYTES} bytes for a stamp watch`, buffer.length);
    }
    // Resolves true when the watch ended on a change (see IoRequest.complete).
    return this.submit("watch", at, buffer, false, timeoutMs, compareBytes, sleepUs, maxSleepUs, until);
  }

  /**
   * Ends every watch queued or running now, after one more read: each resolves true if its range
   * changed by then, else false at once instead of sleeping out its pace. The caller then starts the
   * next watch at the pace it wants now (a follower leaving its standby pace, lib/poll/poller.ts).
   * Watches started later are not affected; a no-op on a closed volume.
   */
  wakeWatches(): void {
    if (!this.closed) this.handle.wakeWatches();
  }

  /** fdatasync: every completed write is durable when this resolves. */
  async flush(): Promise<void> {
    this.assertOpen("flush");
    await this.submit("flush", 0, undefined, undefined);
  }

  /**
   * Closes once every running request has returned; requests still queued are cancelled
   * (ERR_LUNLINK_CANCELLED: they never run). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve, reject) => {
      const id = registerRequest((_result, errno, syscall) => {
        this.tracker.complete(id);
        if (errno === 0) resolve();
        else reject(systemError(errno, syscall, this.path, "close"));
      });
      this.tracker.add(id, {
        deadlineMs: performance.now() + this.ioTimeoutMs,
        expire: () => reject(stalled(this.path, "close", this.ioTimeoutMs)),
      });
      if (!this.handle.close(id)) {
        unregisterRequest(id);
        this.tracker.complete(id);
        resolve();
      }
    });
    return this.closing;
  }

  private assertOpen(what: string): void {
    if (this.closed) {
      throw new LunlinkError(ErrorCode.Closed, `${what} ${this.path}: the volume is closed`, { path: this.path });
    }
  }

  /** Validates one transfer and returns the offset in the form the addon takes. */
  private check(what: "read" | "write", offset: Offset, buffer: Uint8Array): number | bigint {
    this.assertOpen(what);
    if (!(buffer instanceof Uint8Array)) throw invalidArgument("buffer", "a Uint8Array", buffer);
    const block = this.geometry.logicalBlockSize;
    const length = buffer.byteLength;
    // Plain numbers (the common case) are checked without BigInt arithmetic: it shows at 4 KiB QD1.
    let misalignedOffset: boolean;
    let end: bigint | number;
    if (typeof offset === "number") {
      if (!Number.isSafeInteger(offset) || offset < 0) throw invalidArgument("offset", "a non-negative integer (number or bigint)", offset);
      misalignedOffset = offset % block !== 0;
      end = offset + length;
    } else if (typeof offset === "bigint") {
      if (offset < 0n) throw invalidArgument("offset", "a non-negative integer (number or bigint)", offset);
      misalignedOffset = offset % BigInt(block) !== 0n;
      end = offset + BigInt(length);
    } else {
      throw invalidArgument("offset", "a non-negative integer (number or bigint)", offset);
    }
    if (misalignedOffset) {
      throw new LunlinkError(
        ErrorCode.Misaligned,
        `${what} ${this.path}: offset ${offset} is not a multiple of the logical block size ${block} (O_DIRECT)`,
        { path: this.path },
      );
    }
    if (length === 0 || length % block !== 0) {
      throw new LunlinkError(
        ErrorCode.Misaligned,
        `${what} ${this.path}: length ${length} is not a positive multiple of the logical block size ${block} (O_DIRECT)`,
        { path: this.path },
      );
    }
    const addressAlignment = addon().addressAlignment(buffer);
    if (addressAlignment < this.geometry.memoryAlignment) {
      throw new LunlinkError(
        ErrorCode.Misaligned,
        `${what} ${this.path}: buffer address is aligned to ${addressAlignment} bytes, O_DIRECT needs ${this.geometry.memoryAlignment}: allocate it with volume.alloc() or alignedBuffer()`,
        { path: this.path },
      );
    }
    if (end > this.sizeBytes) {
      throw new LunlinkError(
        ErrorCode.OutOfRange,
        `${what} ${this.path}: bytes ${offset}..${end} lie past the end of the volume (${this.sizeBytes} bytes)`,
        { path: this.path },
      );
    }
    return typeof offset === "bigint" && offset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(offset) : offset;
  }

  private submit<T>(
    op: IoOp,
    offset: number | bigint,
    buffer: Uint8Array | undefined,
    value: T,
    extraTimeoutMs = 0,
    compareBytes = 0,
    sleepUs = 0,
    maxSleepUs = 0,
    untilStamp?: WatchOptions["untilStamp"],
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const length = buffer?.byteLength ?? 0;
      const timeoutMs = this.ioTimeoutMs + extraTimeoutMs;
      if (this.tracker.parkedCount >= this.ioThreads) {
        // Every thread is stuck in the kernel past its deadline: queueing would only pin memory
        // and run late (a write landing after its caller gave up).
        reject(
          new LunlinkError(
            ErrorCode.IoStalled,
            `${op} ${this.path}: all ${this.ioThreads} I/O ${this.engine === "threads" ? "threads" : "slots (ioThreads, the io_uring queue depth)"} are parked on requests past their deadline; not queued (retry after the volume's "recover" event)`,
            { path: this.path },
          ),
        );
        return;
      }
      // The memory the thread will use: the caller's own alloc() buffer, or a bounce block.
      let memory: Uint8Array | undefined;
      let bounced = false;
      if (buffer !== undefined) {
        if (ownedBuffers.has(buffer.buffer)) {
          if (parkedBuffers.has(buffer.buffer)) {
            reject(
              new LunlinkError(
                ErrorCode.BufferBusy,
                `${op} ${this.path}: the buffer still belongs to a request parked past its deadline (the device may yet write into it); use another buffer until the volume recovers`,
                { path: this.path },
              ),
            );
            return;
          }
          memory = buffer;
        } else {
          memory = this.takeBounce(length);
          bounced = true;
          if (op === "write") memory.set(buffer);
          else if (op === "watch") memory.set(buffer.subarray(0, compareBytes));
        }
      }
      const request = new IoRequest<T>(this.requestContext, op, offset, buffer, memory, bounced, timeoutMs, value, resolve, reject);
      const id = registerRequest(request);
      request.id = id;
      this.tracker.add(id, request);
      const submitted =
        op === "flush"
          ? this.handle.flush(id)
          : op === "read"
            ? this.handle.read(id, offset, memory!)
            : op === "write"
              ? this.handle.write(id, offset, memory!)
              : this.handle.watch(id, offset, memory!, compareBytes, sleepUs, extraTimeoutMs * 1000, maxSleepUs, untilStamp?.magic, untilStamp?.seq);
      if (submitted === Submitted.Accepted) {
        if (this.busyPollUs > 0) busyPoll(this.busyPollUs);
        return;
      }
      unregisterRequest(id);
      this.tracker.complete(id);
      request.release();
      reject(refusal(submitted, op, this.path));
    });
  }

  /** A native-owned block of `lengthBytes` for a foreign buffer's I/O: a spare one, or a new one. */
  private takeBounce(lengthBytes: number): Uint8Array {
    const spare = this.spareBounces.get(lengthBytes)?.pop();
    if (spare !== undefined) {
      this.spareBounceBytes -= lengthBytes;
      return spare;
    }
    return alignedBuffer(lengthBytes, Math.max(this.geometry.memoryAlignment, 4096));
  }

  /** Only for a block no request owns any more (completed, cancelled or refused). */
  private giveBounce(block: Uint8Array): void {
    if (this.spareBounceBytes + block.byteLength > MAX_SPARE_BOUNCE_BYTES) return; // freed by GC
    let list = this.spareBounces.get(block.byteLength);
    if (list === undefined) this.spareBounces.set(block.byteLength, (list = []));
    list.push(block);
    this.spareBounceBytes += block.byteLength;
  }
}

/** ArrayBuffers of native-owned blocks (alignedBuffer): I/O uses them in place, no bounce copy. */
const ownedBuffers = new WeakSet<ArrayBufferLike>();
/** Those owned by requests parked past their deadline (on any volume): how many such requests. */
const parkedBuffers = new WeakMap<ArrayBufferLike, number>();

type IoOp = "read" | "write" | "flush" | "watch";

interface RequestContext {
  readonly path: string;
  readonly handle: NativeVolumeHandle;
  readonly tracker: DeadlineTracker;
  readonly giveBounce: (block: Uint8Array) => void;
}

/**
 * One read, write, flush or watch from submission to settlement: its completion target (addon
 * callback) and its deadline entry in one object, so a request allocates no closures (they showed
 * at 4 KiB QD1). Settles its promise once: on completion, or at its deadline (cancelled if it had
 * not started, else parked: its memory is never reused until the kernel returns it).
 */
class IoRequest<T> implements CompletionTarget, Tracked {
  id = 0;
  readonly deadlineMs: number;
  private parked = false;

  constructor(
    private readonly volume: RequestContext,
    private readonly op: IoOp,
    private readonly offset: number | bigint,
    private readonly buffer: Uint8Array | undefined,
    /** The memory the kernel or thread uses: `buffer` itself, or a bounce block. */
    private readonly memory: Uint8Array | undefined,
    private readonly bounced: boolean,
    private readonly timeoutMs: number,
    /** What a read, write or flush resolves with (a watch resolves with whether it saw a change). */
    private readonly value: T,
    private readonly resolve: (value: T) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.deadlineMs = performance.now() + timeoutMs;
  }

  /** Runs once the thread or kernel no longer owns `memory` (completed, cancelled or refused). */
  release(): void {
    const memory = this.memory;
    if (memory === undefined) return;
    if (this.bounced) this.volume.giveBounce(memory);
    else if (this.parked) {
      const left = (parkedBuffers.get(memory.buffer) ?? 1) - 1;
      if (left > 0) parkedBuffers.set(memory.buffer, left);
      else parkedBuffers.delete(memory.buffer);
    }
  }

  complete(result: number, errno: number, syscall: string): void {
    const { op, buffer, memory, volume } = this;
    const live = volume.tracker.isLive(this.id);
    // Copy a bounced read out before the block goes back to the spares.
    let detached = false;
    if (live && this.bounced && errno === 0 && (op === "read" || (op === "watch" && result > 0)) && buffer !== undefined && memory !== undefined) {
      if (buffer.byteLength === memory.byteLength) buffer.set(memory.subarray(0, Math.min(result, memory.byteLength)));
      else detached = true;
    }
    this.release();
    if (!volume.tracker.complete(this.id)) return; // its caller was already told it stalled (may emit recover)
    const requestedLength = memory?.byteLength ?? 0;
    if (errno === ECANCELED && op === "watch") {
      // Closed before it started: like a running watch that close ends, "unchanged".
      this.resolve(false as T);
    } else if (errno === ECANCELED) {
      this.reject(new LunlinkError(ErrorCode.Cancelled, `${op} ${volume.path}: cancelled before it started (the volume was closed); it did not run`, { path: volume.path }));
    } else if (errno !== 0) {
      this.reject(systemError(errno, syscall, volume.path, `${op} at offset ${this.offset} length ${requestedLength} on`));
    } else if (detached) {
      this.reject(invalidArgument("buffer", "attached until the read completes (it was transferred or detached; the data read was dropped)", buffer));
    } else if (op === "watch") {
      if (result !== 0 && result !== requestedLength) {
        this.reject(new LunlinkError(ErrorCode.ShortIo, `watch ${volume.path}: read ${result} of ${requestedLength} bytes at offset ${this.offset}`, { path: volume.path, syscall: "pread" }));
      } else {
        this.resolve((result > 0) as T);
      }
    } else if (op !== "flush" && result !== requestedLength) {
      this.reject(
        new LunlinkError(
          ErrorCode.ShortIo,
          `${op} ${volume.path}: transferred ${result} of ${requestedLength} bytes at offset ${this.offset} (the volume ended early: was it truncated or resized?)`,
          { path: volume.path, syscall: op === "read" ? "pread" : "pwrite" },
        ),
      );
    } else {
      this.resolve(this.value);
    }
  }

  expire(): boolean {
    const { op, volume } = this;
    if (volume.handle.cancel(this.id)) {
      // Never started: removed from the queue, it will not run (nor complete).
      unregisterRequest(this.id);
      this.release();
      this.reject(
        new LunlinkError(
          ErrorCode.Cancelled,
          `${op} ${volume.path}: not started within ${this.timeoutMs} ms (every I/O thread busy or parked on the device); cancelled, it did not run`,
          { path: volume.path },
        ),
      );
      return false;
    }
    this.parked = true;
    const memory = this.memory;
    if (!this.bounced && memory !== undefined) parkedBuffers.set(memory.buffer, (parkedBuffers.get(memory.buffer) ?? 0) + 1);
    this.reject(stalled(volume.path, op, this.timeoutMs));
    return true;
  }
}

function refusal(submitted: Submitted, op: string, path: string): LunlinkError {
  switch (submitted) {
    case Submitted.Closing:
      return new LunlinkError(ErrorCode.Closed, `${op} ${path}: the volume is closed`, { path });
    case Submitted.PinnedFull:
      return new LunlinkError(ErrorCode.QueueFull, `${op} ${path}: the I/O queue holds its maximum of memory (queued, running and parked requests)`, { path });
    case Submitted.NoThread:
      return new LunlinkError(ErrorCode.System, `${op} ${path}: no I/O thread could be started (EAGAIN: out of threads or memory)`, { path, errno: 11, syscall: "pthread_create" });
    default:
      return new LunlinkError(ErrorCode.QueueFull, `${op} ${path}: the I/O queue is full`, { path });
  }
}

/**
 * A zeroed Uint8Array whose first byte sits at a multiple of `alignment` (a power of two). Its
 * memory is native-owned: volume I/O uses it in place, and no JS call can pull it from under an I/O
 * thread (Node itself refuses to transfer it; see addon/buffer.h for why it is never marked here).
 */
export function alignedBuffer(lengthBytes: number, alignment = 4096): Uint8Array {
  if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 1 || lengthBytes > 2 ** 30) {
    throw invalidArgument("length", "an integer in 1..2^30", lengthBytes);
  }
  if (!Number.isSafeInteger(alignment) || alignment < 1 || alignment > 2 ** 20 || (alignment & (alignment - 1)) !== 0) {
    throw invalidArgument("alignment", "a power of two in 1..2^20", alignment);
  }
  const buffer = addon().alignedBuffer(lengthBytes, alignment);
  ownedBuffers.add(buffer.buffer);
  return buffer;
}

function stalled(path: string, op: string, ioTimeoutMs: number): LunlinkError {
  return new LunlinkError(
    ErrorCode.IoStalled,
    `${op} ${path}: no answer from the device within ${ioTimeoutMs} ms; the request stays parked (on its I/O thread, or in the kernel with io_uring) and the volume is marked stalled`,
    { path },
  );
}

async function openFailure(path: string, errno: number, syscall: string, direct: boolean): Promise<LunlinkError> {
  const error = systemError(errno, syscall, path, "open");
  if (syscall === "open" && error.errno === 22 /* EINVAL */ && direct) {
    // open(O_DIRECT) fails with EINVAL on file systems without direct I/O, ramfs among them.
    let where = "its file system";
    try {
      where = `its file system (${fileSystemName((await statfs(path)).type)})`;
    } catch {
      // keep the generic wording; the open error itself is what matters
    }
    return new LunlinkError(
      ErrorCode.NoDirectIo,
      `open ${path}: ${where} does not support O_DIRECT (open() failed with EINVAL); put the volume on a block device or a file system with direct I/O (ext4, xfs)`,
      { errno, syscall, path, cause: error },
    );
  }
  return error;
}

function engineOption(value: unknown): EngineChoice {
  const fromEnvironment = process.env["LUNLINK_ENGINE"];
  const chosen = value ?? (fromEnvironment === undefined || fromEnvironment === "" ? DEFAULT_ENGINE : fromEnvironment);
  if (!ENGINE_CHOICES.includes(chosen as EngineChoice)) {
    throw invalidArgument(value === undefined ? "LUNLINK_ENGINE" : "engine", `one of ${ENGINE_CHOICES.map((c) => `"${c}"`).join(", ")}`, chosen);
  }
  return chosen as EngineChoice;
}

function booleanOption(options: VolumeOptions, name: "direct" | "dsync" | "exclusive" | "readOnly", fallback: boolean): boolean {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw invalidArgument(name, "a boolean", value);
  return value;
}
