// `npm run bench -- idle [--seconds S] [--cuts N | --no-failover] [--profile DIR]`: what an idle pair costs (issue
// #13 section 4). The two-host lab (lib/node/lab.ts: two `lunlink up` in namespaces, two `lunlink
// mirror copy --follow` in the root namespace, default settings) carries nothing but heartbeats for
// S seconds (default 60); the CPU each process used (utime + stime from /proc/PID/stat) is printed
// as % of one core. Then, with the pair still idle (its followers backed off), N cuts of the primary
// (default 10) measure the interruption a UDP probe sees (bench/link.ts's failover): backing off
// must not cost the failover bound (300 ms). The load average is printed: the machine is shared.
// --profile DIR: the nodes write V8 CPU profiles there (node --cpu-prof).
import { readdir, readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

import { Lab } from "../lib/node/lab.ts";
import { failover } from "./link.ts";
import { machineLine } from "./machine.ts";
import { numberArg, percentile, table } from "./stats.ts";

/** USER_HZ of /proc/PID/stat (100 on every Linux this runs on). */
const CLOCK_TICKS_PER_S = 100;
/** The pair settles (mirror resync, first heartbeats, back-off) this long before the measurement. */
const SETTLE_MS = 3000;
/** The failover bound of DESIGN.md section 7. */
const FAILOVER_BOUND_MS = 300;

/** utime + stime of a process, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** The pid of the `lunlink mirror copy --follow SOURCE ...` process (the lab keeps it private). */
async function mirrorPid(source: string): Promise<number> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    const args = cmdline.split("\0");
    const at = args.indexOf("--follow");
    if (at > 0 && args[at - 1] === "copy" && args[at + 1] === source) return Number(entry);
  }
  throw new Error(`no mirror process for ${source}`);
}

export async function idleBench(args: string[]): Promise<void> {
  const seconds = numberArg(args, "--seconds", 60);
  const cuts = args.includes("--no-failover") ? 0 : numberArg(args, "--cuts", 10);
  const profileAt = args.indexOf("--profile");
  const profileDir = profileAt >= 0 ? args[profileAt + 1] : undefined;
  // --profile: the nodes run under --cpu-prof and are stopped gracefully at the end, so their profiles are written.
  const lab = await Lab.create({ prefix: "lli-", ...(profileDir === undefined ? {} : { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] }) });
  const stop = () => void lab.destroy().finally(() => process.exit(130));
  process.once("SIGINT", stop);
  try {
    await lab.startPair();
    console.log(`# idle: the lab pair with nothing but heartbeats for ${seconds} s, default settings; CPU = utime + stime from /proc`);
    console.log(machineLine());
    await sleep(SETTLE_MS);
    const processes: { name: string; pid: number }[] = [
      ...lab.nodes.map((n) => ({ name: `lunlink up (node ${n.id})`, pid: n.process!.pid! })),
      ...(await Promise.all(lab.mirrors.map(async (m) => ({ name: `mirror copy --follow ${m.source === lab.nodes[0].send ? "1 -> 2" : "2 -> 1"}`, pid: await mirrorPid(m.source) })))),
    ];
    const loadBefore = loadavg()[0]!;
    const before = await Promise.all(processes.map((p) => cpuMs(p.pid)));
    const startMs = performance.now();
    await sleep(seconds * 1000);
    const after = await Promise.all(processes.map((p) => cpuMs(p.pid)));
    const elapsedMs = performance.now() - startMs;
    const shares = processes.map((p, i) => ({ ...p, percent: ((after[i]! - before[i]!) / elapsedMs) * 100 }));
    console.log(`load average 1 min: ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after (2 cores shared with other work)\n`);
    console.log(table(["process", "CPU ms", "% of a core", "target"], shares.map((s, i) => [s.name, (after[i]! - before[i]!).toFixed(0), s.percent.toFixed(2), "<= 2%"])));
    console.log(`pair total: ${shares.reduce((n, s) => n + s.percent, 0).toFixed(2)}% of a core`);

    if (cuts > 0) {
      console.log(`\nfailover from idle: ${cuts} cuts of the veth, 1 ms UDP probe node 1 -> node 2 through lunlink0`);
      const times = (await failover(lab, cuts))
        .map((s) => s.failoverMs)
        .filter((x) => Number.isFinite(x))
        .sort((a, b) => a - b);
      console.log(table(["cuts", "interruption p50 ms", "p95 ms", "max ms", "bound ms"], [[String(times.length), percentile(times, 50).toFixed(0), percentile(times, 95).toFixed(0), (times.at(-1) ?? Number.NaN).toFixed(0), String(FAILOVER_BOUND_MS)]]));
    }
  } finally {
    process.off("SIGINT", stop);
    if (profileDir !== undefined) for (const id of [1, 2] as const) await lab.stopNode(id, "down").catch(() => undefined);
    await lab.destroy();
  }
}
