// raw: lunlink's Volume on both engines (io_uring, threads) against fio psync, fio io_uring and
// node:fs (FileHandle on the libuv pool, O_DIRECT, aligned buffer) on the same volume in the same run.
// O_DIRECT sequential write and read at 4 KiB, 64 KiB and 1 MiB, queue depth 1 and 8, on a loop
// device (--direct-io=on, so the loop driver does not serve O_DIRECT from page cache) and on a file
// on ext4. Queue depth N = N sequential streams over N equal regions (fio psync: numjobs=N,
// offset_increment; fio io_uring: one job, iodepth=N); no O_DSYNC anywhere; default options (no
// busy polling). Each cell gives every tool --seconds (default 2) in --slices slices (default 6),
// the tools in turn per slice (forward, then backward): a ratio is the median of the
// slices' paired ratios, so a machine whose speed swings moves both sides of a pair alike.
// Narrower runs (A/B comparisons on a shared machine): --targets loop,file  --ops write,read
// --blocks 4096,65536,1048576  --depths 1,8 (defaults: all). --targets file needs no loop device.
// The Volume measured is the built dist/ (what a user runs; bench/built-lib.ts), or lib/ through
// tsx with --lib src; the header names which.
import { execFileSync } from "node:child_process";
import { constants, open as openFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";

import { loadLunlink, type Lunlink } from "./built-lib.ts";
import { fio } from "./fio.ts";
import { machineLine } from "./machine.ts";
import { withScratch } from "./scratch.ts";
import { mbps, median, numberArg, pairedRatios, percentile, table } from "./stats.ts";

export interface Cell {
  bytesPerSecond: number;
  latencyUsP50: number;
  latencyUsP99: number;
  cpuPercent: number;
}

/** Each cell's tools run in this many slices, in turn (--slices). */
const DEFAULT_SLICES = 6;
/** A slice shorter than this measures mostly start-up (fio's, the volume's open). */
const MIN_SLICE_SECONDS = 0.25;

const VOLUME_BYTES = 1024 * 1024 * 1024;
type Engine = "io_uring" | "threads";
/** What a cell measures: lunlink's engines, node:fs, fio psync, fio io_uring. */
type Tool = Engine | "nodeFs" | "psync" | "fioUring";

/** Runs `depth` sequential streams of `step(streamIndex, offsetBytes)` for `seconds`. */
async function streams(blockBytes: number, depth: number, seconds: number, step: (index: number, offsetBytes: number) => Promise<unknown>): Promise<Cell> {
  const region = Math.floor(VOLUME_BYTES / depth / blockBytes) * blockBytes;
  const maxSamples = 2_000_000;
  const latencies = new Float64Array(maxSamples);
  let samples = 0;
  let bytes = 0;
  const deadline = performance.now() + seconds * 1000;
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: depth }, async (_, index) => {
      const base = index * region;
      let position = 0;
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await step(index, base + position);
        if (samples < maxSamples) latencies[samples++] = (performance.now() - t0) * 1000;
        bytes += blockBytes;
        position += blockBytes;
        if (position >= region) position = 0;
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const sorted = latencies.subarray(0, samples).sort();
  return {
    bytesPerSecond: bytes / elapsedS,
    latencyUsP50: percentile(sorted, 50),
    latencyUsP99: percentile(sorted, 99),
    cpuPercent: ((cpu.user + cpu.system) / 1e6 / elapsedS) * 100,
  };
}

async function lunlinkRun({ Volume }: Lunlink, path: string, op: "read" | "write", blockBytes: number, depth: number, seconds: number, engine: Engine): Promise<Cell> {
  const volume = await Volume.open(path, { ioThreads: depth, engine });
  if (volume.engine !== engine) throw new Error(`bench raw: engine ${engine} asked for, ${volume.engine} opened (${volume.engineFallback ?? ""})`);
  try {
    const buffers = Array.from({ length: depth }, (_, i) => volume.alloc(blockBytes).fill(i + 1));
    return await streams(blockBytes, depth, seconds, (i, at) => (op === "write" ? volume.write(at, buffers[i]!) : volume.read(at, buffers[i]!)));
  } finally {
    await volume.close();
  }
}

/** What a Node user would otherwise write: fs.promises FileHandle, O_DIRECT, aligned buffers, libuv pool. */
async function nodeFsRun({ alignedBuffer }: Lunlink, path: string, op: "read" | "write", blockBytes: number, depth: number, seconds: number): Promise<Cell> {
  const handle = await openFile(path, constants.O_RDWR | constants.O_DIRECT);
  try {
    const buffers = Array.from({ length: depth }, (_, i) => alignedBuffer(blockBytes, 4096).fill(i + 1));
    return await streams(blockBytes, depth, seconds, (i, at) =>
      op === "write" ? handle.write(buffers[i]!, 0, blockBytes, at) : handle.read(buffers[i]!, 0, blockBytes, at),
    );
  } finally {
    await handle.close();
  }
}

function fioRun(path: string, op: "read" | "write", blockBytes: number, depth: number, seconds: number, engine: "psync" | "io_uring") {
  const region = Math.floor(VOLUME_BYTES / depth / blockBytes) * blockBytes;
  const layout =
    engine === "psync"
      ? ["--ioengine=psync", `--numjobs=${depth}`, `--size=${region}`, `--offset_increment=${region}`]
      : ["--ioengine=io_uring", `--iodepth=${depth}`, `--size=${region * depth}`];
  return fio(["--name=raw", `--filename=${path}`, "--direct=1", `--rw=${op}`, `--bs=${blockBytes}`, ...layout, `--runtime=${Math.round(seconds * 1000)}ms`, "--time_based"]);
}

/** The order a cell's `toolCount` tools take in `slice`: forward in even slices, backward in odd ones (ABBA), so over each pair of slices every tool has the same mean position and neighbours stay neighbours. */
export function sliceOrder(toolCount: number, slice: number): number[] {
  const forward = Array.from({ length: toolCount }, (_, k) => k);
  return slice % 2 === 0 ? forward : forward.reverse();
}

/** One tool's slices of a cell as one cell: the median of each measure. */
export function sliceMedians(slices: readonly Cell[]): Cell {
  return {
    bytesPerSecond: median(slices.map((c) => c.bytesPerSecond)),
    latencyUsP50: median(slices.map((c) => c.latencyUsP50)),
    latencyUsP99: median(slices.map((c) => c.latencyUsP99)),
    cpuPercent: median(slices.map((c) => c.cpuPercent)),
  };
}

function fixed2(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : "n/a";
}

function loadLine(): string {
  return `load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`;
}

/** A comma-separated list option, each entry one of `allowed`; all of them if absent. */
function listArg<T extends string | number>(args: string[], name: string, allowed: readonly T[]): T[] {
  const at = args.indexOf(name);
  if (at < 0) return [...allowed];
  const chosen = (args[at + 1] ?? "").split(",").map((v) => allowed.find((a) => String(a) === v));
  if (chosen.length === 0 || chosen.some((v) => v === undefined)) throw new Error(`bench raw: ${name} takes a comma-separated subset of ${allowed.join(",")}`);
  return chosen as T[];
}

export async function rawBench(args: string[]): Promise<void> {
  const seconds = numberArg(args, "--seconds", 2);
  const slices = numberArg(args, "--slices", DEFAULT_SLICES);
  if (!Number.isInteger(slices) || seconds / slices < MIN_SLICE_SECONDS) {
    throw new Error(`bench raw: --slices takes an integer that leaves each slice at least ${MIN_SLICE_SECONDS} s of --seconds (${seconds})`);
  }
  const targets = listArg(args, "--targets", ["loop", "file"] as const);
  const ops = listArg(args, "--ops", ["write", "read"] as const);
  const blockSizes = listArg(args, "--blocks", [4096, 65536, 1048576] as const);
  const depths = listArg(args, "--depths", [1, 8] as const);
  const { lib, description } = await loadLunlink(args);
  const { Volume } = lib;
  await withScratch(async (scratch) => {
    const file = scratch.file("file.img", VOLUME_BYTES);
    const loop = targets.includes("loop") ? scratch.loop("loop.img", VOLUME_BYTES) : undefined;
    const dio = loop === undefined ? "-" : execFileSync("cat", [`/sys/block/${loop.slice(5)}/loop/dio`], { encoding: "utf8" }).trim();
    // Asks for "auto" explicitly, whatever the default (LUNLINK_ENGINE may name another).
    const probe = await Volume.open(file, { engine: "auto" });
    const autoEngine = probe.engine;
    await probe.close();

    console.log(`# raw: lunlink Volume (engines io_uring and threads) vs fio psync, fio io_uring and node:fs, O_DIRECT, no O_DSYNC, ${seconds} s per tool and cell in ${slices} slices (tools in turn)`);
    console.log(machineLine());
    console.log(`lunlink measured: ${description}`);
    console.log(`engine (auto) on this host: ${autoEngine}; ${loadLine()} at start`);
    console.log(`targets: ${loop === undefined ? "" : `loop = ${loop} over ext4 file, dio=${dio}; `}file = 1 GiB file on ext4 (/var/tmp)\n`);
    const rows: string[][] = [];
    const latencyRows: string[][] = [];
    const engines: Engine[] = autoEngine === "io_uring" ? ["io_uring", "threads"] : ["threads"];
    const paths = { loop, file };
    for (const target of targets) {
      const path = paths[target]!;
      for (const op of ops) {
        for (const blockBytes of blockSizes) {
          for (const depth of depths) {
            // Every tool once per slice: psync, lunlink's best engine and fio io_uring side by side
            // (the pairs the targets compare), forward in even slices and backward in odd ones, so
            // neither drift in the device nor a load swing favours one side.
            const order: Tool[] = ["psync", engines[0]!, "fioUring", ...(engines.length === 2 ? (["threads"] as const) : []), "nodeFs"];
            const run = (tool: Tool, sliceS: number): Promise<Cell> =>
              tool === "psync" || tool === "fioUring"
                ? fioRun(path, op, blockBytes, depth, sliceS, tool === "psync" ? "psync" : "io_uring")
                : tool === "nodeFs"
                  ? nodeFsRun(lib, path, op, blockBytes, depth, sliceS)
                  : lunlinkRun(lib, path, op, blockBytes, depth, sliceS, tool);
            const slicesOf = new Map<Tool, Cell[]>(order.map((tool) => [tool, []]));
            for (let slice = 0; slice < slices; slice++) {
              for (const k of sliceOrder(order.length, slice)) slicesOf.get(order[k]!)!.push(await run(order[k]!, seconds / slices));
            }
            const uringSlices = slicesOf.get("io_uring");
            const threadsSlices = slicesOf.get("threads")!;
            const [nodeFsSlices, psyncSlices, fioUringSlices] = (["nodeFs", "psync", "fioUring"] as const).map((tool) => slicesOf.get(tool)!) as [Cell[], Cell[], Cell[]];
            const bestSlices = uringSlices ?? threadsSlices;
            const uring = uringSlices === undefined ? undefined : sliceMedians(uringSlices);
            const [threads, nodeFs, psync, fioUring, best] = [threadsSlices, nodeFsSlices, psyncSlices, fioUringSlices, bestSlices].map(sliceMedians) as [Cell, Cell, Cell, Cell, Cell];
            const bw = (c: Cell[]) => c.map((x) => x.bytesPerSecond);
            const vsPsync = pairedRatios(bw(bestSlices), bw(psyncSlices));
            const size = blockBytes >= 1048576 ? `${blockBytes / 1048576} MiB` : `${blockBytes / 1024} KiB`;
            rows.push([
              target, op, size, String(depth),
              uring === undefined ? "-" : mbps(uring.bytesPerSecond), mbps(threads.bytesPerSecond), mbps(nodeFs.bytesPerSecond),
              mbps(psync.bytesPerSecond), mbps(fioUring.bytesPerSecond),
              fixed2(vsPsync.median), `${fixed2(vsPsync.min)}-${fixed2(vsPsync.max)}`, fixed2(pairedRatios(bw(bestSlices), bw(fioUringSlices)).median),
              fixed2(pairedRatios(bw(threadsSlices), bw(psyncSlices)).median), fixed2(pairedRatios(bw(nodeFsSlices), bw(psyncSlices)).median),
              best.cpuPercent.toFixed(0), threads.cpuPercent.toFixed(0),
            ]);
            if (blockBytes === 4096 && depth === 1) {
              const p50 = (c: Cell[]) => c.map((x) => x.latencyUsP50);
              latencyRows.push([target, op, uring === undefined ? "-" : uring.latencyUsP50.toFixed(1), threads.latencyUsP50.toFixed(1), nodeFs.latencyUsP50.toFixed(1), psync.latencyUsP50.toFixed(1), fixed2(pairedRatios(p50(bestSlices), p50(psyncSlices)).median), uring === undefined ? "-" : uring.latencyUsP99.toFixed(1), threads.latencyUsP99.toFixed(1), psync.latencyUsP99.toFixed(1)]);
            }
            console.error(`  done ${target} ${op} ${size} qd${depth}: ${mbps(best.bytesPerSecond)} vs psync ${mbps(psync.bytesPerSecond)} MB/s, paired ratios ${bw(bestSlices).map((b, k) => fixed2(b / psyncSlices[k]!.bytesPerSecond)).join(" ")} (${loadLine()})`);
          }
        }
      }
    }
    console.log(table(["target", "op", "block", "QD", "io_uring MB/s", "threads MB/s", "node:fs MB/s", "fio psync MB/s", "fio io_uring MB/s", "ratio psync", "psync range", "ratio fio io_uring", "threads/psync", "node:fs/psync", "CPU %", "CPU % threads"], rows));
    console.log(`\nMB/s, CPU and latency: medians of the ${slices} slices. ratio psync / ratio fio io_uring = lunlink's ${autoEngine} engine / fio with that engine (QD N: psync numjobs=N, io_uring iodepth=N), the median of the slices' paired ratios (psync range: their lowest and highest). CPU % = lunlink process CPU time / wall time (200 = both cores). ${loadLine()} at end.`);
    console.log("\n4 KiB QD1 latency (us):\n");
    console.log(table(["target", "op", "io_uring p50", "threads p50", "node:fs p50", "fio psync p50", "p50 ratio", "io_uring p99", "threads p99", "fio psync p99"], latencyRows));
  });
}
