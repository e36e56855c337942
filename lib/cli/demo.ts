// `lunlink demo`: the main job. Today it shows the storage foundation end to end on a real loop
// device: a send volume written with O_DIRECT + O_DSYNC by one handle and read back by an
// independent O_DIRECT reader, with the one-way write->read latency measured. The two-host
// network-namespace failover demo is built on this by the link layer (README: roadmap).
// Everything it creates (a scratch directory, one loop device) is removed on exit or Ctrl-C.
import { execFile } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";

import { probe } from "../io/probe.ts";
import { Volume } from "../io/volume.ts";
import { parse } from "./args.ts";
import type { Command } from "./main.ts";
import { formatBytes } from "./output.ts";

const execFileAsync = promisify(execFile);
const ROUNDS = 500;

export const demoCommand: Command = {
  summary: "run the demo on a real loop device (root)",
  usage: "Usage: lunlink demo\n\nCreates a 64 MiB loop device (4096-byte sectors, direct I/O) under /var/tmp, writes and\nreads records through it with O_DIRECT, prints what happened, and removes everything it made.",
  async run(args, out) {
    parse(args, {}, { min: 0, max: 0 });
    const say = (line: string): void => void out.stdout.write(`${line}\n`);
    const dir = await mkdtemp("/var/tmp/lunlink-demo-");
    let loop: string | undefined;
    const cleanup = async (): Promise<void> => {
      if (loop !== undefined) await execFileAsync("losetup", ["-d", loop]).catch(() => undefined);
      loop = undefined;
      await rm(dir, { recursive: true, force: true });
    };
    const onSignal = (): void => {
      void cleanup().finally(() => process.exit(130));
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      const backing = join(dir, "send.img");
      const file = await open(backing, "w");
      await file.truncate(64 * 1024 * 1024);
      await file.close();
      loop = (await execFileAsync("losetup", ["--find", "--show", "--sector-size", "4096", "--direct-io=on", backing])).stdout.trim();
      say(`[1] send volume: ${loop} (loop device over ${backing})`);
      const info = await probe(loop);
      say(`    ${info.kind}, ${formatBytes(info.sizeBytes)}, logical ${info.logicalBlockSize} B, physical ${info.physicalBlockSize} B, O_DIRECT ${info.directIo ? "yes" : "no"}`);

      const writer = await Volume.open(loop, { dsync: true, exclusive: true });
      const reader = await Volume.open(loop, { readOnly: true });
      try {
        const block = writer.geometry.logicalBlockSize;
        const message = new TextEncoder().encode(`hello from lunlink at ${new Date().toISOString()}`);
        const out1 = writer.alloc(block);
        out1.set(message);
        await writer.write(block, out1);
        say(`[2] wrote ${message.length} bytes at offset ${block} with O_DIRECT|O_DSYNC (exclusive open: O_EXCL)`);
        const seen = await reader.read(block, block);
        say(`[3] an independent O_DIRECT reader sees: "${new TextDecoder().decode(seen.subarray(0, message.length))}"`);

        const latenciesUs: number[] = [];
        const buffer = writer.alloc(block);
        const into = reader.alloc(block);
        for (let i = 0; i < ROUNDS; i++) {
          new DataView(buffer.buffer, buffer.byteOffset).setUint32(0, i, true);
          const t0 = performance.now();
          await writer.write(2 * block, buffer);
          await reader.read(2 * block, into);
          latenciesUs.push((performance.now() - t0) * 1000);
          if (new DataView(into.buffer, into.byteOffset).getUint32(0, true) !== i) throw new Error(`round ${i}: reader saw stale data`);
        }
        latenciesUs.sort((a, b) => a - b);
        const p = (q: number): string => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(q * latenciesUs.length))]!.toFixed(0);
        say(`[4] ${ROUNDS} rounds of write(dsync) + read of one ${block}-byte block, every read fresh: p50 ${p(0.5)} us, p99 ${p(0.99)} us`);
      } finally {
        await writer.close();
        await reader.close();
      }
      say("[5] cleaned up: loop device detached, scratch files removed");
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      await cleanup();
    }
  },
};
