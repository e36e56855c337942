// mirror: (1) full-resync throughput: LocalMirror and the remote mirror (`mirror push --once` to
// `mirror serve` over a veth between two network namespaces this bench creates, 198.18.0.0/15 inside
// them only) against `dd bs=1M iflag=direct oflag=direct` between the same two loop devices
// (--direct-io=on), in the same run; the remote rows once with every block different (the copy
// is zeroed first) and once with the copy already equal (checksum compare only). (2) continuous-mode
// lag: a RingWriter appends 1 KiB frames stamped with their append time at 1 MB/s, 10 MB/s and as fast
// as it can; a Poller on the receive volume reads them through the local mirror and through the
// remote one; lag = append -> frame read on the copy (batching, write, copy, poll), p50/p99.
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";

import { FrameType } from "../lib/format/layout.ts";
import { Poller, RingReader, RingWriter, Volume, formatVolume } from "../lib/index.ts";
import { LocalMirror } from "../lib/mirror/local.ts";
import { jsonLines } from "../test/helpers/json-lines.ts";
import { connect, createNamespace, spawnIn, type Teardown } from "../test/helpers/netns.ts";
import { machineLine } from "./machine.ts";
import { withScratch } from "./scratch.ts";
import { mbps, numberArg, percentile, ratio, table } from "./stats.ts";

const VOLUME_BYTES = 512 * 1024 * 1024;
const CLI = new URL("../test/helpers/lunlink-cli.ts", import.meta.url).pathname;
const PORT = 7434;
const FRAME_BYTES = 1024;
/** Most frames one pacing tick appends (bounds the loop when the writer falls behind). */
const MAX_FRAMES_PER_TICK = 2000;

/** Cleanups run in reverse at the end (namespaces, processes), also when a step failed. */
class Cleanups implements Teardown {
  private readonly fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.fns.reverse()) await fn();
  }
}

interface LagResult {
  frames: number;
  lost: number;
  p50Us: number;
  p99Us: number;
  achievedMBps: number;
}

/** Appends stamped frames at `rateMBps` (0: as fast as the writer takes them) for `seconds`; reads them on `copy`. */
async function lagRun(sendPath: string, copyPath: string, rateMBps: number, seconds: number): Promise<LagResult> {
  const copy = await Volume.open(copyPath, { readOnly: true });
  const send = await Volume.open(sendPath, { dsync: true });
  const reader = await RingReader.open(copy, { nodeId: 2, start: "head" });
  const lagsUs: number[] = [];
  /** When the measured frames start (performance.now ms); frames stamped before it are the warm-up. */
  let t0 = Number.POSITIVE_INFINITY;
  let warmedUp = false;
  const poller = new Poller(reader, {
    pollMinUs: 100,
    pollMaxMs: 1,
    statusPollMs: 20,
    onFrame: (_seq, _type, _flags, bytes, offset) => {
      const sentAtMs = new DataView(bytes.buffer, bytes.byteOffset + offset, 8).getFloat64(0, true);
      // The warm-up frame may arrive after the clock started (a slow first copy): it is not one of `sent`.
      if (sentAtMs < t0) warmedUp = true;
      else lagsUs.push((performance.now() - sentAtMs) * 1000);
    },
  });
  poller.start();
  const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 1, fullQueue: "wait", statusIntervalMs: 10 });
  const payload = new Uint8Array(FRAME_BYTES);
  const stamp = new DataView(payload.buffer);
  // Warm-up: the writer's new epoch reaches the copy and the reader adopts it before the clock runs.
  stamp.setFloat64(0, performance.now(), true);
  await writer.append(FrameType.Data, payload);
  await writer.flush();
  for (let n = 0; n < 1000 && !warmedUp; n++) await new Promise((r) => setTimeout(r, 5));
  t0 = performance.now();
  let sent = 0;
  const frameRate = (rateMBps * 1e6) / FRAME_BYTES;
  while (performance.now() - t0 < seconds * 1000) {
    const due = rateMBps > 0 ? Math.min(MAX_FRAMES_PER_TICK, Math.floor(((performance.now() - t0) / 1000) * frameRate) - sent) : 64;
    for (let i = 0; i < due; i++) {
      stamp.setFloat64(0, performance.now(), true);
      await writer.append(FrameType.Data, payload);
      sent++;
    }
    if (rateMBps > 0) await new Promise((r) => setTimeout(r, 1));
  }
  const elapsedS = (performance.now() - t0) / 1000;
  await writer.flush();
  for (let n = 0; n < 500 && lagsUs.length + Number(reader.counters.lost) < sent; n++) await new Promise((r) => setTimeout(r, 10));
  await poller.stop();
  await writer.close();
  await send.close();
  await copy.close();
  lagsUs.sort((a, b) => a - b);
  return { frames: lagsUs.length, lost: sent - lagsUs.length, p50Us: percentile(lagsUs, 50), p99Us: percentile(lagsUs, 99), achievedMBps: (sent * FRAME_BYTES) / 1e6 / elapsedS };
}

function lagRow(mode: string, rate: string, r: LagResult): string[] {
  return [mode, rate, r.achievedMBps.toFixed(1), String(r.frames), String(r.lost), (r.p50Us / 1000).toFixed(2), (r.p99Us / 1000).toFixed(2)];
}

const RATES: [string, number][] = [
  ["1 MB/s", 1],
  ["10 MB/s", 10],
  ["max", 0],
];

export async function mirrorBench(args: string[]): Promise<void> {
  const rounds = numberArg(args, "--rounds", 3);
  const seconds = numberArg(args, "--seconds", 3);
  await withScratch(async (scratch) => {
    const source = scratch.loop("send.img", VOLUME_BYTES);
    const destination = scratch.loop("receive.img", VOLUME_BYTES);
    console.log(`# mirror: full resync vs dd bs=1M iflag=direct oflag=direct, ${VOLUME_BYTES / 1024 / 1024} MiB, best of ${rounds}; remote over a veth between two namespaces`);
    console.log(machineLine());
    console.log(`volumes: ${source} -> ${destination} (loop, dio=on, over files on ext4)\n`);
    const src = await Volume.open(source, { dsync: true });
    const { superblock } = await formatVolume(src, { writerNode: 1, peerNode: 2, force: true });
    await src.close();
    const ringBytes = Number(superblock.ringBlocks) * superblock.blockBytes;
    let lunlinkBest = 0;
    let ddBest = 0;
    for (let r = 0; r < rounds; r++) {
      const a = await Volume.open(source, { readOnly: true });
      const b = await Volume.open(destination);
      const mirror = await LocalMirror.open(a, b, { force: true });
      const t0 = performance.now();
      await mirror.resync();
      const s = (performance.now() - t0) / 1000;
      lunlinkBest = Math.max(lunlinkBest, VOLUME_BYTES / s);
      await a.close();
      await b.close();
      const t1 = performance.now();
      execFileSync("dd", [`if=${source}`, `of=${destination}`, "bs=1M", "iflag=direct", "oflag=direct", "conv=notrunc", "status=none"]);
      ddBest = Math.max(ddBest, VOLUME_BYTES / ((performance.now() - t1) / 1000));
    }

    const cleanups = new Cleanups();
    try {
      const nsA = await createNamespace(cleanups, "bpush");
      const nsB = await createNamespace(cleanups, "bserve");
      const veth = await connect(nsA, nsB, "198.18.90", "b");
      const to = `${veth.b.address}:${PORT}`;
      const serverProcess = spawnIn(cleanups, nsB, process.execPath, ["--import=tsx", CLI, "mirror", "serve", "--listen", to, "--volume", destination, "--force", "--json"]);
      const server = jsonLines(serverProcess, "serve");
      await server.until((l) => l.event === "listening");
      const pushOnce = async (): Promise<{ lastResyncMs: number; blocksCopied: number }> => {
        const push = jsonLines(spawnIn(cleanups, nsA, process.execPath, ["--import=tsx", CLI, "mirror", "push", source, "--to", to, "--once", "--json"]), "push");
        const done = await push.until((l) => l.event === "done", 120_000);
        return done as unknown as { lastResyncMs: number; blocksCopied: number };
      };
      let differBest = 0;
      let equalBest = 0;
      let copied = 0;
      for (let r = 0; r < rounds; r++) {
        execFileSync("dd", ["if=/dev/zero", `of=${destination}`, "bs=1M", "oflag=direct", "conv=notrunc", "status=none", `count=${VOLUME_BYTES / 1024 / 1024}`]);
        const differ = await pushOnce();
        copied = differ.blocksCopied;
        differBest = Math.max(differBest, ringBytes / (differ.lastResyncMs / 1000));
        const equal = await pushOnce();
        equalBest = Math.max(equalBest, ringBytes / (equal.lastResyncMs / 1000));
      }
      console.log(
        table(
          ["copy", "MB/s", "vs dd"],
          [
            ["LocalMirror.resync", mbps(lunlinkBest), ratio(lunlinkBest, ddBest)],
            [`remote push, every block differs (${copied} blocks sent)`, mbps(differBest), ratio(differBest, ddBest)],
            ["remote push, copy already equal (compare only)", mbps(equalBest), ratio(equalBest, ddBest)],
            ["dd bs=1M direct (local, no network)", mbps(ddBest), "1.00"],
          ],
        ),
      );
      console.log("remote: MB/s of the ring compared per second (pusher's own resync clock, status and superblock included)\n");

      console.log(`# mirror lag: append -> frame read on the copy by a Poller (poll 100 us doubling to 1 ms), 1 KiB frames, ${seconds} s per row`);
      const rows: string[][] = [];
      const pushProcess = spawnIn(cleanups, nsA, process.execPath, ["--import=tsx", CLI, "mirror", "push", source, "--to", to, "--poll-max-ms", "1", "--json"]);
      const push = jsonLines(pushProcess, "push");
      await push.until((l) => l.event === "resync", 120_000);
      for (const [label, rate] of RATES) rows.push(lagRow("remote (TCP, veth)", label, await lagRun(source, destination, rate, seconds)));
      // One mirror writes the copy at a time: the remote pair stops before the local one starts.
      pushProcess.kill("SIGTERM");
      await push.exited;
      serverProcess.kill("SIGTERM");
      await server.exited;
      await runLocalLag(source, destination, seconds, rows);
      console.log(table(["mirror", "offered", "achieved MB/s", "frames", "lost", "p50 ms", "p99 ms"], rows));
    } finally {
      await cleanups.run();
    }
  });
}

async function runLocalLag(source: string, destination: string, seconds: number, rows: string[][]): Promise<void> {
  const a = await Volume.open(source, { readOnly: true });
  const b = await Volume.open(destination);
  const mirror = await LocalMirror.open(a, b, { force: true, pollMinUs: 100, pollMaxMs: 1 });
  const resynced = new Promise<void>((resolve) => mirror.once("resync", () => resolve()));
  mirror.start();
  await resynced;
  try {
    for (const [label, rate] of RATES) rows.push(lagRow("local (LocalMirror)", label, await lagRun(source, destination, rate, seconds)));
  } finally {
    await mirror.stop();
    await a.close();
    await b.close();
  }
}
