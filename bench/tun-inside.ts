// The measured side of `bench tun`, run by bench/tun.ts inside its own network namespace:
//   node --import=tsx bench/tun-inside.ts read  <probe> <seconds> <payloadBytes>
//   node --import=tsx bench/tun-inside.ts write <probe> <seconds> <payloadBytes> <packetsPerCall>
// read: the C probe blasts UDP (sendmmsg) at 198.18.130.2, routed into the TUN; this process reads.
// write: this process writes hand-built UDP packets to 198.18.130.1 into the TUN; the C probe sinks them.
// Prints one JSON line. CPU is this whole process (JS thread + the addon's reader thread).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";

import { TunDevice } from "../lib/tun/tun.ts";
import { writeUdpPacket } from "../test/helpers/ipv4.ts";

const [mode, probe = "", secondsArg, payloadArg, perCallArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
const payloadBytes = Number(payloadArg);
const LOCAL = "198.18.130.1";
const REMOTE = "198.18.130.2";
setTimeout(() => {
  console.error("tun-inside: time limit reached");
  process.exit(3);
}, (seconds + 20) * 1000).unref();

function startProbe(args: string[]): { lines: AsyncIterator<string>; exited: Promise<number> } {
  const child = spawn(probe, args, { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? -1)));
  return { lines: createInterface({ input: child.stdout })[Symbol.asyncIterator](), exited };
}

async function nextJson(lines: AsyncIterator<string>): Promise<Record<string, number>> {
  const next = await lines.next();
  if (next.done === true) throw new Error("probe ended without output");
  return JSON.parse(next.value) as Record<string, number>;
}

function kernelDrops(name: string): number {
  return Number(readFileSync(`/sys/class/net/${name}/statistics/tx_dropped`, "utf8"));
}

const tun = await TunDevice.open({ name: "lltbench0", mtu: 1500, address: `${LOCAL}/24` });
try {
  if (mode === "read") {
    const histogram = new Uint32Array(257); // batches by size
    let checksum = 0;
    tun.onPackets((packets, lengths, count) => {
      histogram[count]!++;
      // Touch every packet's first byte, as a forwarder reading the IP version would.
      let offset = 0;
      for (let i = 0; i < count; i++) {
        checksum ^= packets[offset]!;
        offset += lengths[i]!;
      }
    });
    const dropsBefore = kernelDrops(tun.name);
    const cpuStart = process.cpuUsage();
    const started = performance.now();
    const sender = startProbe(["blast", REMOTE, "9", String(payloadBytes), String(seconds)]);
    const sent = await nextJson(sender.lines);
    await sender.exited;
    // Let the reader drain what is still queued (bounded: 50 x 10 ms).
    for (let i = 0, last = -1; i < 50 && tun.counters.packetsIn !== last; i++) {
      last = tun.counters.packetsIn;
      await new Promise((r) => setTimeout(r, 10));
    }
    const elapsedS = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const sizes: number[] = [];
    histogram.forEach((n, size) => {
      for (let k = 0; k < Math.min(n, 100_000); k++) sizes.push(size);
    });
    sizes.sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        sent: sent.packets,
        packets: tun.counters.packetsIn,
        bytes: tun.counters.bytesIn,
        batches: tun.counters.batches,
        batchP50: sizes[Math.floor(sizes.length / 2)] ?? 0,
        batchMax: sizes[sizes.length - 1] ?? 0,
        kernelDropped: kernelDrops(tun.name) - dropsBefore,
        elapsedS,
        cpuUs: cpu.user + cpu.system,
        checksum,
      }),
    );
  } else if (mode === "write") {
    const perCall = Number(perCallArg);
    const sink = startProbe(["sink", LOCAL, "9999", String(seconds + 1)]);
    await nextJson(sink.lines); // ready
    const packetBytes = 28 + payloadBytes;
    const buffer = new Uint8Array(perCall * packetBytes);
    const lengths = new Uint32Array(perCall);
    const payload = new Uint8Array(payloadBytes).fill(0x6c);
    for (let i = 0; i < perCall; i++) lengths[i] = writeUdpPacket(buffer, i * packetBytes, REMOTE, LOCAL, 5555, 9999, payload, i);
    const single = buffer.subarray(0, packetBytes);
    const cpuStart = process.cpuUsage();
    const started = performance.now();
    const deadline = started + seconds * 1000;
    let calls = 0;
    while (performance.now() < deadline) {
      for (let k = 0; k < 16; k++) {
        if (perCall === 1) tun.write(single);
        else tun.writeBatch(buffer, lengths, perCall);
      }
      calls += 16;
    }
    const elapsedS = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const received = await nextJson(sink.lines);
    await sink.exited;
    console.log(
      JSON.stringify({
        calls,
        packets: tun.counters.packetsOut,
        bytes: tun.counters.bytesOut,
        dropped: tun.counters.dropped,
        delivered: received.packets,
        elapsedS,
        cpuUs: cpu.user + cpu.system,
      }),
    );
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} finally {
  await tun.close();
}
