// raw: lunlink's addon (Volume) against fio psync on the same volume in the same run.
// O_DIRECT sequential write and read at 4 KiB, 64 KiB and 1 MiB, queue depth 1 and 8, on a loop
// device (--direct-io=on, so the loop driver does not serve O_DIRECT from page cache) and on a file
// on ext4. Queue depth N = N sequential streams over N equal regions (fio: numjobs=N,
// offset_increment); no O_DSYNC on either side. Each cell runs for --seconds (default 2).
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";

import { Volume } from "../lib/index.ts";
import { fio } from "./fio.ts";
import { machineLine } from "./machine.ts";
import { withScratch } from "./scratch.ts";
import { mbps, numberArg, percentile, ratio, table } from "./stats.ts";

interface Cell {
  bytesPerSecond: number;
  latencyUsP50: number;
  latencyUsP99: number;
  cpuPercent: number;
}

const VOLUME_BYTES = 1024 * 1024 * 1024;
const BUSY_POLL_US = 1000;

async function lunlinkRun(path: string, op: "read" | "write", blockBytes: number, depth: number, seconds: number, busyPollUs: number): Promise<Cell> {
  const volume = await Volume.open(path, { ioThreads: depth, busyPollUs });
  try {
    const region = Math.floor(VOLUME_BYTES / depth / blockBytes) * blockBytes;
    const maxSamples = 2_000_000;
    const latencies = new Float64Array(maxSamples);
    let samples = 0;
    let bytes = 0;
    const deadline = performance.now() + seconds * 1000;
    const cpuStart = process.cpuUsage();
    const started = performance.now();
    const stream = async (index: number): Promise<void> => {
      const buffer = volume.alloc(blockBytes);
      buffer.fill(index + 1);
      const base = index * region;
      let position = 0;
      while (performance.now() < deadline) {
        const t0 = performance.now();
        if (op === "write") await volume.write(base + position, buffer);
        else await volume.read(base + position, buffer);
        const t1 = performance.now();
        if (samples < maxSamples) latencies[samples++] = (t1 - t0) * 1000;
        bytes += blockBytes;
        position += blockBytes;
        if (position >= region) position = 0;
      }
    };
    await Promise.all(Array.from({ length: depth }, (_, i) => stream(i)));
    const elapsedS = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const sorted = latencies.subarray(0, samples).sort();
    return {
      bytesPerSecond: bytes / elapsedS,
      latencyUsP50: percentile(sorted, 50),
      latencyUsP99: percentile(sorted, 99),
      cpuPercent: ((cpu.user + cpu.system) / 1e6 / elapsedS) * 100,
    };
  } finally {
    await volume.close();
  }
}

function fioRun(path: string, op: "read" | "write", blockBytes: number, depth: number, seconds: number) {
  const region = Math.floor(VOLUME_BYTES / depth / blockBytes) * blockBytes;
  return fio([
    "--name=raw",
    `--filename=${path}`,
    "--ioengine=psync",
    "--direct=1",
    `--rw=${op}`,
    `--bs=${blockBytes}`,
    `--numjobs=${depth}`,
    `--size=${region}`,
    `--offset_increment=${region}`,
    `--runtime=${seconds}`,
    "--time_based",
  ]);
}

export async function rawBench(args: string[]): Promise<void> {
  const seconds = numberArg(args, "--seconds", 2);
  await withScratch(async (scratch) => {
    const file = scratch.file("file.img", VOLUME_BYTES);
    const loop = scratch.loop("loop.img", VOLUME_BYTES);
    const dio = execFileSync("cat", [`/sys/block/${loop.slice(5)}/loop/dio`], { encoding: "utf8" }).trim();

    console.log(`# raw: lunlink Volume vs fio psync, O_DIRECT, no O_DSYNC, ${seconds} s per cell`);
    console.log(machineLine());
    console.log(`targets: loop = ${loop} over ext4 file, dio=${dio}; file = 1 GiB file on ext4 (/var/tmp)\n`);
    const rows: string[][] = [];
    const latencyRows: string[][] = [];
    for (const [target, path] of [["loop", loop], ["file", file]] as const) {
      for (const op of ["write", "read"] as const) {
        for (const blockBytes of [4096, 65536, 1048576]) {
          for (const depth of [1, 8]) {
            // Rotate which runs first so drift in the device does not favour one side.
            const runs: (() => Promise<Cell>)[] = [
              () => lunlinkRun(path, op, blockBytes, depth, seconds, 0),
              () => lunlinkRun(path, op, blockBytes, depth, seconds, BUSY_POLL_US),
              () => fioRun(path, op, blockBytes, depth, seconds),
            ];
            const results: Cell[] = new Array(3);
            for (let k = 0; k < 3; k++) {
              const which = (k + rows.length) % 3;
              results[which] = await runs[which]!();
            }
            const [l, p, f] = results as [Cell, Cell, Cell];
            const size = blockBytes >= 1048576 ? `${blockBytes / 1048576} MiB` : `${blockBytes / 1024} KiB`;
            rows.push([target, op, size, String(depth), mbps(l.bytesPerSecond), mbps(p.bytesPerSecond), mbps(f.bytesPerSecond), ratio(l.bytesPerSecond, f.bytesPerSecond), ratio(p.bytesPerSecond, f.bytesPerSecond), l.cpuPercent.toFixed(0), p.cpuPercent.toFixed(0)]);
            if (blockBytes === 4096 && depth === 1) {
              latencyRows.push([target, op, l.latencyUsP50.toFixed(1), p.latencyUsP50.toFixed(1), f.latencyUsP50.toFixed(1), l.latencyUsP99.toFixed(1), p.latencyUsP99.toFixed(1), f.latencyUsP99.toFixed(1)]);
            }
            console.error(`  done ${target} ${op} ${size} qd${depth}: ${mbps(l.bytesPerSecond)} / ${mbps(p.bytesPerSecond)} vs ${mbps(f.bytesPerSecond)} MB/s`);
          }
        }
      }
    }
    console.log(table(["target", "op", "block", "QD", "lunlink MB/s", "lunlink poll MB/s", "fio MB/s", "ratio", "ratio poll", "CPU %", "CPU % poll"], rows));
    console.log(`\nlunlink = default (threads sleep between requests); poll = busyPollUs ${BUSY_POLL_US}. CPU % = lunlink process CPU time / wall time (200 = both cores).`);
    console.log("\n4 KiB QD1 latency (us):\n");
    console.log(table(["target", "op", "lunlink p50", "poll p50", "fio p50", "lunlink p99", "poll p99", "fio p99"], latencyRows));
  });
}
