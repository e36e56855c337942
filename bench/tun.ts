// tun: packets per second through a TunDevice, and CPU per packet, inside a network namespace the
// bench creates (llt-*, deleted after, also on failure; nothing is configured in the host's own).
// Read side: bench/probe/udp.c blasts UDP with sendmmsg into the TUN's subnet; lunlink reads the
// batches (reader thread + one JS call per batch). Write side: lunlink writes hand-built UDP packets,
// one per write() or 256 per writeBatch(); the C probe sinks them with recvmmsg. Each cell runs
// --seconds (default 3). Packets/s per core = packets / CPU seconds of the lunlink process.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";

import { deleteNamespace, NETNS_PREFIX } from "../test/helpers/netns.ts";
import { machineLine } from "./machine.ts";
import { numberArg, table } from "./stats.ts";

const INSIDE = new URL("./tun-inside.ts", import.meta.url).pathname;

interface ReadCell {
  sent: number;
  packets: number;
  bytes: number;
  batches: number;
  batchP50: number;
  batchMax: number;
  kernelDropped: number;
  elapsedS: number;
  cpuUs: number;
}

interface WriteCell {
  calls: number;
  packets: number;
  bytes: number;
  dropped: number;
  delivered: number;
  elapsedS: number;
  cpuUs: number;
}

function inside<T>(ns: string, args: string[], seconds: number): T {
  const out = execFileSync("ip", ["netns", "exec", ns, process.execPath, "--import=tsx", INSIDE, ...args], {
    encoding: "utf8",
    timeout: (seconds + 30) * 1000,
    stdio: ["ignore", "pipe", "inherit"],
  });
  return JSON.parse(out.trim().split("\n").pop() ?? "") as T;
}

const kpps = (packets: number, seconds: number): string => (packets / seconds / 1000).toFixed(0);

export async function tunBench(args: string[]): Promise<void> {
  const seconds = numberArg(args, "--seconds", 3);
  const dir = mkdtempSync("/var/tmp/lunlink-bench-");
  const ns = `${NETNS_PREFIX}${randomBytes(3).toString("hex")}-bench`;
  try {
    const probe = join(dir, "udp");
    execFileSync("gcc", ["-O2", "-Wall", "-o", probe, new URL("./probe/udp.c", import.meta.url).pathname]);
    execFileSync("ip", ["netns", "add", ns]);
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    console.log(`# tun: packets through a TunDevice (MTU 1500, 198.18.130.1/24) in namespace ${ns}, ${seconds} s per cell`);
    console.log(machineLine());
    console.log("CPU = the lunlink process (JS thread + reader thread, user + system), over the cell's wall time\n");

    const readRows: string[][] = [];
    for (const payload of [64, 1400]) {
      console.error(`  read, ${payload}-byte payloads`);
      const c = inside<ReadCell>(ns, ["read", probe, String(seconds), String(payload)], seconds);
      const cpuS = c.cpuUs / 1e6;
      readRows.push([
        `${payload + 28} B packets`,
        kpps(c.sent, c.elapsedS),
        kpps(c.packets, c.elapsedS),
        ((c.bytes * 8) / c.elapsedS / 1e9).toFixed(2),
        c.kernelDropped.toString(),
        ((cpuS / c.elapsedS) * 100).toFixed(0),
        kpps(c.packets, cpuS),
        ((c.cpuUs * 1000) / c.packets).toFixed(0),
        (c.packets / c.batches).toFixed(1),
        `${c.batchP50} / ${c.batchMax}`,
      ]);
    }
    console.log("read side (C sendmmsg blaster -> kernel -> TUN -> onPackets)");
    console.log(
      table(["packets", "offered kpps", "read kpps", "read Gbit/s", "kernel drops", "CPU %", "kpps per core", "CPU ns/packet", "mean batch", "batch p50 / max"], readRows),
    );

    const writeRows: string[][] = [];
    for (const [payload, perCall] of [
      [64, 1],
      [64, 256],
      [1400, 256],
    ] as const) {
      console.error(`  write, ${payload}-byte payloads, ${perCall} per call`);
      const c = inside<WriteCell>(ns, ["write", probe, String(seconds), String(payload), String(perCall)], seconds);
      const cpuS = c.cpuUs / 1e6;
      writeRows.push([
        `${payload + 28} B packets`,
        perCall === 1 ? "write()" : `writeBatch(${perCall})`,
        kpps(c.packets, c.elapsedS),
        ((c.bytes * 8) / c.elapsedS / 1e9).toFixed(2),
        c.dropped.toString(),
        kpps(c.delivered, c.elapsedS),
        ((cpuS / c.elapsedS) * 100).toFixed(0),
        kpps(c.packets, cpuS),
        ((c.cpuUs * 1000) / c.packets).toFixed(0),
      ]);
    }
    console.log("\nwrite side (TunDevice.write/writeBatch -> kernel -> UDP socket of the C sink)");
    console.log(table(["packets", "call", "written kpps", "Gbit/s", "dropped", "sink kpps", "CPU %", "kpps per core", "CPU ns/packet"], writeRows));
    console.log("\nCPU ns/packet includes the kernel's work done in the caller's context (routing and socket delivery for writes).");
  } finally {
    await deleteNamespace(ns).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
