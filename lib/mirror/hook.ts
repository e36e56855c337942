// HookMirror: the external mode. After the writer's writes, a site command copies the changed range
// of the send volume onto the receive volume (dd, rsync, or the array's own CLI: symrdf, drbdadm).
// The command is run with /bin/sh -c and gets the range in its environment:
//   LUNLINK_SRC, LUNLINK_DST, LUNLINK_OFFSET, LUNLINK_LENGTH (bytes), LUNLINK_BLOCK_SIZE,
//   LUNLINK_DST_OFFSET (where the range goes on LUNLINK_DST; equal to LUNLINK_OFFSET unless a region
//   of a cluster volume is copied elsewhere: offsets are absolute on each path, sourceOffsetBytes and
//   destinationOffsetBytes being where the ring's volume or region starts on it)
// and must exit 0 only once the range is durable on the destination. Bounds: one invocation at a
// time (ranges written meanwhile coalesce into contiguous runs, never lost), `timeoutMs` per run
// (the command is killed past it), `retries` with `retryDelayMs` between tries; stderr is captured
// (last 4 KiB) into the error. Ranges never wrap the ring end (records never straddle it).
// close() detaches from the writers, lets the running invocation finish (bounded by timeoutMs, as
// every invocation is) and starts no other: no command runs after it resolves, with the bytes it
// left uncopied.
import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";

import { ErrorCode, LunlinkError, integerOption, invalidArgument } from "../errors.ts";
import type { RingWriter } from "../ring/writer.ts";

export interface HookMirrorOptions {
  /** Shell command run for each changed range (see the module comment for its environment). */
  command: string;
  source: string;
  destination: string;
  blockBytes: number;
  /** Where the writer's volume starts on `source`: a region's start on a cluster volume (default 0). */
  sourceOffsetBytes?: number;
  /** Where the copy starts on `destination`: the same region's start, or 0 for a node volume copy (default sourceOffsetBytes). */
  destinationOffsetBytes?: number;
  /** Per invocation (default 10000 ms). */
  timeoutMs?: number;
  /** Further tries after a failed invocation (default 3). */
  retries?: number;
  retryDelayMs?: number;
}

export interface HookMirrorCounters {
  invocations: number;
  failures: number;
  bytesCopied: number;
  lastSuccessMs: number;
}

export interface HookMirrorEvents {
  copied: [offsetBytes: number, lengthBytes: number];
  error: [LunlinkError];
}

const STDERR_KEEP_BYTES = 4096;

export class HookMirror extends EventEmitter<HookMirrorEvents> {
  readonly counters: HookMirrorCounters = { invocations: 0, failures: 0, bytesCopied: 0, lastSuccessMs: 0 };
  private readonly options: Required<HookMirrorOptions>;
  /** Dirty ranges [start, end) in bytes, disjoint, sorted by start. */
  private dirty: [number, number][] = [];
  private running: Promise<void> | undefined;
  private lastError: LunlinkError | undefined;
  private closed = false;
  private readonly detachers: (() => void)[] = [];

  constructor(options: HookMirrorOptions) {
    super();
    if (typeof options.command !== "string" || options.command.trim() === "") throw invalidArgument("command", "a shell command", options.command);
    this.options = {
      ...options,
      timeoutMs: integerOption("timeoutMs", options.timeoutMs, 10_000, 1, 3_600_000),
      retries: integerOption("retries", options.retries, 3, 0, 100),
      retryDelayMs: integerOption("retryDelayMs", options.retryDelayMs, 100, 0, 60_000),
      sourceOffsetBytes: integerOption("sourceOffsetBytes", options.sourceOffsetBytes, 0, 0, Number.MAX_SAFE_INTEGER),
      destinationOffsetBytes: integerOption("destinationOffsetBytes", options.destinationOffsetBytes, options.sourceOffsetBytes ?? 0, 0, Number.MAX_SAFE_INTEGER),
    };
    for (const key of ["sourceOffsetBytes", "destinationOffsetBytes"] as const) {
      if (this.options[key] % options.blockBytes !== 0) throw invalidArgument(key, `a multiple of the block size ${options.blockBytes}`, this.options[key]);
    }
  }

  /** Follows a writer: every range it writes is copied after it (on-command mode is sync()). */
  attach(writer: RingWriter): void {
    this.requireOpen();
    const onWrite = (offset: number, length: number) => this.markDirty(offset, length);
    writer.on("write", onWrite);
    this.detachers.push(() => writer.off("write", onWrite));
  }

  /**
   * Stops following: no command starts after this, the running one (if any) finishes within its
   * timeoutMs. Resolves with the bytes left uncopied (they are not lost on the source; a later
   * full copy or resync takes them). Idempotent.
   */
  async close(): Promise<number> {
    this.closed = true;
    for (const detach of this.detachers.splice(0)) detach();
    while (this.running !== undefined) await this.running;
    return this.pendingBytes;
  }

  private requireOpen(): void {
    if (this.closed) throw new LunlinkError(ErrorCode.Closed, "mirror hook is closed");
  }

  /** Queues a byte range for copying; starts a copy unless one is running (it will pick this up). */
  markDirty(offsetBytes: number, lengthBytes: number): void {
    const B = this.options.blockBytes;
    if (offsetBytes % B !== 0 || lengthBytes % B !== 0 || lengthBytes <= 0) {
      throw new Error(`assertion failed: range ${offsetBytes}+${lengthBytes} is not whole ${B}-byte blocks`);
    }
    this.requireOpen();
    this.addRange(offsetBytes, offsetBytes + lengthBytes);
    this.kick();
  }

  /** Merges [start, end) into the dirty set (touching or overlapping ranges become one). */
  private addRange(start: number, end: number): void {
    const merged: [number, number][] = [];
    for (const [s, e] of this.dirty) {
      if (e < start || s > end) merged.push([s, e]);
      else {
        start = Math.min(start, s);
        end = Math.max(end, e);
      }
    }
    merged.push([start, end]);
    merged.sort((a, b) => a[0] - b[0]);
    this.dirty = merged;
  }

  /**
   * On command: resolves once every range queued so far is copied (a failed range is tried again
   * now: the operator may have fixed the cause); rejects with the hook's error if it gives up again.
   */
  async sync(): Promise<void> {
    this.requireOpen();
    if (this.dirty.length > 0) this.kick();
    while (this.running !== undefined) await this.running;
    if (this.dirty.length > 0 && this.lastError !== undefined) throw this.lastError;
  }

  /** One drain at a time; ranges that arrive while it runs are picked up by it or the next one. */
  private kick(): void {
    if (this.running !== undefined || this.closed) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.dirty.length > 0 && this.lastError === undefined) this.kick();
    });
  }

  /** Ranges not yet copied, in bytes. */
  get pendingBytes(): number {
    return this.dirty.reduce((n, [s, e]) => n + e - s, 0);
  }

  private async drain(): Promise<void> {
    this.lastError = undefined;
    while (this.dirty.length > 0 && !this.closed) {
      const [start, end] = this.dirty.shift()!;
      let attempt = 0;
      for (;;) {
        try {
          await this.invoke(start, end - start);
          this.lastError = undefined;
          this.counters.bytesCopied += end - start;
          this.counters.lastSuccessMs = Date.now();
          this.emit("copied", start, end - start);
          break;
        } catch (error) {
          this.counters.failures++;
          const failure = error as LunlinkError;
          if (attempt++ >= this.options.retries || this.closed) {
            // Give up for now; the range stays dirty so nothing is lost, and sync() reports it.
            this.addRange(start, end);
            this.lastError = failure;
            if (this.listenerCount("error") > 0) this.emit("error", failure);
            return;
          }
          await new Promise((r) => setTimeout(r, this.options.retryDelayMs));
        }
      }
    }
  }

  private invoke(offsetBytes: number, lengthBytes: number): Promise<void> {
    this.counters.invocations++;
    const env = {
      ...process.env,
      LUNLINK_SRC: this.options.source,
      LUNLINK_DST: this.options.destination,
      LUNLINK_OFFSET: String(this.options.sourceOffsetBytes + offsetBytes),
      LUNLINK_DST_OFFSET: String(this.options.destinationOffsetBytes + offsetBytes),
      LUNLINK_LENGTH: String(lengthBytes),
      LUNLINK_BLOCK_SIZE: String(this.options.blockBytes),
    };
    return new Promise<void>((resolve, reject) => {
      // Its own process group, so a timeout kills the whole pipeline the command started.
      const child = spawn("/bin/sh", ["-c", this.options.command], { env, stdio: ["ignore", "ignore", "pipe"], detached: true });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        stderr = (stderr + chunk).slice(-STDERR_KEEP_BYTES);
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL"); // the group is already gone: make sure the shell is
        }
      }, this.options.timeoutMs);
      child.on("error", (error) => {
        clearTimeout(timer);
        reject(new LunlinkError(ErrorCode.System, `mirror hook could not start: ${error.message}`, { cause: error }));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        if (code === 0) return resolve();
        const range = `bytes ${offsetBytes}..${offsetBytes + lengthBytes}`;
        const why = timedOut ? `did not finish within ${this.options.timeoutMs} ms (killed)` : signal !== null ? `was killed by ${signal}` : `exited ${code}${code === 127 ? " (command not found)" : ""}`;
        reject(new LunlinkError(ErrorCode.IoError, `mirror hook for ${range} ${why}${stderr.trim() === "" ? "" : `: ${stderr.trim()}`}`));
      });
    });
  }
}
