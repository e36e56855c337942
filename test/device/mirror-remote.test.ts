// The remote mirror between two network namespaces joined by their own veth (the replication link,
// 198.18.0.0/15 inside the namespaces only): `lunlink mirror serve` in one, `lunlink mirror push` in
// the other, loop devices as send and receive volumes. An appender process writes frames, a tailer
// process reads them from the receive volume (acking through a third volume), and the test cuts and
// restores the link, or kills the pusher with SIGKILL and restarts it, mid-stream: every frame must
// arrive exactly once, in order, by hash.
import test, { type ExecutionContext } from "ava";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

import { STATUS_SLOT_BLOCKS } from "../../lib/format/layout.ts";
import { readStamp } from "../../lib/format/record.ts";
import { decodeStatus, pickStatus } from "../../lib/format/status.ts";
import { Volume } from "../../lib/index.ts";
import { mirrorStatus } from "../../lib/mirror/status.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { jsonLines, type JsonLines } from "../helpers/json-lines.ts";
import { attachLoop } from "../helpers/loop.ts";
import { connect, createNamespace, setLink, spawnIn } from "../helpers/netns.ts";
import { expectedHash } from "../helpers/ring-payloads.ts";
import { sparseFile } from "../helpers/scratch.ts";
import { sleep } from "../helpers/exec.ts";

const CLI = new URL("../helpers/lunlink-cli.ts", import.meta.url).pathname;
const PEER = new URL("../helpers/ring-peer.ts", import.meta.url).pathname;
const FRAMES = 3000;
const RING_BLOCKS = 128n;
const PORT = 7433;

interface Rig {
  src: string;
  dst: string;
  nsA: string;
  nsB: string;
  linkEnd: { ns: string; dev: string };
  to: string;
  server: JsonLines & { kill(signal: NodeJS.Signals): void };
}

async function rig(t: ExecutionContext, subnet: string): Promise<Rig> {
  const [src, dst] = [await attachLoop(t, await sparseFile(t, 8 * 1024 * 1024, "src.img"), { directIo: true }), await attachLoop(t, await sparseFile(t, 8 * 1024 * 1024, "dst.img"), { directIo: true })];
  const v = await Volume.open(src, { dsync: true });
  await formatVolume(v, { writerNode: 1, peerNode: 2, ringBlocks: RING_BLOCKS });
  await v.close();
  const nsA = await createNamespace(t, "push");
  const nsB = await createNamespace(t, "serve");
  const veth = await connect(nsA, nsB, subnet, "r");
  const to = `${veth.b.address}:${PORT}`;
  const server = await serve(t, nsB, to, dst);
  return { src, dst, nsA, nsB, linkEnd: veth.a, to, server };
}

async function serve(t: ExecutionContext, ns: string, to: string, dst: string): Promise<JsonLines & { kill(signal: NodeJS.Signals): void }> {
  const child = spawnIn(t, ns, process.execPath, ["--import=tsx", CLI, "mirror", "serve", "--listen", to, "--volume", dst, "--json"]);
  const server = { ...jsonLines(child, "serve"), kill: (signal: NodeJS.Signals) => child.kill(signal) };
  await server.until((l) => l.event === "listening");
  return server;
}

/** Lines a pusher printed last, kept for a failure's diagnosis (json-lines hands each line to one reader only). */
const PUSHER_HISTORY_LINES = 20;

type Pusher = JsonLines & { kill(signal: NodeJS.Signals): void; history(): string; running(): boolean; died: Promise<string> };

function pusher(t: ExecutionContext, r: Rig, label = "push"): Pusher {
  const child = spawnIn(t, r.nsA, process.execPath, ["--import=tsx", CLI, "mirror", "push", r.src, "--to", r.to, "--ack-timeout-ms", "1000", "--json"]);
  const lines = jsonLines(child, label);
  const last: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    last.push(line);
    if (last.length > PUSHER_HISTORY_LINES) last.shift();
  });
  // A pusher that died (a signal, or an event loop left with nothing to wait for: exit code 13) says nothing on stdout.
  let state = "running";
  const died = new Promise<string>((resolve) => child.on("exit", (code, signal) => resolve((state = `exited with code ${code} signal ${signal}`))));
  const history = (): string => `${label} (${state}): ${last.join("\n  ")}${lines.stderr() === "" ? "" : `\n  stderr: ${lines.stderr().slice(-2000)}`}`;
  return { ...lines, kill: (signal) => child.kill(signal), history, running: () => state === "running", died: died.then(() => `${label} ${state}`) };
}

function peer(t: ExecutionContext, args: string[]): JsonLines {
  const child = spawn(process.execPath, ["--import=tsx", PEER, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return jsonLines(child, args[0]!);
}

/** Waits (bounded) until the receive volume's status head has passed `records` more records. */
async function copiedPast(dst: string, records: bigint): Promise<bigint> {
  const volume = await Volume.open(dst, { readOnly: true });
  try {
    let first: bigint | undefined;
    for (let n = 0; n < 1000; n++) {
      const status = pickStatus(decodeStatus(await volume.read(STATUS_SLOT_BLOCKS[0] * 4096, 4096)), decodeStatus(await volume.read(STATUS_SLOT_BLOCKS[1] * 4096, 4096)));
      if (status !== undefined) {
        first ??= status.headSeq;
        if (status.headSeq >= first + records) return status.headSeq;
      }
      await sleep(20);
    }
    throw new Error(`the receive volume's head did not advance ${records} records within 20 s`);
  } finally {
    await volume.close();
  }
}

/** Ring blocks that differ between the volumes, with both stamps (a diagnostic for a failure). */
async function ringDifferences(r: Rig): Promise<string[]> {
  const [src, dst] = [await Volume.open(r.src, { readOnly: true }), await Volume.open(r.dst, { readOnly: true })];
  try {
    const bytes = Number(RING_BLOCKS + 4n) * 4096;
    const [x, y] = [await src.read(0, bytes), await dst.read(0, bytes)];
    const out: string[] = [];
    for (let k = 3; k < Number(RING_BLOCKS) + 3; k++) {
      const [p, q] = [x.subarray(k * 4096, (k + 1) * 4096), y.subarray(k * 4096, (k + 1) * 4096)];
      if (Buffer.compare(p, q) !== 0) out.push(`block ${k}: source ${JSON.stringify(readStamp(p, 0), (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v))} copy ${JSON.stringify(readStamp(q, 0), (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v))}`);
    }
    return out;
  } finally {
    await src.close();
    await dst.close();
  }
}

/** Heads of both volumes, as `lunlink mirror status` reads them. */
async function heads(r: Rig): Promise<string> {
  const [src, dst] = [await Volume.open(r.src, { readOnly: true }), await Volume.open(r.dst, { readOnly: true })];
  try {
    const s = await mirrorStatus(src, dst);
    return `source head ${s.source.headSeq} epoch ${s.source.epoch}; copy head ${s.destination.headSeq} epoch ${s.destination.epoch}, newest intact record ${s.destination.newestSeq}; ${s.state}`;
  } finally {
    await src.close();
    await dst.close();
  }
}

/**
 * A stream that did not finish names why: the tailer's last progress line (frames, seq, lost,
 * damaged, overruns, lag), the pushers' last events, both status heads and the ring blocks that differ.
 */
async function diagnosis(r: Rig, error: unknown, tailer: JsonLines, pushers: readonly Pusher[]): Promise<Error> {
  const progress = tailer.stderr().split("\n").filter((l) => l.startsWith('{"progress"')).at(-1) ?? "no progress line";
  const differences = await ringDifferences(r);
  const detail = [
    (error as Error).message.split("; stderr:")[0],
    `tailer's last progress: ${progress}`,
    ...pushers.map((p) => p.history()),
    await heads(r),
    `${differences.length} ring block(s) differ${differences.length === 0 ? "" : `:\n  ${differences.slice(0, 40).join("\n  ")}`}`,
  ];
  return new Error(detail.join("\n"), { cause: error });
}

/** Starts tailer then appender (acks through their own volume), and returns their final reports. */
async function stream(t: ExecutionContext, r: Rig, during: () => Promise<void>, pushers: () => readonly Pusher[] = () => []) {
  const acks = await sparseFile(t, 4 * 1024 * 1024, "acks.img");
  const v = await Volume.open(acks, { dsync: true });
  await formatVolume(v, { writerNode: 2, peerNode: 1, ringBlocks: 64n });
  await v.close();
  const tailer = peer(t, ["tailer", r.dst, acks, String(FRAMES)]);
  t.deepEqual(await tailer.next(), { ready: true });
  const appender = peer(t, ["appender", r.src, acks, String(FRAMES)]);
  await during();
  // Bounds that hold on a loaded machine: the pusher is killed and restarted meanwhile (node start-up, resync).
  let written: { framesDropped: number; overwrittenUnacked: number; bytesWritten: number };
  let read: { count: number; inOrder: boolean; corrupt: number; hash: string; lost: number; overruns: number };
  // A pusher that dies while the stream runs fails the test at once, not 50 s later through the tailer.
  const died = Promise.race(pushers().filter((p) => p.running()).map((p) => p.died.then((why) => Promise.reject(new Error(`${why} while the stream ran`)))));
  died.catch(() => undefined);
  try {
    written = (await Promise.race([appender.next(50_000), died])) as typeof written;
    read = (await Promise.race([tailer.next(50_000), died])) as typeof read;
  } catch (error) {
    throw await diagnosis(r, error, tailer, pushers());
  }
  t.is(await appender.exited, 0, appender.stderr());
  t.is(await tailer.exited, 0, tailer.stderr());
  t.is(read.count, FRAMES);
  t.true(read.inOrder, "in order");
  t.is(read.corrupt, 0);
  t.is(read.hash, expectedHash(FRAMES), "every frame exactly once");
  t.is(read.lost, 0);
  t.is(written.framesDropped, 0);
  t.is(written.overwrittenUnacked, 0);
  return { written, read };
}

test("cut and restore the replication link mid-stream: nothing lost or duplicated", async (t) => {
  const r = await rig(t, "198.18.41");
  const push = pusher(t, r);
  await push.until((l) => l.event === "resync");
  let down: Record<string, unknown> | undefined;
  await stream(
    t,
    r,
    async () => {
      await copiedPast(r.dst, 150n);
      await setLink(r.linkEnd, false);
      down = await push.until((l) => l.event === "connection-down", 15_000);
      await setLink(r.linkEnd, true);
      await push.until((l) => l.event === "resync", 20_000);
    },
    () => [push],
  );
  t.regex(String(down?.detail), /no answer for 1000 ms|ENETUNREACH|EHOSTUNREACH/);
  push.kill("SIGTERM");
  const done = await push.until((l) => l.event === "done");
  t.true((done.reconnects as number) >= 1, `reconnects ${done.reconnects}`);
  t.true((done.resyncs as number) >= 1);
  t.is(await push.exited, 0, push.stderr());
});

test("kill -9 the pusher mid-copy and start it again: nothing lost or duplicated; once in sync, a restart sends no ring block", async (t) => {
  const r = await rig(t, "198.18.42");
  const first = pusher(t, r, "first push");
  await first.until((l) => l.event === "resync");
  let second: Pusher | undefined;
  await stream(
    t,
    r,
    async () => {
      await copiedPast(r.dst, 150n);
      first.kill("SIGKILL");
      await first.exited;
      second = pusher(t, r, "second push");
      await second.until((l) => l.event === "resync", 20_000);
    },
    () => (second === undefined ? [first] : [first, second]),
  );
  // Everything the tailer read is on the receive volume: a pusher restarted now finds the ring equal.
  second!.kill("SIGKILL");
  await second!.exited;
  const third = pusher(t, r, "third push");
  const before = await ringDifferences(r);
  const resync = await third.until((l) => l.event === "resync", 20_000);
  if (resync.blocksCopied !== 0) t.log(before.join("\n"));
  t.is(resync.blocksCopied, 0, "no ring block differs");
  t.is(resync.blocksSkipped, Number(RING_BLOCKS));
  const src = await Volume.open(r.src, { readOnly: true });
  const dst = await Volume.open(r.dst, { readOnly: true });
  const status = await mirrorStatus(src, dst);
  await src.close();
  await dst.close();
  t.is(status.state, "in-sync");
  t.is(status.lagRecords, 0n);
});

test("kill -9 the server mid-copy and start it again: the pusher reconnects, nothing lost or duplicated", async (t) => {
  const r = await rig(t, "198.18.43");
  const push = pusher(t, r);
  await push.until((l) => l.event === "resync");
  await stream(
    t,
    r,
    async () => {
      await copiedPast(r.dst, 150n);
      r.server.kill("SIGKILL");
      await r.server.exited;
      await push.until((l) => l.event === "connection-down", 15_000);
      await serve(t, r.nsB, r.to, r.dst);
      await push.until((l) => l.event === "resync", 20_000);
    },
    () => [push],
  );
  push.kill("SIGTERM");
  const done = await push.until((l) => l.event === "done");
  t.true((done.reconnects as number) >= 1, `reconnects ${done.reconnects}`);
});
