// RemoteMirrorPusher: the near end of the remote mirror (`lunlink mirror push`). It reads the send
// volume with O_DIRECT and copies it to a RemoteMirrorServer over a dedicated replication link.
// Session: connect -> Hello {volume and pair UUID, block size, volume size} -> Welcome (or a coded
// refusal) -> checksum resync (the server's XXH3-128 of each ring block against ours; only the blocks
// that differ are sent, ring end first) -> follow the ring (RingMirror: later blocks of a record
// before its first, status after the records it names). Writes are acked by the server once
// durable; at most windowBytes are sent and unacked. A write unacked for ackTimeoutMs, or any socket
// error, ends the session (noticed at the mirror's next periodic step even with nothing left to write:
// the server drops what it had not applied); so does a fault of the source volume (stall, EIO) or one
// the server reports for the destination (its code kept). The supervisor (ring-mirror.ts) waits it out and
// backs off (retryMinMs doubling to retryMaxMs, jittered), reconnects and resyncs by checksums
// again, which makes resuming correct by construction.
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

import { RING_START_BLOCK } from "../format/layout.ts";
import { ErrorCode, LunlinkError, integerOption } from "../errors.ts";
import type { Volume } from "../io/volume.ts";
import { RingReader } from "../ring/reader.ts";
import { openSuperblock } from "../ring/superblocks.ts";
import { MAX_SUMS_BLOCKS, MAX_WRITE_BYTES, MessageDecoder, SUM_BYTES, blockSums, encodeMessage, type Message } from "./protocol.ts";
import { REFUSALS } from "./remote-server.ts";
import { RingMirror, resolveMirrorOptions, type MirrorCloseReport, type RingMirrorOptions } from "./ring-mirror.ts";
import type { BlockSink } from "./sink.ts";
import { mirrorReaderNode } from "./region.ts";

export interface RemoteMirrorPusherOptions extends RingMirrorOptions {
  host: string;
  port: number;
  /** Bytes sent and not yet acked before writes wait (default 8 MiB). */
  windowBytes?: number;
  /** A write unacked this long (or a sums request unanswered) means the link is lost (default 5000 ms). */
  ackTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Resync once and return, instead of following (default false). */
  once?: boolean;
}

export interface RemoteLinkCounters {
  connects: number;
  reconnects: number;
  bytesSent: number;
  writesAcked: number;
  /** Date.now() of the last ack: the last time data was known durable on the far volume. */
  lastAckWallMs: number;
  lastError: string;
}

/** Codes the server reports for its destination volume that are faults to wait out, not refusals. */
const DESTINATION_FAULTS: ReadonlySet<string> = new Set([ErrorCode.IoStalled, ErrorCode.IoError, ErrorCode.NoSpace, ErrorCode.NotFound, ErrorCode.ShortIo]);

/** Sums requests in flight during a resync (the next chunks are compared while this one is sent). */
const SUMS_AHEAD = 2;

export class RemoteMirrorPusher extends RingMirror {
  readonly link: RemoteLinkCounters = { connects: 0, reconnects: 0, bytesSent: 0, writesAcked: 0, lastAckWallMs: 0, lastError: "" };
  private readonly remote: Required<Omit<RemoteMirrorPusherOptions, keyof RingMirrorOptions>>;
  private session: RemoteSession | undefined;
  /** An established session is up: a "down" is announced once when it is lost, not per failed reconnect. */
  private connected = false;
  /** Bytes the last session had sent and not seen acked when it ended. */
  private unackedAtEnd = 0;

  private constructor(source: Volume, superblock: RemoteMirrorPusher["superblock"], options: RemoteMirrorPusherOptions) {
    super(source, superblock, resolveMirrorOptions(options), "mirror push");
    this.remote = {
      host: options.host,
      port: integerOption("port", options.port, 0, 1, 65535),
      windowBytes: integerOption("windowBytes", options.windowBytes, 8 * 1024 * 1024, MAX_WRITE_BYTES, 1024 * 1024 * 1024),
      ackTimeoutMs: integerOption("ackTimeoutMs", options.ackTimeoutMs, 5000, 10, 600_000),
      connectTimeoutMs: integerOption("connectTimeoutMs", options.connectTimeoutMs, 3000, 10, 600_000),
      once: options.once === true,
    };
  }

  static async open(source: Volume, options: RemoteMirrorPusherOptions): Promise<RemoteMirrorPusher> {
    const { superblock } = await openSuperblock(source);
    return new RemoteMirrorPusher(source, superblock, options);
  }

  protected get sink(): BlockSink {
    if (this.session === undefined) throw new Error("assertion failed: no session to write to");
    return this.session;
  }

  protected get volumes(): readonly Volume[] {
    return [this.source];
  }

  /** Stops following; a session stuck on a lost link is cut after a short grace. */
  override async stop(): Promise<MirrorCloseReport> {
    const grace = setTimeout(() => this.session?.destroy(new LunlinkError(ErrorCode.Aborted, "mirror push stopped")), Math.min(1000, this.options.closeTimeoutMs));
    try {
      const report = await super.stop();
      const unacked = this.session?.unackedBytes ?? this.unackedAtEnd;
      return unacked === 0 ? report : { ...report, flushed: false, detail: `${report.detail}; ${unacked} bytes sent and not acked as durable` };
    } finally {
      clearTimeout(grace);
    }
  }

  /** One session (once mode: until one resync completed; else following until stop()). */
  protected async attempt(): Promise<void> {
    try {
      this.session = await RemoteSession.open(this);
      this.link.connects++;
      this.connected = true;
      this.emit("connection", "up", `${this.remote.host}:${this.remote.port}`);
      if (this.remote.once) {
        this.reader = await RingReader.open(this.source, { nodeId: mirrorReaderNode(this.superblock), start: "head", framingOnly: true });
        await this.resync();
        return;
      }
      await this.follow();
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      this.link.lastError = e.message;
      if (this.connected && this.task.running) this.emit("connection", "down", e.message);
      this.connected = false;
      throw e;
    } finally {
      this.unackedAtEnd = this.session?.unackedBytes ?? 0;
      this.session?.end();
      this.session = undefined;
    }
  }

  protected override retrying(): void {
    this.link.reconnects++;
  }

  /** One resync over the current session: compare per-block checksums, send only what differs. */
  async resync(): Promise<void> {
    const session = this.session;
    if (session === undefined) throw new Error("assertion failed: resync without a session");
    const B = this.blockBytes;
    const chunkBlocks = Math.max(1, Math.min(Math.floor(this.options.resyncChunkBytes / B), MAX_SUMS_BLOCKS, Math.floor(MAX_WRITE_BYTES / B)));
    const chunks = this.resyncChunks(chunkBlocks);
    const progress = this.startResync();
    const buffers = Array.from({ length: SUMS_AHEAD + 1 }, () => this.source.alloc(chunkBlocks * B));
    // Chunk i: its destination sums and its source bytes, fetched SUMS_AHEAD chunks ahead.
    const fetch = (i: number): Promise<[Uint8Array, Uint8Array]> => {
      const [start, end] = chunks[i]!;
      const view = buffers[i % buffers.length]!.subarray(0, (end - start) * B);
      return Promise.all([session.sums(RING_START_BLOCK + start, end - start), this.source.read((RING_START_BLOCK + start) * B, view)]);
    };
    const ahead: Promise<[Uint8Array, Uint8Array]>[] = [];
    for (let i = 0; i < Math.min(SUMS_AHEAD, chunks.length); i++) ahead.push(fetch(i));
    try {
      for (let i = 0; i < chunks.length; i++) {
        const [theirs, ours] = await ahead.shift()!;
        if (i + SUMS_AHEAD < chunks.length) ahead.push(fetch(i + SUMS_AHEAD));
        const [start, end] = chunks[i]!;
        const count = end - start;
        const mine = blockSums(ours, B, count);
        // Runs of differing blocks, sent highest first: a record's later blocks land before its first.
        let runEnd = count;
        for (let k = count - 1; k >= -1; k--) {
          const same = k >= 0 && sameSum(mine, theirs, k);
          if (k >= 0 && !same) continue;
          if (k + 1 < runEnd) {
            await session.write((RING_START_BLOCK + start + k + 1) * B, ours.subarray((k + 1) * B, runEnd * B));
            this.counters.blocksCopied += runEnd - (k + 1);
            progress.bytes += (runEnd - (k + 1)) * B;
          }
          if (same) this.counters.blocksSkipped++;
          runEnd = k;
        }
        progress.blocksDone += count;
        this.emit("progress", { ...progress });
      }
    } finally {
      for (const pending of ahead) pending.catch(() => undefined); // the session failed: abandoned, not unhandled
    }
    await this.finishResync(progress);
  }

  /** What a session announces: the source volume's identity and geometry. */
  get hello(): Extract<Message, { type: "hello" }> {
    const sb = this.superblock;
    return { type: "hello", volumeUuid: sb.volumeUuid, pairUuid: sb.pairUuid, blockBytes: sb.blockBytes, writerNode: sb.writerNode, volumeBlocks: Number(sb.volumeBlocks) };
  }

  /** Session settings, for RemoteSession. */
  get settings(): Readonly<RemoteMirrorPusher["remote"]> {
    return this.remote;
  }
}

function sameSum(a: Uint8Array, b: Uint8Array, block: number): boolean {
  for (let i = block * SUM_BYTES; i < (block + 1) * SUM_BYTES; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One TCP session to the server: the BlockSink a RemoteMirrorPusher writes through. */
class RemoteSession implements BlockSink {
  private readonly pusher: RemoteMirrorPusher;
  private readonly socket: Socket;
  private readonly decoder = new MessageDecoder();
  private readonly label: string;
  private failure: Error | undefined;
  private nextSeq = 1;
  private ackedSeq = 0;
  /** Sent, unacked writes, oldest first (bounded by windowBytes). */
  private readonly unacked: { seq: number; bytes: number; sentAtMs: number }[] = [];
  private unackedTotal = 0;

  /** Bytes sent and not yet acked as durable by the server. */
  get unackedBytes(): number {
    return this.unackedTotal;
  }
  private nextRequestId = 1;
  private readonly sumsWaiting = new Map<number, { resolve: (sums: Uint8Array) => void; reject: (error: Error) => void; sentAtMs: number; firstBlock: number; blockCount: number }>();
  private welcome: { resolve: () => void; reject: (error: Error) => void } | undefined;
  /** Woken on every ack and on failure. */
  private waiters: (() => void)[] = [];
  private readonly watchdog: NodeJS.Timeout;

  private constructor(pusher: RemoteMirrorPusher, socket: Socket) {
    this.pusher = pusher;
    this.socket = socket;
    const { host, port, ackTimeoutMs } = pusher.settings;
    this.label = `mirror server ${host}:${port}`;
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (error: NodeJS.ErrnoException) => this.fail(new LunlinkError(ErrorCode.PeerLost, `${this.label}: ${error.code ?? error.message}`, { cause: error })));
    socket.on("close", () => this.fail(new LunlinkError(ErrorCode.PeerLost, `${this.label} closed the connection`)));
    this.watchdog = setInterval(() => {
      const now = performance.now();
      const oldest = Math.min(this.unacked[0]?.sentAtMs ?? now, ...[...this.sumsWaiting.values()].map((w) => w.sentAtMs));
      if (now - oldest > ackTimeoutMs) this.destroy(new LunlinkError(ErrorCode.PeerLost, `${this.label}: no answer for ${ackTimeoutMs} ms (link down?)`));
    }, Math.max(5, Math.floor(ackTimeoutMs / 4)));
  }

  static async open(pusher: RemoteMirrorPusher): Promise<RemoteSession> {
    const { host, port, connectTimeoutMs } = pusher.settings;
    const socket = connect({ host, port, noDelay: true });
    socket.setKeepAlive(true, 1000);
    const session = new RemoteSession(pusher, socket);
    const timer = setTimeout(() => session.destroy(new LunlinkError(ErrorCode.PeerLost, `${session.label}: no session within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        session.welcome = { resolve, reject };
        session.send(pusher.hello);
      });
    } catch (error) {
      session.destroy(error as Error);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return session;
  }

  /** Ends the session now (RST, nothing lingers to arrive later); every wait rejects with `why`. */
  destroy(why: Error): void {
    this.fail(why);
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  /** Ends the session: gracefully when it is healthy (everything was flushed), at once if not. */
  end(): void {
    if (this.failure === undefined) {
      this.fail(new LunlinkError(ErrorCode.PeerLost, `${this.label}: session ended`));
      this.socket.end();
    } else if (!this.socket.destroyed) {
      this.socket.resetAndDestroy();
    }
  }

  async write(offsetBytes: number, bytes: Uint8Array): Promise<void> {
    const { windowBytes } = this.pusher.settings;
    for (let at = 0; at < bytes.length; at += MAX_WRITE_BYTES) {
      const piece = bytes.subarray(at, Math.min(bytes.length, at + MAX_WRITE_BYTES));
      await this.until(() => this.unackedTotal === 0 || this.unackedTotal + piece.length <= windowBytes);
      const seq = this.nextSeq++;
      this.send({ type: "write", seq, offsetBytes: offsetBytes + at, data: piece });
      this.unacked.push({ seq, bytes: piece.length, sentAtMs: performance.now() });
      this.unackedTotal += piece.length;
    }
  }

  /** Why the session ended (the link lost, the server's error), or undefined while it is up. */
  lost(): Error | undefined {
    return this.failure;
  }

  /** Resolves once every write sent so far is durable on the far volume. */
  async flush(): Promise<void> {
    const last = this.nextSeq - 1;
    await this.until(() => this.ackedSeq >= last);
  }

  /** The far volume's XXH3-128 of blocks [firstBlock, firstBlock + blockCount). */
  sums(firstBlock: number, blockCount: number): Promise<Uint8Array> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const requestId = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      this.sumsWaiting.set(requestId, { resolve, reject, sentAtMs: performance.now(), firstBlock, blockCount });
      this.send({ type: "sumsRequest", requestId, firstBlock, blockCount });
    });
  }

  private send(message: Message): void {
    if (this.failure !== undefined) throw this.failure;
    const frame = encodeMessage(message);
    this.pusher.link.bytesSent += frame.length;
    this.socket.write(frame);
  }

  private async until(ready: () => boolean): Promise<void> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (ready()) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private wakeAll(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  private fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    clearInterval(this.watchdog);
    this.welcome?.reject(error);
    for (const waiting of this.sumsWaiting.values()) waiting.reject(error);
    this.sumsWaiting.clear();
    this.wakeAll();
  }

  private receive(chunk: Buffer): void {
    try {
      this.decoder.push(chunk);
      for (let m = this.decoder.next(); m !== undefined; m = this.decoder.next()) this.handle(m);
    } catch (error) {
      // A corrupted stream: end this session (the pusher reconnects and resyncs).
      this.destroy(error instanceof LunlinkError ? new LunlinkError(ErrorCode.PeerLost, `${this.label}: ${error.message}`, { cause: error }) : (error as Error));
    }
  }

  private handle(message: Message): void {
    switch (message.type) {
      case "welcome": {
        const welcome = this.welcome;
        this.welcome = undefined;
        welcome?.resolve();
        return;
      }
      case "ack": {
        if (message.seq < this.ackedSeq || message.seq >= this.nextSeq) throw new LunlinkError(ErrorCode.BadPeerMessage, `ack of seq ${message.seq}, expected ${this.ackedSeq}..${this.nextSeq - 1}`);
        this.ackedSeq = message.seq;
        while (this.unacked.length > 0 && this.unacked[0]!.seq <= message.seq) this.unackedTotal -= this.unacked.shift()!.bytes;
        this.pusher.link.writesAcked = message.seq;
        this.pusher.link.lastAckWallMs = Date.now();
        this.wakeAll();
        return;
      }
      case "sums": {
        const waiting = this.sumsWaiting.get(message.requestId);
        if (waiting === undefined || waiting.firstBlock !== message.firstBlock || waiting.blockCount !== message.blockCount) {
          throw new LunlinkError(ErrorCode.BadPeerMessage, `sums for request ${message.requestId} (blocks ${message.firstBlock}+${message.blockCount}) nobody asked for`);
        }
        this.sumsWaiting.delete(message.requestId);
        waiting.resolve(message.sums);
        return;
      }
      case "error": {
        // The server's refusal keeps its code (WRONG_PAIR, VOLUME_TOO_SMALL...) when it is one of ours.
        // Anything else (an I/O error on the far volume) ends this session only: retried.
        // A fault of the far volume (stall, EIO, ENOSPC) keeps its code too: the supervisor reports it
        // as such and waits it out.
        const known = (Object.values(ErrorCode) as string[]).includes(message.code) ? (message.code as ErrorCode) : ErrorCode.PeerRefused;
        const kept = REFUSALS.has(known) || DESTINATION_FAULTS.has(known);
        this.fail(kept ? new LunlinkError(known, `${this.label}: ${message.message}`) : new LunlinkError(ErrorCode.PeerLost, `${this.label} ended the session: ${message.code}: ${message.message}`));
        return;
      }
      default:
        throw new LunlinkError(ErrorCode.BadPeerMessage, `${this.label} sent ${message.type}, which only a pusher sends`);
    }
  }
}
