// The storage path's reference in `bench link`: fio running the path's four-stream pattern at once,
// each stream sequential O_DIRECT on loop devices with direct I/O (like the lab's): write A with
// O_DSYNC (the node's writer), read A (the mirror), write B (the mirror), read B (the peer's poller).
// Data crosses that pipeline no faster than its slowest stream, so the figure is the slowest job's rate.
// Two block sizes: 64 KiB (the records of the old 65-block bound) and 1 MiB (the link's record bound,
// LINK_MAX_RECORD_BLOCKS): an O_DSYNC write costs mostly its flush, so the block size moves fio a lot.
// Beside it, the send ring alone (sendRingAlone): the link's RingWriter settings on a loop device of
// its own, flooded with MTU-sized frames, with 1 and LINK_RECORDS_IN_FLIGHT record writes in flight:
// what the writer can carry with no TCP, mirror or reader in the way (the bound on the storage path).
import { execFile } from "node:child_process";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";

import { FrameType } from "../lib/format/layout.ts";
import { Volume } from "../lib/index.ts";
import { LINK_FLUSH_THRESHOLD_BYTES, LINK_MAX_RECORD_BLOCKS } from "../lib/link/storage-path.ts";
import { formatVolume } from "../lib/ring/superblocks.ts";
import { RingWriter } from "../lib/ring/writer.ts";
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

/** Frame size of the send-ring flood: one TUN packet at MTU 1400 plus the link's message header room. */
const FLOOD_FRAME_BYTES = 1400 + 64;
/** Bound on frames per flood (besides its seconds). */
const FLOOD_MAX_FRAMES = 50_000_000;

export interface SendRingResult {
  /** Payload bytes per second appended and written. */
  bytesPerSecond: number;
  /** Process CPU (user + system) per MB of payload. */
  cpuMsPerMB: number;
  kibPerRecord: number;
}

/** The link's send ring alone: RingWriter with the link's record bound and threshold, O_DSYNC, `recordsInFlight` writes at once. */
export async function sendRingAlone(scratch: BenchScratch, seconds: number, recordsInFlight: number): Promise<SendRingResult> {
  const device = scratch.loop(`send-ring-${recordsInFlight}`, DEVICE_BYTES);
  const volume = await Volume.open(device, { dsync: true });
  try {
    await formatVolume(volume, { writerNode: 1, peerNode: 2, force: true });
    const writer = await RingWriter.open(volume, {
      nodeId: 1,
      maxDelayMs: 0,
      maxRecordBlocks: LINK_MAX_RECORD_BLOCKS,
      flushThresholdBytes: LINK_FLUSH_THRESHOLD_BYTES,
      maxRecordsInFlight: recordsInFlight,
      controlWaitsForAck: false,
      fullQueue: "wait",
      queueLimitBytes: 1024 * 1024,
    });
    const payload = new Uint8Array(FLOOD_FRAME_BYTES).fill(0x5a);
    const cpuStart = process.cpuUsage();
    const started = performance.now();
    const deadline = started + seconds * 1000;
    let frames = 0;
    while (performance.now() < deadline && frames < FLOOD_MAX_FRAMES) {
      for (let i = 0; i < 256; i++) if (writer.tryAppend(FrameType.Data, payload) !== "queued") await writer.append(FrameType.Data, payload);
      frames += 256;
    }
    await writer.flush();
    const elapsedS = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    await writer.close();
    const payloadBytes = frames * FLOOD_FRAME_BYTES;
    return {
      bytesPerSecond: payloadBytes / elapsedS,
      cpuMsPerMB: (cpu.user + cpu.system) / 1000 / (payloadBytes / 1e6),
      kibPerRecord: writer.counters.bytesWritten / Math.max(1, writer.counters.records) / 1024,
    };
  } finally {
    await volume.close();
  }
}
