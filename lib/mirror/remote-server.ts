// RemoteMirrorServer: the far end of the remote mirror (`lunlink mirror serve`). It listens on the
// replication link, takes one pusher session at a time (a newer connection replaces the older, whose
// unapplied messages are dropped once its current write has finished), and applies the session's
// messages strictly in order: Hello is checked against the destination (size, sector size, and the
// pair/volume check unless force), SumsRequests are answered from O_DIRECT reads, Writes (whole
// blocks only, inside the volume) go to the destination with O_DIRECT and are acked once fdatasync
// made them durable. Bounds: received-but-unapplied bytes (the socket pauses past queueLimitBytes),
// one frame in the decoder, one I/O buffer per session. Memory a parked request owns is never
// reused: each session has its own buffer, and one whose request stalled (ERR_LUNLINK_IO_STALLED)
// is retired with its session. Supervision: a destination fault (stall, EIO, ENOSPC) ends the
// session with the error's code (the pusher backs off and reconnects), is reported once per change
// of state, and the next session applies nothing until every parked request has returned.
import { EventEmitter } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

import { MIN_VOLUME_BLOCKS, isValidBlockSize } from "../format/layout.ts";
import { ErrorCode, LunlinkError, integerOption } from "../errors.ts";
import { SupervisorCore, classifyFault, settledWithin, untilRecovered } from "../io/supervisor.ts";
import type { Volume } from "../io/volume.ts";
import { MIRROR_FATAL_REASONS, healthChange, mirrorRecovery, type HealthChange } from "./health.ts";
import { MAX_WRITE_BYTES, MessageDecoder, blockSums, encodeMessage, type Message } from "./protocol.ts";
import { checkDestination } from "./ring-mirror.ts";

export interface RemoteMirrorServerOptions {
  host: string;
  /** 0: any free port (read it from server.address). */
  port: number;
  /** Accept a pusher whose volume differs from the one the destination holds (default false). */
  force?: boolean;
  /** Received bytes not yet applied before the socket is paused (default 8 MiB). */
  queueLimitBytes?: number;
  /** close() waits at most this long for the session's last write and sync (default 5000 ms). */
  closeTimeoutMs?: number;
}

/** What close() could not finish within its bound. */
export interface ServerCloseReport {
  /** True when the last session's writes were all applied and synced. */
  flushed: boolean;
  /** Requests still parked in the kernel on the destination (they land when the device answers). */
  parkedRequests: number;
  detail: string;
}

export interface RemoteMirrorServerCounters {
  sessions: number;
  writes: number;
  bytesWritten: number;
  syncs: number;
  sumsBlocks: number;
  errors: number;
  lastWriteWallMs: number;
  /** Session buffers dropped because a request stalled on them (never reused: the kernel owns them). */
  buffersRetired: number;
  /** Sessions that had to wait for the destination's parked requests before applying anything. */
  sessionsHeld: number;
}

export interface RemoteMirrorServerEvents {
  session: [peer: string];
  /** A session ended: `reason` is why (peer closed, replaced, refused, an error). */
  sessionEnd: [peer: string, reason: string];
  /** The destination's health changed (once per change, not per retry). */
  state: [HealthChange];
  error: [Error];
}

/** Most bytes one SumsRequest may make the server read. */
const MAX_SUMS_READ_BYTES = 4 * 1024 * 1024;
/** One session's I/O buffer: a write or a sums read, one at a time. */
const SESSION_BUFFER_BYTES = Math.max(MAX_WRITE_BYTES, MAX_SUMS_READ_BYTES);

export class RemoteMirrorServer extends EventEmitter<RemoteMirrorServerEvents> {
  readonly destination: Volume;
  readonly counters: RemoteMirrorServerCounters = { sessions: 0, writes: 0, bytesWritten: 0, syncs: 0, sumsBlocks: 0, errors: 0, lastWriteWallMs: 0, buffersRetired: 0, sessionsHeld: 0 };
  readonly force: boolean;
  readonly queueLimitBytes: number;
  readonly closeTimeoutMs: number;
  /** The destination's health; the pusher does the backing off (it reconnects), so no delays here. */
  readonly supervisor = new SupervisorCore("mirror serve", performance.now(), mirrorRecovery({}));
  private readonly server: Server;
  private active: ServerSession | undefined;
  private latest: ServerSession | undefined;
  private readonly closing = new AbortController();

  private constructor(destination: Volume, server: Server, options: RemoteMirrorServerOptions) {
    super();
    this.destination = destination;
    this.server = server;
    this.force = options.force === true;
    this.queueLimitBytes = integerOption("queueLimitBytes", options.queueLimitBytes, 8 * 1024 * 1024, MAX_WRITE_BYTES, 1024 * 1024 * 1024);
    this.closeTimeoutMs = integerOption("closeTimeoutMs", options.closeTimeoutMs, 5000, 0, 600_000);
    server.on("connection", (socket) => this.accept(socket));
  }

  static async listen(destination: Volume, options: RemoteMirrorServerOptions): Promise<RemoteMirrorServer> {
    integerOption("port", options.port, 0, 0, 65535);
    const server = createServer({ noDelay: true });
    const mirror = new RemoteMirrorServer(destination, server, options);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(new LunlinkError(ErrorCode.System, `mirror serve: cannot listen on ${options.host}:${options.port}: ${error.code ?? error.message}`, { cause: error })),
      );
      server.listen(options.port, options.host, () => resolve());
    });
    server.on("error", (error) => mirror.emit("error", error));
    return mirror;
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /**
   * Stops listening and ends the session after its current write, waiting at most closeTimeoutMs;
   * says what it could not finish (a write parked on a stalled destination lands when it answers).
   */
  async close(): Promise<ServerCloseReport> {
    this.closing.abort();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const session = this.latest;
    this.active = undefined;
    const ended = session === undefined || (await settledWithin(session.end("server closing"), this.closeTimeoutMs));
    await settledWithin(closed, this.closeTimeoutMs);
    const flushed = ended && session?.unflushed !== true;
    const parkedRequests = this.destination.stalled ? this.destination.inFlight : 0;
    const detail = flushed
      ? "every applied write is durable"
      : `${ended ? "the last session's writes were not all synced" : `the last session's write did not finish within ${this.closeTimeoutMs} ms`}${parkedRequests > 0 ? `; ${parkedRequests} request(s) parked on ${this.destination.path}` : ""}`;
    return { flushed, parkedRequests, detail };
  }

  /** Resolves once the destination has no parked request (or the server closes): nothing is applied before. */
  untilDestinationAnswers(): Promise<void> {
    return untilRecovered([this.destination], this.closing.signal);
  }

  /** A session's I/O on the destination failed: report the fault (once per change of state). */
  destinationFault(error: unknown): void {
    if (classifyFault(error, false, MIRROR_FATAL_REASONS) === "config") return;
    const { change } = this.supervisor.failed(performance.now(), error, false);
    if (change !== undefined) this.emit("state", healthChange(change, error instanceof Error ? error.message : String(error)));
  }

  /** A session's I/O on the destination succeeded. */
  destinationHealthy(detail: string): void {
    const change = this.supervisor.opened(performance.now());
    if (change !== undefined) this.emit("state", healthChange(change, detail));
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    // The last session, even one that already ended: a write it started may still be in the kernel,
    // and must land before the new session reads a checksum or writes anything.
    const previous = this.latest;
    const session = new ServerSession(this, socket, previous);
    this.active = session;
    this.latest = session;
    this.counters.sessions++;
    this.emit("session", session.peer);
    void previous?.end(`replaced by a new session from ${session.peer}`);
  }

  /** Called by a session when it ends, with why. */
  ended(session: ServerSession, reason: string, error?: Error): void {
    if (this.active === session) this.active = undefined;
    if (error !== undefined) {
      this.counters.errors++;
      // A destination fault is reported through "state", once per change, not once per session.
      if (classifyFault(error, false, MIRROR_FATAL_REASONS) === "config" && this.listenerCount("error") > 0) this.emit("error", error);
    }
    this.emit("sessionEnd", session.peer, reason);
  }
}

/** Errors the pusher should not retry: the destination will not take this source. */
export const REFUSALS: ReadonlySet<string> = new Set([ErrorCode.WrongPair, ErrorCode.VolumeTooSmall, ErrorCode.Misaligned, ErrorCode.BadPeerMessage, ErrorCode.PeerRefused]);

class ServerSession {
  readonly peer: string;
  private readonly owner: RemoteMirrorServer;
  private readonly socket: Socket;
  private readonly decoder = new MessageDecoder();
  private readonly queue: Message[] = [];
  private queuedBytes = 0;
  private closed = false;
  private working: Promise<void> | undefined;
  /** The session this one replaced: its last write must finish before this one applies anything. */
  private previous: ServerSession | undefined;
  private blockBytes = 0;
  private volumeBytes = 0;
  private lastSeq = 0;
  private unsynced = false;
  /** This session's aligned I/O buffer; dropped (never reused) once a request on it stalled. */
  private buffer: Uint8Array | undefined;

  constructor(owner: RemoteMirrorServer, socket: Socket, previous: ServerSession | undefined) {
    this.owner = owner;
    this.socket = socket;
    this.previous = previous;
    this.peer = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", () => undefined); // "close" follows and says what matters
    socket.on("close", () => void this.end("peer closed the connection"));
  }

  /** Writes applied and not yet synced (the unapplied ones are dropped when a session ends). */
  get unflushed(): boolean {
    return this.unsynced;
  }

  /** Stops taking messages, drops the unapplied ones, waits for the one being applied. */
  async end(reason: string, error?: Error): Promise<void> {
    this.stop(reason, error);
    await this.working?.catch(() => undefined);
  }

  /** end() without the wait: what the apply loop itself calls (it must not wait for itself). */
  private stop(reason: string, error?: Error): void {
    if (!this.closed) {
      this.closed = true;
      this.queue.length = 0;
      this.queuedBytes = 0;
      if (error instanceof LunlinkError && !this.socket.destroyed) this.socket.end(encodeMessage({ type: "error", code: error.code, message: error.message }));
      setTimeout(() => this.socket.destroy(), 1000).unref();
      this.owner.ended(this, reason, error);
    }
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.decoder.push(chunk);
      for (let m = this.decoder.next(); m !== undefined; m = this.decoder.next()) {
        this.queue.push(m);
        this.queuedBytes += m.type === "write" ? m.data.length : 64;
      }
    } catch (error) {
      this.stop("bad message", error as Error);
      return;
    }
    if (this.queuedBytes > this.owner.queueLimitBytes) this.socket.pause();
    this.working ??= this.apply().finally(() => {
      this.working = undefined;
    });
  }

  private async apply(): Promise<void> {
    if (this.previous !== undefined) {
      await this.previous.end("replaced");
      this.previous = undefined;
    }
    // A write the previous session started may be parked in the kernel past its deadline: it must
    // land before this session reads a checksum or writes anything (it would overwrite newer data).
    if (this.owner.destination.stalled) this.owner.counters.sessionsHeld++;
    await this.owner.untilDestinationAnswers();
    try {
      while (!this.closed && this.queue.length > 0) {
        const message = this.queue.shift()!;
        this.queuedBytes -= message.type === "write" ? message.data.length : 64;
        if (this.queuedBytes <= this.owner.queueLimitBytes / 2 && this.socket.isPaused()) this.socket.resume();
        await this.handle(message);
        // Ack once durable: at the end of what has arrived (whatever the last message was: a pusher
        // whose window is full waits for this ack and sends nothing more until it comes).
        if (this.queue.length === 0) await this.sync();
      }
    } catch (error) {
      if (error instanceof LunlinkError && error.code === ErrorCode.IoStalled && this.buffer !== undefined) {
        this.buffer = undefined; // a parked request owns it: retired, never handed out again
        this.owner.counters.buffersRetired++;
      }
      this.owner.destinationFault(error);
      this.stop(error instanceof LunlinkError ? `error: ${error.code}` : "error", error as Error);
    }
  }

  /** This session's I/O buffer, `bytes` long (allocated on first use). */
  private view(bytes: number): Uint8Array {
    this.buffer ??= this.owner.destination.alloc(SESSION_BUFFER_BYTES);
    return this.buffer.subarray(0, bytes);
  }

  private send(message: Message): void {
    if (!this.closed) this.socket.write(encodeMessage(message));
  }

  private refuse(code: ErrorCode, message: string): never {
    throw new LunlinkError(code, message);
  }

  private async handle(message: Message): Promise<void> {
    const destination = this.owner.destination;
    if (message.type !== "hello" && this.blockBytes === 0) this.refuse(ErrorCode.BadPeerMessage, `mirror peer ${this.peer} sent ${message.type} before hello`);
    switch (message.type) {
      case "hello": {
        if (this.blockBytes !== 0) this.refuse(ErrorCode.BadPeerMessage, `mirror peer ${this.peer} said hello twice`);
        if (!isValidBlockSize(message.blockBytes) || message.volumeBlocks < MIN_VOLUME_BLOCKS) {
          this.refuse(ErrorCode.BadPeerMessage, `mirror peer ${this.peer} announced a volume of ${message.volumeBlocks} blocks of ${message.blockBytes} bytes`);
        }
        await checkDestination({ volumeUuid: message.volumeUuid, blockBytes: message.blockBytes, volumeBlocks: BigInt(message.volumeBlocks) }, `${this.peer} (volume ${message.volumeUuid})`, destination, this.owner.force);
        this.blockBytes = message.blockBytes;
        this.volumeBytes = message.volumeBlocks * message.blockBytes;
        this.send({ type: "welcome", destinationBytes: Number(destination.geometry.sizeBytes), logicalBlockBytes: destination.geometry.logicalBlockSize });
        return;
      }
      case "sumsRequest": {
        const B = this.blockBytes;
        const bytes = message.blockCount * B;
        if (bytes > MAX_SUMS_READ_BYTES || (message.firstBlock + message.blockCount) * B > this.volumeBytes) {
          this.refuse(ErrorCode.BadPeerMessage, `mirror peer ${this.peer} asked for sums of blocks ${message.firstBlock}+${message.blockCount} (volume of ${this.volumeBytes / B} blocks, at most ${MAX_SUMS_READ_BYTES / B} per request)`);
        }
        const view = this.view(bytes);
        await destination.read(message.firstBlock * B, view);
        this.owner.destinationHealthy("destination read");
        this.owner.counters.sumsBlocks += message.blockCount;
        this.send({ type: "sums", requestId: message.requestId, firstBlock: message.firstBlock, blockCount: message.blockCount, sums: blockSums(view, B, message.blockCount) });
        return;
      }
      case "write": {
        const B = this.blockBytes;
        const length = message.data.length;
        // Never a partial block, never outside the volume the pusher announced.
        if (message.offsetBytes % B !== 0 || length % B !== 0 || length > MAX_WRITE_BYTES || message.offsetBytes + length > this.volumeBytes) {
          this.refuse(ErrorCode.BadPeerMessage, `mirror peer ${this.peer} sent a write of ${length} bytes at ${message.offsetBytes} (whole ${B}-byte blocks inside ${this.volumeBytes} bytes expected)`);
        }
        if (message.seq <= this.lastSeq) this.refuse(ErrorCode.BadPeerMessage, `mirror peer ${this.peer} sent write seq ${message.seq} after ${this.lastSeq}`);
        const view = this.view(length);
        view.set(message.data);
        await destination.write(message.offsetBytes, view);
        this.lastSeq = message.seq;
        this.unsynced = true;
        this.owner.counters.writes++;
        this.owner.counters.bytesWritten += length;
        this.owner.counters.lastWriteWallMs = Date.now();
        return;
      }
      case "welcome":
      case "sums":
      case "ack":
        this.refuse(ErrorCode.BadPeerMessage, `mirror peer ${this.peer} sent ${message.type}, which only a server sends`);
      // falls through: refuse() never returns
      case "error":
        throw new LunlinkError(ErrorCode.PeerRefused, `mirror peer ${this.peer} reported ${message.code}: ${message.message}`);
    }
  }

  private async sync(): Promise<void> {
    if (!this.unsynced) return;
    await this.owner.destination.flush();
    this.unsynced = false;
    this.owner.destinationHealthy("destination writes durable");
    this.owner.counters.syncs++;
    this.send({ type: "ack", seq: this.lastSeq });
  }
}
