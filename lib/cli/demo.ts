// `lunlink demo`: the main job. Today it shows the storage path end to end on real loop devices:
// node 1's send volume, node 2's receive volume, and lunlink's local mirror between them (standing in
// for the array's replication). A RingWriter (node 1) batches frames into records written with
// O_DIRECT|O_DSYNC; the mirror copies each record; a Poller (node 2) reads the receive volume with
// O_DIRECT, validates every record and acks back. One-way latency and burst throughput are measured.
// The two-host namespace failover demo comes with the link layer (README: status). Everything it
// creates (a scratch directory, two loop devices) is removed on exit or Ctrl-C.
import { execFile } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";

import { FrameType } from "../format/layout.ts";
import { probe } from "../io/probe.ts";
import { Volume } from "../io/volume.ts";
import { Poller } from "../poll/poller.ts";
import { inspectRing } from "../ring/inspect.ts";
import { RingReader } from "../ring/reader.ts";
import { formatVolume } from "../ring/superblocks.ts";
import { RingWriter } from "../ring/writer.ts";
import { parse } from "./args.ts";
import type { Command } from "./main.ts";
import { formatBytes } from "./output.ts";
import { LocalMirror } from "../mirror/local.ts";

const execFileAsync = promisify(execFile);
const ROUNDS = 1000;

export const demoCommand: Command = {
  summary: "run the demo on real loop devices (root)",
  usage: "Usage: lunlink demo\n\nCreates two 64 MiB loop devices (4096-byte sectors, direct I/O) under /var/tmp: node 1's send\nvolume and node 2's receive volume, with lunlink's local mirror between them; sends messages and a\nburst through them with O_DIRECT, prints what happened, and removes everything it made.",
  async run(args, out) {
    parse(args, {}, { min: 0, max: 0 });
    const say = (line: string): void => void out.stdout.write(`${line}\n`);
    const dir = await mkdtemp("/var/tmp/lunlink-demo-");
    const loops: string[] = [];
    const cleanup = async (): Promise<void> => {
      for (const loop of loops.splice(0)) await execFileAsync("losetup", ["-d", loop]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    };
    const attach = async (name: string): Promise<string> => {
      const backing = join(dir, name);
      const file = await open(backing, "w");
      await file.truncate(64 * 1024 * 1024);
      await file.close();
      const device = (await execFileAsync("losetup", ["--find", "--show", "--sector-size", "4096", "--direct-io=on", backing])).stdout.trim();
      loops.push(device);
      return device;
    };
    const onSignal = (): void => {
      void cleanup().finally(() => process.exit(130));
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      const sendDevice = await attach("send.img");
      const receiveDevice = await attach("receive.img");
      say(`[1] node 1's send volume ${sendDevice}, node 2's receive volume ${receiveDevice} (loop devices over files in ${dir})`);
      const info = await probe(sendDevice);
      say(`    ${info.kind}, ${formatBytes(info.sizeBytes)}, logical ${info.logicalBlockSize} B, physical ${info.physicalBlockSize} B, O_DIRECT ${info.directIo ? "yes" : "no"}`);

      const send = await Volume.open(sendDevice, { dsync: true, exclusive: true });
      const mirrorSource = await Volume.open(sendDevice, { readOnly: true });
      const mirrorTarget = await Volume.open(receiveDevice, { dsync: true, exclusive: true });
      const receive = await Volume.open(receiveDevice, { readOnly: true });
      let mirror: LocalMirror | undefined;
      try {
        const { superblock } = await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 4096n });
        say(`[2] formatted: volume ${superblock.volumeUuid}, ring of ${superblock.ringBlocks} blocks of ${superblock.blockBytes} B, writer node 1 -> reader node 2`);
        // The array's job, done by lunlink here: copy the send volume onto the receive volume.
        mirror = await LocalMirror.open(mirrorSource, mirrorTarget, { statusCopyMs: 5, pollMinUs: 100, pollMaxMs: 2 });
        const resynced = new Promise<void>((resolve) => mirror!.once("resync", () => resolve()));
        mirror.start();
        await resynced;
        say(`    local mirror running: ${sendDevice} -> ${receiveDevice} (O_DIRECT, record by record)`);
        let reader: RingReader | undefined;
        const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0, fullQueue: "wait", overwriteUnacked: false, peerAck: () => reader?.ack });
        reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
        let arrived: (() => void) | undefined;
        let received = 0;
        let lastText = "";
        const poller = new Poller(reader, {
          pollMinUs: 100,
          pollMaxMs: 2,
          onFrame: (_seq, type, _flags, bytes, offset, length) => {
            received++;
            if (type === FrameType.Control) lastText = new TextDecoder().decode(bytes.subarray(offset, offset + length));
            arrived?.();
          },
        });
        poller.start();
        const hello = `hello from node 1 at ${new Date().toISOString()}`;
        let delivered = new Promise<void>((resolve) => (arrived = resolve));
        await writer.append(FrameType.Control, new TextEncoder().encode(hello));
        await delivered;
        say(`[3] node 2 received over storage (send volume -> mirror -> receive volume): "${lastText}"`);

        const latenciesUs: number[] = [];
        const ping = new Uint8Array(64);
        for (let i = 0; i < ROUNDS; i++) {
          delivered = new Promise<void>((resolve) => (arrived = resolve));
          const t0 = performance.now();
          writer.tryAppend(FrameType.Control, ping);
          await delivered;
          latenciesUs.push((performance.now() - t0) * 1000);
        }
        latenciesUs.sort((a, b) => a - b);
        const p = (q: number): string => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(q * latenciesUs.length))]!.toFixed(0);
        say(`[4] ${ROUNDS} messages one at a time, writer -> O_DIRECT|O_DSYNC record -> mirror -> poller: one-way p50 ${p(0.5)} us, p99 ${p(0.99)} us`);

        const burst = 50_000;
        const frame = new Uint8Array(1024);
        const before = received;
        const t0 = performance.now();
        for (let i = 0; i < burst; i++) if (writer.tryAppend(FrameType.Data, frame) !== "queued") await writer.append(FrameType.Data, frame);
        await writer.flush();
        while (received - before < burst && performance.now() - t0 < 30_000) {
          delivered = new Promise<void>((resolve) => (arrived = resolve));
          await Promise.race([delivered, new Promise((r) => setTimeout(r, 100))]);
        }
        const seconds = (performance.now() - t0) / 1000;
        say(`[5] burst of ${burst} 1 KiB frames: ${received - before} delivered in ${seconds.toFixed(2)} s (${((burst * 1024) / seconds / 1e6).toFixed(0)} MB/s, ${writer.counters.records} records, ring lapped ${((writer.counters.bytesWritten / (4096 * 4096))).toFixed(1)} times, lost ${reader.counters.lost})`);
        await poller.stop();
        await writer.close();
        await mirror.stop();
        mirror = undefined;
        const report = await inspectRing(receive, superblock);
        say(`[6] inspect: ${report.records} intact records in the ring (seq ${report.oldestSeq}..${report.newestSeq}), damage: ${report.invalid === 0 ? "none" : report.invalid}`);
      } finally {
        await mirror?.stop().catch(() => undefined);
        for (const volume of [send, mirrorSource, mirrorTarget, receive]) await volume.close();
      }
      say("[7] cleaned up: loop devices detached, scratch files removed");
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      await cleanup();
    }
  },
};
