// latency: one-way latency writer -> poller on one volume (DESIGN.md section 7, row a), lunlink
// (RingWriter -> volume -> Poller) against bench/probe/latency.c doing the same steps (O_DIRECT|O_DSYNC
// write of the record, O_DIRECT re-reads with the same adaptive poll sleep), built and run in the
// same run on the same loop device (--direct-io=on). Ping-pong: the next message is sent once the
// previous one arrived. Rounds: --rounds (default 2000).
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

import { FrameType } from "../lib/format/layout.ts";
import { Volume } from "../lib/index.ts";
import { Poller } from "../lib/poll/poller.ts";
import { RingReader } from "../lib/ring/reader.ts";
import { formatVolume } from "../lib/ring/superblocks.ts";
import { RingWriter } from "../lib/ring/writer.ts";
import { machineLine } from "./machine.ts";
import { withScratch } from "./scratch.ts";
import { percentile, ratio, table } from "./stats.ts";

const POLL_MIN_US = 100;
const POLL_MAX_MS = 1;

async function lunlinkLatency(device: string, rounds: number, busyPollUs: number): Promise<Float64Array> {
  const send = await Volume.open(device, { dsync: true, busyPollUs });
  const receive = await Volume.open(device, { readOnly: true, busyPollUs });
  try {
    await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 4096n, force: true });
    const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0, statusIntervalMs: 1000 });
    const reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
    const latenciesUs = new Float64Array(rounds);
    let arrived: (() => void) | undefined;
    let round = 0;
    const poller = new Poller(reader, {
      pollMinUs: POLL_MIN_US,
      pollMaxMs: POLL_MAX_MS,
      statusPollMs: 1000,
      onFrame: (_seq, _type, _flags, bytes, offset) => {
        const sentMs = new DataView(bytes.buffer, bytes.byteOffset + offset, 8).getFloat64(0, true);
        latenciesUs[round] = (performance.now() - sentMs) * 1000;
        arrived?.();
      },
    });
    poller.start();
    const payload = new Uint8Array(64);
    const view = new DataView(payload.buffer);
    for (round = 0; round < rounds; round++) {
      const delivered = new Promise<void>((resolve) => (arrived = resolve));
      view.setFloat64(0, performance.now(), true);
      writer.tryAppend(FrameType.Data, payload);
      await delivered;
    }
    await poller.stop();
    await writer.close();
    return latenciesUs.sort();
  } finally {
    await send.close();
    await receive.close();
  }
}

function probeLatency(binary: string, device: string, rounds: number): Float64Array {
  const out = execFileSync(binary, [device, String(rounds), "1", String(POLL_MIN_US), String(POLL_MAX_MS * 1000)], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return Float64Array.from(out.trim().split("\n").map((ns) => Number(ns) / 1000)).sort();
}

export async function latencyBench(args: string[]): Promise<void> {
  const at = args.indexOf("--rounds");
  const rounds = at >= 0 ? Number(args[at + 1]) || 2000 : 2000;
  await withScratch(async (scratch) => {
    const binary = join(scratch.dir, "latency");
    execFileSync("gcc", ["-O2", "-Wall", "-pthread", "-o", binary, new URL("./probe/latency.c", import.meta.url).pathname]);
    const loop = scratch.loop("volume.img", 64 * 1024 * 1024);
    console.log(`# latency: one-way writer -> poller on one volume, O_DIRECT|O_DSYNC writes, poll sleep ${POLL_MIN_US} us doubling to ${POLL_MAX_MS} ms, ${rounds} rounds`);
    console.log(machineLine());
    console.log(`volume: ${loop} (loop, dio=on) over a 64 MiB file on ext4\n`);
    const c = probeLatency(binary, loop, rounds);
    const l = await lunlinkLatency(loop, rounds, 0);
    const p = await lunlinkLatency(loop, rounds, 500);
    const row = (name: string, x: Float64Array): string[] => [
      name,
      percentile(x, 50).toFixed(0),
      percentile(x, 99).toFixed(0),
      ratio(percentile(x, 50), percentile(c, 50)),
      ratio(percentile(x, 99), percentile(c, 99)),
    ];
    console.log(table(["path (idle, ping-pong)", "p50 us", "p99 us", "p50 vs C", "p99 vs C"], [row("C probe", c), row("lunlink", l), row("lunlink busyPollUs 500", p)]));
  });
}
