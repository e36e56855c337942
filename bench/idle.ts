// `npm run bench -- idle [--seconds S] [--cuts N | --no-failover] [--profile DIR]`: what an idle pair costs (issue
// #13 section 4). The two-host lab (lib/node/lab.ts: two `lunlink up` in namespaces, two `lunlink
// mirror copy --follow` in the root namespace, default settings) carries nothing but heartbeats for
// S seconds (default 60); the CPU each process used (utime + stime from /proc/PID/stat) is printed
// as % of one core. Then, with the pair still idle (its followers backed off), N cuts of the primary
// (default 10) measure the interruption a UDP probe sees (bench/link.ts's failover): backing off
// must not cost the failover bound (300 ms). The load average is printed: the machine is shared.
// --profile DIR: the nodes write V8 CPU profiles there (node --cpu-prof). Each process's CPU is also
// shown by thread (main thread apart, others by name) with its context switches a second: the
// wake-ups an idle process pays for. Reference row, measured in the same window: two bare Node.js
// processes that only exchange the primary path's UDP heartbeat (bench/probe/heartbeat-floor.mjs),
// the floor the design's timers put under any Node.js implementation on this machine.
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

import { DEFAULT_TIMERS } from "../lib/link/paths.ts";
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

/** One thread's CPU (utime + stime, ms) and context switches (each one a wake-up or a preemption). */
interface ThreadSample {
  name: string;
  cpuMs: number;
  switches: number;
}

/** Every thread of a process, by tid (the main thread's tid is the pid). */
async function threads(pid: number): Promise<Map<number, ThreadSample>> {
  const out = new Map<number, ThreadSample>();
  for (const entry of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const stat = await readFile(`/proc/${pid}/task/${entry}/stat`, "utf8").catch(() => "");
    const status = await readFile(`/proc/${pid}/task/${entry}/status`, "utf8").catch(() => "");
    if (stat === "" || status === "") continue;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const switches = [...status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    out.set(Number(entry), { name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S, switches });
  }
  return out;
}

/**
 * Where a process's CPU went between two samples, by thread: the main thread (JS, timers, wake-ups
 * by the addon's threads) apart, the others summed by name; CPU % of a core and wake-ups a second.
 */
function threadRows(pid: number, before: Map<number, ThreadSample>, after: Map<number, ThreadSample>, elapsedMs: number): string[][] {
  const groups = new Map<string, { cpuMs: number; switches: number; count: number }>();
  for (const [tid, a] of after) {
    const b = before.get(tid) ?? { name: a.name, cpuMs: 0, switches: 0 };
    const key = tid === pid ? `main (${a.name})` : a.name;
    const g = groups.get(key) ?? { cpuMs: 0, switches: 0, count: 0 };
    g.cpuMs += a.cpuMs - b.cpuMs;
    g.switches += a.switches - b.switches;
    g.count++;
    groups.set(key, g);
  }
  return [...groups.entries()]
    .sort((x, y) => y[1].cpuMs - x[1].cpuMs || y[1].switches - x[1].switches)
    .map(([name, g]) => [name, String(g.count), ((g.cpuMs / elapsedMs) * 100).toFixed(2), ((g.switches * 1000) / elapsedMs).toFixed(0)]);
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

/** Two heartbeat-floor processes that have exchanged ports and started their heartbeats. */
async function startFloorPair(heartbeatMs: number): Promise<ChildProcess[]> {
  const script = new URL("./probe/heartbeat-floor.mjs", import.meta.url);
  const pair = [0, 1].map(() => fork(script, [String(heartbeatMs)], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  const ports = await Promise.all(pair.map(async (child) => ((await once(child, "message")) as [{ port: number }])[0].port));
  pair[0]!.send({ peerPort: ports[1] });
  pair[1]!.send({ peerPort: ports[0] });
  return pair;
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
  let floor: ChildProcess[] = [];
  try {
    await lab.startPair();
    console.log(`# idle: the lab pair with nothing but heartbeats for ${seconds} s, default settings; CPU = utime + stime from /proc`);
    console.log(machineLine());
    await sleep(SETTLE_MS);
    const heartbeatMs = DEFAULT_TIMERS.primary.heartbeatMs;
    floor = await startFloorPair(heartbeatMs);
    const processes: { name: string; pid: number }[] = [
      ...lab.nodes.map((n) => ({ name: `lunlink up (node ${n.id})`, pid: n.process!.pid! })),
      ...(await Promise.all(lab.mirrors.map(async (m) => ({ name: `mirror copy --follow ${m.source === lab.nodes[0].send ? "1 -> 2" : "2 -> 1"}`, pid: await mirrorPid(m.source) })))),
      ...floor.map((child, i) => ({ name: `reference: bare Node.js, ${heartbeatMs} ms UDP heartbeat (${i + 1})`, pid: child.pid! })),
    ];
    const loadBefore = loadavg()[0]!;
    const before = await Promise.all(processes.map((p) => cpuMs(p.pid)));
    const threadsBefore = await Promise.all(processes.map((p) => threads(p.pid)));
    const startMs = performance.now();
    await sleep(seconds * 1000);
    const after = await Promise.all(processes.map((p) => cpuMs(p.pid)));
    const threadsAfter = await Promise.all(processes.map((p) => threads(p.pid)));
    const elapsedMs = performance.now() - startMs;
    const shares = processes.map((p, i) => ({ ...p, percent: ((after[i]! - before[i]!) / elapsedMs) * 100 }));
    console.log(`load average 1 min: ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after (2 cores shared with other work)\n`);
    const lunlinkShares = shares.slice(0, shares.length - floor.length);
    const floorPercent = shares.slice(-floor.length).reduce((n, s) => n + s.percent, 0) / floor.length;
    console.log(table(["process", "CPU ms", "% of a core", "x reference", "target"], shares.map((s, i) => [s.name, (after[i]! - before[i]!).toFixed(0), s.percent.toFixed(2), (s.percent / floorPercent).toFixed(2), i < lunlinkShares.length ? "<= 2%" : "-"])));
    console.log(`pair total: ${lunlinkShares.reduce((n, s) => n + s.percent, 0).toFixed(2)}% of a core; reference: two processes that only send and receive the primary heartbeat, no storage, no JS beyond the timer, in the same ${seconds} s`);
    // By thread (context switches: wake-ups, plus preemptions on a loaded machine).
    for (const [i, p] of processes.slice(0, lunlinkShares.length).entries()) {
      console.log(`\n${p.name}, by thread:`);
      console.log(table(["thread", "threads", "% of a core", "switches/s"], threadRows(p.pid, threadsBefore[i]!, threadsAfter[i]!, elapsedMs)));
    }

    if (cuts > 0) {
      console.log(`\nfailover from idle: ${cuts} cuts of the veth, 1 ms UDP probe node 1 -> node 2 through lunlink0`);
      const times = (await failover(lab, cuts))
        .map((s) => s.failoverMs)
        .filter((x) => Number.isFinite(x))
        .sort((a, b) => a - b);
      console.log(table(["cuts", "interruption p50 ms", "p95 ms", "max ms", "bound ms"], [[String(times.length), percentile(times, 50).toFixed(0), percentile(times, 95).toFixed(0), (times.at(-1) ?? Number.NaN).toFixed(0), String(FAILOVER_BOUND_MS)]]));
    }
  } finally {
    for (const child of floor) if (child.connected) child.disconnect();
    process.off("SIGINT", stop);
    if (profileDir !== undefined) for (const id of [1, 2] as const) await lab.stopNode(id, "down").catch(() => undefined);
    await lab.destroy();
  }
}
