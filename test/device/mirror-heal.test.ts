// The mirror heals itself (issue 11), with faults produced for real (DESIGN.md section 5): a source
// or destination served by nbdkit behind a loop device, SIGSTOPped past ioTimeoutMs (a stall without
// an error) or failing every request with EIO; a sparse destination on a full ext4 that then gets
// space (ENOSPC). Each time the running mirror reports the fault once, carries on by itself without
// a restart, and the destination ends byte-equal to the source over the ring. Assertions are on
// states, counters and bytes, never on durations (waits are bounded loops).
import test, { type ExecutionContext } from "ava";
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { rm } from "node:fs/promises";

import { FrameType, RingWriter, Volume, formatVolume } from "../../lib/index.ts";
import { RING_START_BLOCK } from "../../lib/format/layout.ts";
import { LocalMirror } from "../../lib/mirror/local.ts";
import { MessageDecoder, encodeMessage, type Message } from "../../lib/mirror/protocol.ts";
import { RemoteMirrorPusher } from "../../lib/mirror/remote-pusher.ts";
import { RemoteMirrorServer } from "../../lib/mirror/remote-server.ts";
import type { RingMirror } from "../../lib/mirror/ring-mirror.ts";
import type { HealthChange } from "../../lib/mirror/health.ts";
import { sparseFileOnFullExt4 } from "../helpers/ext4.ts";
import { sleep } from "../helpers/exec.ts";
import { jsonLines } from "../helpers/json-lines.ts";
import { mirrorFrame } from "../helpers/mirror-stream.ts";
import { faultDevice, type FaultDevice } from "../helpers/nbd.ts";
import { sparseFile } from "../helpers/scratch.ts";

const CLI = new URL("../helpers/lunlink-cli.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;
const B = 4096;
const RING_BLOCKS = 256n;
/** The mirror's volumes: a request unanswered this long is parked and the volume marked stalled. */
const IO_TIMEOUT_MS = 300;
const FAST = { statusCopyMs: 5, pollMinUs: 50, pollMaxMs: 2, retryMinMs: 20, retryMaxMs: 200, closeTimeoutMs: 3000 } as const;

/** "healthy", "faulted:stall"...: what the supervisor reported, in order. */
function recordStates(emitter: { on(event: "state", listener: (change: HealthChange) => void): unknown }): string[] {
  const states: string[] = [];
  emitter.on("state", (change) => states.push(`${change.health}${change.fault === null ? "" : `:${change.fault}`}`));
  return states;
}

/** Waits (bounded: 20 s in 20 ms steps) until `ready()`; fails the test with `what` if it never is. */
async function until(t: ExecutionContext, what: string, ready: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await ready()) return;
    await sleep(20);
  }
  t.fail(`not within 20 s: ${what}`);
  throw new Error(`not within 20 s: ${what}`);
}

/** A send volume at `path`, formatted, with a writer whose own deadline rides out the test's stalls. */
async function sendVolume(t: ExecutionContext, path: string): Promise<{ writer: RingWriter; append(from: number, count: number): Promise<void> }> {
  const volume = await Volume.open(path, { dsync: true, ioTimeoutMs: 30_000 });
  t.teardown(() => volume.close().catch(() => undefined));
  await formatVolume(volume, { writerNode: 1, peerNode: 2, ringBlocks: RING_BLOCKS, force: true });
  const writer = await RingWriter.open(volume, { nodeId: 1, maxDelayMs: 0 });
  t.teardown(() => writer.close().catch(() => undefined));
  return {
    writer,
    append: async (from, count) => {
      for (let i = from; i < from + count; i++) await writer.append(FrameType.Control, mirrorFrame(i));
      await writer.flush();
    },
  };
}

/** True when the ring region (and the superblock) of both paths hold the same bytes. */
async function ringsEqual(sourcePath: string, destinationPath: string): Promise<boolean> {
  const [a, b] = [await Volume.open(sourcePath, { readOnly: true }), await Volume.open(destinationPath, { readOnly: true })];
  try {
    const bytes = Number(RING_BLOCKS) * B;
    const [x, y] = [await a.read(RING_START_BLOCK * B, bytes), await b.read(RING_START_BLOCK * B, bytes)];
    const [s, d] = [await a.read(0, B), await b.read(0, B)];
    return Buffer.compare(x, y) === 0 && Buffer.compare(s, d) === 0;
  } finally {
    await a.close();
    await b.close();
  }
}

function startMirror(t: ExecutionContext, mirror: RingMirror): Promise<void> {
  const resynced = new Promise<void>((resolve) => mirror.once("resync", () => resolve()));
  const errors: Error[] = [];
  mirror.on("error", (error) => errors.push(error));
  mirror.start();
  t.teardown(async () => {
    await mirror.stop().catch(() => undefined);
    if (errors.length > 0) t.log(`mirror errors: ${errors.map((e) => e.message).join("; ")}`);
  });
  return resynced;
}

/** The mirror's volumes (source read-only), closed in teardown; `destinationIoTimeoutMs` defaults to the source's. */
async function mirrorVolumes(t: ExecutionContext, sourcePath: string, destinationPath: string, ioTimeoutMs = IO_TIMEOUT_MS, destinationIoTimeoutMs = ioTimeoutMs): Promise<{ source: Volume; destination: Volume }> {
  const source = await Volume.open(sourcePath, { readOnly: true, ioTimeoutMs });
  const destination = await Volume.open(destinationPath, { ioTimeoutMs: destinationIoTimeoutMs });
  t.teardown(async () => {
    await source.close().catch(() => undefined);
    await destination.close().catch(() => undefined);
  });
  return { source, destination };
}

interface MirrorSetup {
  fault: FaultDevice;
  send: Awaited<ReturnType<typeof sendVolume>>;
  sourcePath: string;
  destinationPath: string;
}

/** The send volume on a fault device (the mirror's source stalls or fails), the copy on a 16 MiB sparse file. */
async function faultySource(t: ExecutionContext): Promise<MirrorSetup> {
  const fault = await faultDevice(t, 16);
  const send = await sendVolume(t, fault.device);
  return { fault, send, sourcePath: fault.device, destinationPath: await sparseFile(t, 16 * MiB, "copy.img") };
}

/** The send volume on a 4 MiB sparse file, the copy on a fault device (the mirror's destination stalls or fails). */
async function faultyDestination(t: ExecutionContext): Promise<MirrorSetup> {
  const sourcePath = await sparseFile(t, 4 * MiB, "send.img");
  const send = await sendVolume(t, sourcePath);
  const fault = await faultDevice(t, 16);
  return { fault, send, sourcePath, destinationPath: fault.device };
}

/** Starts `mirror`, appends records 0..count-1 and waits until the copy holds them; returns its recorded states. */
async function startCopying(t: ExecutionContext, mirror: RingMirror, setup: MirrorSetup, count: number): Promise<string[]> {
  const states = recordStates(mirror);
  await startMirror(t, mirror);
  await setup.send.append(0, count);
  await until(t, "the first records copied", () => ringsEqual(setup.sourcePath, setup.destinationPath));
  return states;
}

/** A mirror server on loopback for `destination`, closed in teardown. */
async function serve(t: ExecutionContext, destination: Volume): Promise<RemoteMirrorServer> {
  const server = await RemoteMirrorServer.listen(destination, { host: "127.0.0.1", port: 0, force: true, closeTimeoutMs: 3000 });
  t.teardown(() => server.close().then(() => undefined));
  return server;
}

function pusherTo(server: RemoteMirrorServer, source: Volume): Promise<RemoteMirrorPusher> {
  return RemoteMirrorPusher.open(source, { host: "127.0.0.1", port: server.address.port, ackTimeoutMs: 1000, ...FAST });
}

test("mirror copy --follow: the source stalls past ioTimeoutMs, then answers: the mirror reports it once, resumes by itself, the copy ends byte-equal", async (t) => {
  const setup = await faultySource(t);
  const { fault, send, destinationPath } = setup;
  const { source, destination } = await mirrorVolumes(t, fault.device, destinationPath);
  const mirror = await LocalMirror.open(source, destination, { ...FAST, force: true });
  const states = await startCopying(t, mirror, setup, 40);

  fault.stop();
  await until(t, "the stall reported", () => states.includes("faulted:stall"));
  t.true(source.stalled, "the mirror's read is parked on the source");
  fault.resume();
  await until(t, "healthy again", () => states.at(-1) === "healthy");
  await send.append(40, 40);
  await until(t, "the copy equal to the source", () => ringsEqual(fault.device, destinationPath));

  t.log(`states ${states.join(" -> ")}; supervisor ${JSON.stringify(mirror.supervisor.counters)}; resyncs ${mirror.counters.resyncs}`);
  t.deepEqual(states, ["healthy", "faulted:stall", "healthy"], "one report per change of state");
  t.true(mirror.supervisor.counters.stalls >= 1);
  t.is(mirror.supervisor.counters.recoveries, 1);
  t.true(mirror.counters.resyncs >= 2, "a resync after the fault");
  const report = await mirror.stop();
  t.true(report.flushed, report.detail);
});

test("mirror copy --follow: the destination stalls, then fails with EIO for a while: each fault reported once, healed without a restart, byte-equal", async (t) => {
  const setup = await faultyDestination(t);
  const { fault, send, sourcePath } = setup;
  const { source, destination } = await mirrorVolumes(t, sourcePath, fault.device);
  const mirror = await LocalMirror.open(source, destination, { ...FAST, force: true });
  const states = await startCopying(t, mirror, setup, 30);

  fault.stop();
  await until(t, "the stall reported", () => states.includes("faulted:stall"));
  await send.append(30, 30); // the source moves on while the copy is stuck
  fault.resume();
  await until(t, "healthy after the stall", () => states.at(-1) === "healthy");

  await fault.setFailing(true);
  await send.append(60, 30);
  await until(t, "the EIO reported", () => states.includes("faulted:io-error"));
  const retriesDuringEio = mirror.supervisor.counters.retries;
  await until(t, "retried while failing (backing off)", () => mirror.supervisor.counters.retries >= retriesDuringEio + 2);
  await fault.setFailing(false);
  await until(t, "healthy after EIO", () => states.at(-1) === "healthy" && states.length === 5);
  await send.append(90, 30);
  await until(t, "the copy equal to the source", () => ringsEqual(sourcePath, fault.device));

  t.log(`states ${states.join(" -> ")}; supervisor ${JSON.stringify(mirror.supervisor.counters)}; resyncs ${mirror.counters.resyncs}`);
  t.deepEqual(states, ["healthy", "faulted:stall", "healthy", "faulted:io-error", "healthy"], "one report per change of state, not per retry");
  t.true(mirror.supervisor.counters.ioErrors >= 3, `${mirror.supervisor.counters.ioErrors} EIO attempts`);
  t.is(mirror.supervisor.counters.recoveries, 2);
});

test("mirror copy --follow: ENOSPC on a sparse destination until the file system gets space, then the copy completes by itself", async (t) => {
  const sourcePath = await sparseFile(t, 4 * MiB, "send.img");
  const send = await sendVolume(t, sourcePath);
  await send.append(0, 20);
  // Sparse: every block the mirror writes needs space.
  const { path: destinationPath, filler } = await sparseFileOnFullExt4(t, 4 * MiB);
  const { source, destination } = await mirrorVolumes(t, sourcePath, destinationPath, 5000);
  const mirror = await LocalMirror.open(source, destination, FAST);
  const states = recordStates(mirror);
  const resynced = startMirror(t, mirror);
  await until(t, "ENOSPC reported", () => states.includes("faulted:no-space"));
  await until(t, "retried (backing off)", () => mirror.supervisor.counters.noSpace >= 2);
  await rm(filler);
  await resynced;
  await send.append(20, 40);
  await until(t, "the copy equal to the source", () => ringsEqual(sourcePath, destinationPath));
  t.log(`states ${states.join(" -> ")}; supervisor ${JSON.stringify(mirror.supervisor.counters)}; resyncs ${mirror.counters.resyncs}`);
  t.deepEqual(states, ["faulted:no-space", "healthy"]);
  t.is(mirror.supervisor.counters.recoveries, 1);
});

test("mirror serve / push: the server's destination stalls, then fails with EIO: the pusher reconnects by itself, the stalled buffer is retired, byte-equal", async (t) => {
  const setup = await faultyDestination(t);
  const { fault, send, sourcePath } = setup;
  const { source, destination } = await mirrorVolumes(t, sourcePath, fault.device);
  const server = await serve(t, destination);
  const serverStates = recordStates(server);
  const pusher = await pusherTo(server, source);
  const states = await startCopying(t, pusher, setup, 30);

  fault.stop();
  await until(t, "the server reports the stall", () => serverStates.includes("faulted:stall"));
  await send.append(30, 30);
  fault.resume();
  await until(t, "both healthy after the stall", () => serverStates.at(-1) === "healthy" && states.at(-1) === "healthy" && states.length >= 3);

  await fault.setFailing(true);
  await send.append(60, 30);
  await until(t, "the pusher reports the far EIO", () => states.includes("faulted:io-error"));
  await fault.setFailing(false);
  await until(t, "both healthy after EIO", () => serverStates.at(-1) === "healthy" && states.at(-1) === "healthy" && states.length >= 5);
  await send.append(90, 30);
  await until(t, "the copy equal to the source", () => ringsEqual(sourcePath, fault.device));

  t.log(`pusher ${states.join(" -> ")}; server ${serverStates.join(" -> ")}; pusher ${JSON.stringify(pusher.supervisor.counters)}; reconnects ${pusher.link.reconnects}; server ${JSON.stringify(server.counters)}`);
  t.true(server.counters.buffersRetired >= 1, "the buffer of the stalled write was retired, not reused");
  t.deepEqual(serverStates.filter((s) => s !== "healthy"), ["faulted:stall", "faulted:io-error"], `server: ${serverStates.join(", ")}`);
  t.is(states[0], "healthy");
  t.true(states.includes("faulted:io-error"), `pusher: ${states.join(", ")}`);
  t.false(states.includes("failed"), `pusher: ${states.join(", ")}`);
  t.true(pusher.link.reconnects >= 2);
});

test("lunlink mirror copy --follow --json: one state line per change through a source stall, and SIGTERM reports a flushed close", async (t) => {
  const { fault, send, destinationPath } = await faultySource(t);
  await send.append(0, 20);
  const args = ["mirror", "copy", fault.device, destinationPath, "--follow", "--json", "--io-timeout-ms", String(IO_TIMEOUT_MS), "--retry-min-ms", "20", "--retry-max-ms", "200"];
  const child = spawn(process.execPath, ["--import=tsx", CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  const lines = jsonLines(child, "mirror copy");
  t.like(await lines.next(), { event: "state", component: "mirror copy", health: "healthy" });
  fault.stop();
  t.like(await lines.next(), { event: "state", health: "faulted", fault: "stall", code: "ERR_LUNLINK_IO_STALLED" });
  fault.resume();
  t.like(await lines.next(), { event: "state", health: "healthy", fault: null });
  await send.append(20, 20);
  await until(t, "the copy equal to the source", () => ringsEqual(fault.device, destinationPath));
  child.kill("SIGTERM");
  t.like(await lines.next(), { event: "closed", flushed: true, pendingBytes: 0 });
  t.like(await lines.next(), { event: "done", supervisor: { health: "healthy", stalls: 1, recoveries: 1 } });
  t.is(await lines.exited, 0, lines.stderr());
});

test("mirror push: the source stalls past ioTimeoutMs, then answers: the pusher ends the session, reconnects by itself once the source answers, byte-equal", async (t) => {
  const setup = await faultySource(t);
  const { fault, send, destinationPath } = setup;
  const { source, destination } = await mirrorVolumes(t, fault.device, destinationPath);
  const pusher = await pusherTo(await serve(t, destination), source);
  const states = await startCopying(t, pusher, setup, 30);

  fault.stop();
  await until(t, "the stall reported", () => states.includes("faulted:stall"));
  t.true(source.stalled, "the pusher's read is parked on the source");
  fault.resume();
  await until(t, "healthy again", () => states.at(-1) === "healthy" && states.length === 3);
  await send.append(30, 30);
  await until(t, "the copy equal to the source", () => ringsEqual(fault.device, destinationPath));
  t.log(`pusher ${states.join(" -> ")}; ${JSON.stringify(pusher.supervisor.counters)}; reconnects ${pusher.link.reconnects}`);
  t.deepEqual(states, ["healthy", "faulted:stall", "healthy"]);
  t.is(pusher.link.reconnects, 1);
  const report = await pusher.stop();
  t.true(report.flushed, report.detail);
});

test("mirror serve on a really stalled device: a write parked past its deadline lands its own bytes, not the next session's", async (t) => {
  const fault = await faultDevice(t, 16);
  const destination = await Volume.open(fault.device, { ioTimeoutMs: IO_TIMEOUT_MS });
  t.teardown(() => destination.close().catch(() => undefined));
  const server = await serve(t, destination);
  const hello = { type: "hello", volumeUuid: "00000000-0000-4000-8000-000000000001", pairUuid: "00000000-0000-4000-8000-000000000002", blockBytes: B, writerNode: 1, volumeBlocks: (16 * MiB) / B } as const;

  fault.stop();
  const first = await rawClient(t, server.address.port);
  first.send(hello);
  first.send({ type: "write", seq: 1, offsetBytes: 10 * B, data: new Uint8Array(B).fill(0xaa) });
  t.is((await first.reply()).type, "error", "the write stalled: the session ends with the code");
  const second = await rawClient(t, server.address.port);
  second.send(hello);
  second.send({ type: "write", seq: 1, offsetBytes: 20 * B, data: new Uint8Array(B).fill(0xbb) });
  // Either the server holds the new session back (fixed), or it applied its write into the buffer
  // the parked request still owns, which then parks too.
  const counters = server.counters as { sessionsHeld?: number };
  await until(t, "the second session held back or its write parked", () => (counters.sessionsHeld ?? 0) >= 1 || destination.inFlight >= 2);
  fault.resume();
  await second.reply();
  await until(t, "every parked request returned", () => !destination.stalled);
  const check = await Volume.open(fault.device, { readOnly: true });
  try {
    t.deepEqual([...new Set(await check.read(10 * B, B))], [0xaa], "block 10 holds the first session's bytes");
  } finally {
    await check.close();
  }
});

/** A raw mirror protocol client (what a pusher sends), for driving the server message by message. */
async function rawClient(t: ExecutionContext, port: number): Promise<{ send(m: Message): void; reply(): Promise<Message> }> {
  const socket = connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  t.teardown(() => void socket.destroy());
  const decoder = new MessageDecoder();
  const got: Message[] = [];
  let wake: (() => void) | undefined;
  socket.on("data", (chunk: Buffer) => {
    decoder.push(chunk);
    for (let m = decoder.next(); m !== undefined; m = decoder.next()) if (m.type !== "welcome") got.push(m);
    wake?.();
  });
  socket.on("close", () => wake?.());
  return {
    send: (m) => socket.write(encodeMessage(m)),
    reply: async () => {
      for (let i = 0; i < 200 && got.length === 0 && !socket.destroyed; i++) await Promise.race([new Promise<void>((r) => (wake = r)), sleep(100)]);
      const m = got.shift();
      if (m === undefined) throw new Error("no reply from the server");
      return m;
    },
  };
}

test("stop() and close() return while the destination is still stalled, and say what they could not flush", async (t) => {
  const setup = await faultyDestination(t);
  const { fault, send, sourcePath } = setup;
  // A deadline far beyond the close bound: the stuck write is still live (not yet parked) at stop.
  const { source, destination } = await mirrorVolumes(t, sourcePath, fault.device, 5000, 20_000);
  t.teardown(() => fault.resume()); // runs before the volumes close (teardowns run last first)
  const mirror = await LocalMirror.open(source, destination, { ...FAST, force: true, closeTimeoutMs: 300 });
  await startCopying(t, mirror, setup, 20);
  fault.stop();
  await send.append(20, 20);
  await until(t, "a destination write stuck", () => destination.inFlight > 0);
  const report = await mirror.stop();
  t.false(report.flushed);
  t.regex(report.detail, /did not finish within 300 ms/);

  const stuckRequests = destination.inFlight;
  const server = await RemoteMirrorServer.listen(destination, { host: "127.0.0.1", port: 0, force: true, closeTimeoutMs: 300 });
  const pusher = await RemoteMirrorPusher.open(source, { host: "127.0.0.1", port: server.address.port, ...FAST, closeTimeoutMs: 300 });
  pusher.start();
  // Not just "the pusher sent bytes": until its hello has reached the session, the server has
  // nothing unfinished and closes flushed (seen under load). A request of the session's own on the
  // stopped destination is what it cannot finish.
  await until(t, "the server's session has a request the stopped destination cannot finish", () => destination.inFlight > stuckRequests);
  const closed = await server.close();
  t.false(closed.flushed, closed.detail);
  const pushed = await pusher.stop();
  t.false(pushed.flushed, pushed.detail);
  t.true(destination.inFlight > 0, "all three returned while the device was still stopped");
  t.log(`mirror: ${report.detail}; server: ${closed.detail}; pusher: ${pushed.detail}`);
});
