// The storage path's reference in `bench link`: fio running the path's four-stream pattern at once,
// each stream sequential O_DIRECT on loop devices with direct I/O (like the lab's): write A with
// O_DSYNC (the node's writer), read A (the mirror), write B (the mirror), read B (the peer's poller).
// Data crosses that pipeline no faster than its slowest stream, so the figure is the slowest job's rate.
// Two block sizes: 64 KiB (the records of the old 65-block bound) and 1 MiB (the link's record bound,
// LINK_MAX_RECORD_BLOCKS): an O_DSYNC write costs mostly its flush, so the block size moves fio a lot.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import type { BenchScratch } from "./scratch.ts";

const execFileAsync = promisify(execFile);

/** fio's block sizes: 64 KiB, and 1 MiB = the link's largest record (lib/link/storage-path.ts). */
export const STORAGE_FIO_BLOCK_BYTES = [64 * 1024, 1024 * 1024] as const;
/** Size of each of the two loop devices (the lab's volumes are 64 MiB). */
const DEVICE_BYTES = 64 * 1024 * 1024;

interface FioJobReport {
  jobname: string;
  read: { bw_bytes: number };
  write: { bw_bytes: number };
}

/** Bytes per second of the slowest of the four streams, run together for `seconds`. */
export async function fourStreams(scratch: BenchScratch, seconds: number, blockBytes: number): Promise<number> {
  const a = scratch.loop(`four-a-${blockBytes}`, DEVICE_BYTES);
  const b = scratch.loop(`four-b-${blockBytes}`, DEVICE_BYTES);
  const job = (name: string, filename: string, rw: "read" | "write", dsync: boolean): string[] => [`--name=${name}`, `--filename=${filename}`, `--rw=${rw}`, ...(dsync ? ["--sync=dsync"] : [])];
  const { stdout } = await execFileAsync(
    "fio",
    [
      "--ioengine=psync",
      "--direct=1",
      `--bs=${blockBytes}`,
      `--size=${DEVICE_BYTES}`,
      `--runtime=${seconds}`,
      "--time_based",
      "--output-format=json",
      ...job("write-a", a, "write", true),
      ...job("read-a", a, "read", false),
      ...job("write-b", b, "write", false),
      ...job("read-b", b, "read", false),
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const jobs = (JSON.parse(stdout.slice(stdout.indexOf("{"))) as { jobs: FioJobReport[] }).jobs;
  if (jobs.length !== 4) throw new Error(`fio reported ${jobs.length} jobs, expected 4`);
  return Math.min(...jobs.map((j) => Math.max(j.read.bw_bytes, j.write.bw_bytes)));
}
