// ring: RingWriter append throughput against fio sequential writes of the same size on the same
// volume in the same run. The volume is a loop device (--direct-io=on) over a 1 GiB ext4 file,
// formatted with the whole device as ring; both sides open O_DIRECT|O_DSYNC (lunlink's default for
// send volumes; fio --sync=dsync). Records carry up to 64 KiB of payload (17 blocks, 68 KiB on disk):
// fio writes 68 KiB blocks. Each cell runs for --seconds (default 3) or 200000 frames per batch round.
// Keyed rows (authMode keyed: ChaCha20-Poly1305 per record, MACed status) run in the same session,
// with their ratio to the unkeyed row of the same frame size.
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";

import { FrameType } from "../lib/format/layout.ts";
import { Volume } from "../lib/index.ts";
import { formatVolume } from "../lib/ring/superblocks.ts";
import { RingWriter } from "../lib/ring/writer.ts";
import { fio } from "./fio.ts";
import { machineLine } from "./machine.ts";
import { withScratch } from "./scratch.ts";
import { mbps, numberArg, ratio, table } from "./stats.ts";

const VOLUME_BYTES = 1024 * 1024 * 1024;
const RECORD_BLOCKS = 17;

const BUSY_POLL_US = 500;

/** fio's sequential O_DSYNC write of one record's size: measured next to each row, not once for all. */
function fioReference(loop: string, seconds: number) {
  return fio([
    "--name=ring",
    `--filename=${loop}`,
    "--ioengine=psync",
    "--direct=1",
    "--sync=dsync",
    "--rw=write",
    `--bs=${RECORD_BLOCKS * 4096}`,
    `--size=${VOLUME_BYTES}`,
    `--runtime=${seconds}`,
    "--time_based",
  ]);
}

async function appendRun(device: string, frameBytes: number, seconds: number, busyPollUs: number, keyed = false) {
  const volume = await Volume.open(device, { dsync: true, busyPollUs });
  const auth = keyed ? { auth: { key: new Uint8Array(randomBytes(32)) } } : {};
  try {
    await formatVolume(volume, { writerNode: 1, peerNode: 2, force: true, ...auth });
    const writer = await RingWriter.open(volume, { nodeId: 1, maxRecordBlocks: RECORD_BLOCKS, flushThresholdBytes: 64 * 1024 - 1024, maxDelayMs: 1, fullQueue: "wait", queueLimitBytes: 1024 * 1024, ...auth });
    const payload = new Uint8Array(frameBytes).fill(0x5a);
    const cpuStart = process.cpuUsage();
    const started = performance.now();
    const deadline = started + seconds * 1000;
    let frames = 0;
    while (performance.now() < deadline && frames < 50_000_000) {
      for (let i = 0; i < 256; i++) {
        if (writer.tryAppend(FrameType.Data, payload) !== "queued") await writer.append(FrameType.Data, payload);
      }
      frames += 256;
    }
    await writer.flush();
    const elapsedS = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const payloadBytes = frames * frameBytes;
    await writer.close();
    return {
      framesPerSecond: frames / elapsedS,
      payloadBytesPerSecond: payloadBytes / elapsedS,
      deviceBytesPerSecond: writer.counters.bytesWritten / elapsedS,
      cpuMsPerMB: (((cpu.user + cpu.system) / 1000) / (payloadBytes / 1e6)),
      records: writer.counters.records,
    };
  } finally {
    await volume.close();
  }
}

export async function ringBench(args: string[]): Promise<void> {
  const seconds = numberArg(args, "--seconds", 3);
  await withScratch(async (scratch) => {
    const loop = scratch.loop("send.img", VOLUME_BYTES);
    console.log(`# ring: RingWriter append vs fio sequential write, O_DIRECT|O_DSYNC, ${seconds} s per cell`);
    console.log(machineLine());
    const probe = await Volume.open(loop);
    const engine = probe.engine;
    await probe.close();
    console.log(`volume: ${loop} (loop, dio=on) over a 1 GiB file on ext4; records up to ${RECORD_BLOCKS} blocks of 4096 B; engine ${engine}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
    const rows: string[][] = [];
    for (const frameBytes of [64, 1024, 9000]) {
      let plainFramesPerSecond = 0;
      for (const [busyPollUs, keyed] of [[0, false], [BUSY_POLL_US, false], [0, true]] as const) {
      const r = await appendRun(loop, frameBytes, seconds, busyPollUs, keyed);
      const fioResult = await fioReference(loop, seconds);
      if (!keyed && busyPollUs === 0) plainFramesPerSecond = r.framesPerSecond;
      rows.push([
        `${frameBytes} B`,
        keyed ? `keyed (${ratio(r.framesPerSecond, plainFramesPerSecond)} of default)` : busyPollUs === 0 ? "default" : `busyPollUs ${busyPollUs}`,
        Math.round(r.framesPerSecond).toString(),
        mbps(r.payloadBytesPerSecond),
        mbps(r.deviceBytesPerSecond),
        mbps(fioResult.bytesPerSecond),
        ratio(r.deviceBytesPerSecond, fioResult.bytesPerSecond),
        r.cpuMsPerMB.toFixed(2),
      ]);
      console.error(`  done ${frameBytes} B frames, busyPollUs ${busyPollUs}${keyed ? ", keyed" : ""}`);
      }
    }
    console.log(table(["frame", "mode", "frames/s", "payload MB/s", "device MB/s", "fio MB/s (68 KiB)", "ratio (device)", "CPU ms/MB"], rows));
    console.log(`\nratio = lunlink device write rate / fio's with the same block size and sync mode, fio run right after each row; payload excludes stamps, headers and frame headers. Engine ${engine}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} at end.`);
  });
}
