// `npm run bench -- cluster [--nodes 2,3,5] [--cuts N] [--idle-s S] [--seconds S] [--keyed]`: how a
// cluster's costs grow with its size. Per N, one cluster lab (lib/node/cluster-lab.ts: N namespaces on
// a switch, every node's ring in one shared loop cluster volume read directly by all, default timers;
// --keyed: the rings keyed by a cluster secret and the UDP sealed per pair):
//   1. idle CPU per node (utime + stime from /proc/PID/stat over a fixed window) and storage reads
//      per node (reads completed on the shared loop device / N, and read_bytes from /proc/PID/io);
//   2. TCP (iperf3, one stream) node 1 -> node 2 with node 2's network cut, so over storage, while
//      the others idle;
//   3. failover: cuts of one node's network (round robin), each timed from the cut until every pair
//      of the cut node is on storage at both ends (status polled every 10 ms: an upper bound).
// One table per measure, a column per N, each value with its growth ratio against the smallest N.
import { readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

import { ClusterLab } from "../lib/node/cluster-lab.ts";
import type { ClusterNodeStatus } from "../lib/node/cluster-status.ts";
import { numberArg, percentile, table } from "./stats.ts";

const IPERF_PORT = 5201;
/** Status polls while a cut is timed. */
const FAILOVER_POLL_MS = 10;
/** A cut whose pairs are not all on storage by then counts as failed (printed, not timed). */
const FAILOVER_TIMEOUT_MS = 10_000;
/** Bound on waiting for every pair to come back on the primary after a restore. */
const FAILBACK_TIMEOUT_MS = 20_000;
/** After a failback: failbackDrainMs passes and the pairs settle before the next cut. */
const SETTLE_MS = 700;
/** Bound on a cluster's start (every node up on both paths to every peer). */
const START_TIMEOUT_MS = 60_000;
/** Largest cluster a run may ask for (every node is a process on this machine). */
const MAX_BENCH_NODES = 8;

interface SizeResult {
  nodes: number;
  failoverMs: number[];
  failedCuts: number;
  cpuPercent: number[];
  deviceReadsPerSecondPerNode: number;
  readKBpsPerNode: number[];
  tcpMBps: number;
  tcpCpuMsPerMB: number;
  idleOthersCpuPercent: number;
}

export async function clusterBench(args: string[]): Promise<void> {
  const sizes = nodesArg(args);
  const cutsOverride = args.includes("--cuts") ? numberArg(args, "--cuts", 20) : undefined;
  const idleSeconds = numberArg(args, "--idle-s", 10);
  const seconds = numberArg(args, "--seconds", 5);
  const keyed = args.includes("--keyed");
  const results: SizeResult[] = [];
  for (const nodes of sizes) {
    const cuts = cutsOverride ?? defaultCuts(nodes);
    console.log(`cluster of ${nodes}${keyed ? ", keyed (cluster secret, sealed UDP)" : ""}: ${cuts} cuts, idle window ${idleSeconds} s, TCP ${seconds} s (load ${loadavg().map((l) => l.toFixed(2)).join(" ")})`);
    results.push(await measure(nodes, cuts, idleSeconds, seconds, keyed));
  }
  print(results, idleSeconds, seconds);
}

/** 20 cuts up to N = 3 (the minimum there), fewer for larger clusters (their count is printed). */
function defaultCuts(nodes: number): number {
  return nodes <= 3 ? 20 : nodes <= 5 ? 10 : 8;
}

function nodesArg(args: string[]): number[] {
  const at = args.indexOf("--nodes");
  if (at < 0) return [2, 3, 5];
  const sizes = (args[at + 1] ?? "").split(",").map(Number);
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 2 || n > MAX_BENCH_NODES)) throw new Error(`--nodes takes a comma-separated list of sizes in 2..${MAX_BENCH_NODES}, got ${JSON.stringify(args[at + 1])}`);
  return [...new Set(sizes)].sort((a, b) => a - b);
}

async function measure(nodes: number, cuts: number, idleSeconds: number, seconds: number, keyed: boolean): Promise<SizeResult> {
  const lab = await ClusterLab.create({ count: nodes, prefix: "llb-", keyed });
  const stop = () => void lab.destroy().finally(() => process.exit(130));
  process.once("SIGINT", stop);
  try {
    const ids = lab.nodes.map((n) => n.id);
    for (const id of ids) await lab.startNode(id);
    for (const id of ids) await lab.waitFor(id, "up on both paths to every peer", (s) => s.peers.length === nodes - 1 && s.peers.every((p) => p.active === "primary" && p.paths.storage.state === "up"), START_TIMEOUT_MS);
    await sleep(2000);

    // 1: idle.
    const cpuBefore = await Promise.all(ids.map((id) => cpuMs(lab, id)));
    const ioBefore = await Promise.all(ids.map((id) => readBytes(lab, id)));
    const deviceBefore = await deviceReads(lab.volume);
    await sleep(idleSeconds * 1000);
    const cpuAfter = await Promise.all(ids.map((id) => cpuMs(lab, id)));
    const ioAfter = await Promise.all(ids.map((id) => readBytes(lab, id)));
    const deviceAfter = await deviceReads(lab.volume);
    const cpuPercent = ids.map((_, i) => ((cpuAfter[i]! - cpuBefore[i]!) / (idleSeconds * 1000)) * 100);
    const readKBpsPerNode = ids.map((_, i) => (ioAfter[i]! - ioBefore[i]!) / 1024 / idleSeconds);
    const deviceReadsPerSecondPerNode = (deviceAfter - deviceBefore) / idleSeconds / nodes;

    // 2: TCP over storage between nodes 1 and 2.
    await lab.setNetwork(2, false);
    for (const [id, other] of [[1, 2], [2, 1]] as const) await lab.waitFor(id, `on storage to node ${other}`, (s) => peer(s, other).active === "storage", FAILOVER_TIMEOUT_MS, 20);
    const tcpCpuBefore = await Promise.all(ids.map((id) => cpuMs(lab, id)));
    const tcpBytesPerSecond = await iperf(lab, seconds);
    const tcpCpuAfter = await Promise.all(ids.map((id) => cpuMs(lab, id)));
    const pairCpuMs = tcpCpuAfter[0]! - tcpCpuBefore[0]! + tcpCpuAfter[1]! - tcpCpuBefore[1]!;
    const others = ids.slice(2).map((_, i) => tcpCpuAfter[i + 2]! - tcpCpuBefore[i + 2]!);
    await lab.setNetwork(2, true);
    await allOnPrimary(lab);

    // 3: failover.
    const failoverMs: number[] = [];
    let failedCuts = 0;
    for (let i = 0; i < cuts; i++) {
      const cut = ids[i % nodes]!;
      const ms = await timeCut(lab, cut);
      if (Number.isFinite(ms)) failoverMs.push(ms);
      else failedCuts++;
      await lab.setNetwork(cut, true);
      await allOnPrimary(lab);
      await sleep(SETTLE_MS);
      if ((i + 1) % 10 === 0) console.log(`  ${i + 1} cuts done`);
    }
    return {
      nodes,
      failoverMs: failoverMs.sort((a, b) => a - b),
      failedCuts,
      cpuPercent,
      deviceReadsPerSecondPerNode,
      readKBpsPerNode,
      tcpMBps: tcpBytesPerSecond / 1e6,
      tcpCpuMsPerMB: pairCpuMs / ((tcpBytesPerSecond * seconds) / 1e6),
      idleOthersCpuPercent: others.length === 0 ? Number.NaN : (others.reduce((a, b) => a + b, 0) / others.length / (seconds * 1000)) * 100,
    };
  } finally {
    process.off("SIGINT", stop);
    await lab.destroy();
  }
}

function peer(s: ClusterNodeStatus, node: number): ClusterNodeStatus["peers"][number] {
  const p = s.peers.find((x) => x.node === node);
  if (p === undefined) throw new Error(`node ${s.node} does not list peer ${node}`);
  return p;
}

/** Cuts a node's network and returns ms until every pair with it is on storage at both ends (NaN past the timeout). */
async function timeCut(lab: ClusterLab, cut: number): Promise<number> {
  const pending = new Set<string>();
  for (const n of lab.nodes) {
    if (n.id === cut) continue;
    pending.add(`${cut}>${n.id}`);
    pending.add(`${n.id}>${cut}`);
  }
  const cutAt = performance.now();
  await lab.setNetwork(cut, false);
  while (pending.size > 0 && performance.now() - cutAt < FAILOVER_TIMEOUT_MS) {
    const polled = [...new Set([...pending].map((k) => Number(k.split(">")[0])))];
    const statuses = await Promise.all(polled.map((id) => lab.status(id)));
    for (const s of statuses) for (const p of s.peers) if (p.active === "storage") pending.delete(`${s.node}>${p.node}`);
    if (pending.size > 0) await sleep(FAILOVER_POLL_MS);
  }
  return pending.size === 0 ? performance.now() - cutAt : Number.NaN;
}

async function allOnPrimary(lab: ClusterLab): Promise<void> {
  for (const n of lab.nodes) await lab.waitFor(n.id, "back on the primary to every peer", (s) => s.peers.every((p) => p.active === "primary" && p.paths.primary.state === "up"), FAILBACK_TIMEOUT_MS, 25);
}

/** iperf3, one stream, node 1 -> node 2's TUN address; bytes per second received. */
async function iperf(lab: ClusterLab, seconds: number): Promise<number> {
  const address = lab.node(2).tunAddress;
  const server = lab.spawnIn(2, "iperf3", ["-s", "-1", "-B", address, "-p", String(IPERF_PORT)]);
  await sleep(300);
  const json = JSON.parse(await lab.exec(1, "iperf3", ["-c", address, "-p", String(IPERF_PORT), "-t", String(seconds), "-J"], (seconds + 30) * 1000)) as { end: { sum_received: { bits_per_second: number } } };
  await new Promise((r) => (server.exitCode === null ? server.once("exit", r) : r(undefined)));
  return json.end.sum_received.bits_per_second / 8;
}

/** CPU time (utime + stime, ms) of a node's `lunlink up` so far (`ip netns exec` execs it: same pid). */
async function cpuMs(lab: ClusterLab, id: number): Promise<number> {
  const stat = await readFile(`/proc/${lab.node(id).process!.pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
}

/** Bytes a node's process had the block layer read for it (its O_DIRECT reads of the shared volume). */
async function readBytes(lab: ClusterLab, id: number): Promise<number> {
  const io = await readFile(`/proc/${lab.node(id).process!.pid}/io`, "utf8");
  return Number(/^read_bytes: (\d+)$/m.exec(io)?.[1] ?? Number.NaN);
}

/** Reads completed on a block device (first field of /sys/block/NAME/stat). */
async function deviceReads(device: string): Promise<number> {
  const stat = await readFile(`/sys/block/${device.replace("/dev/", "")}/stat`, "utf8");
  return Number(stat.trim().split(/\s+/)[0]);
}

function print(results: SizeResult[], idleSeconds: number, seconds: number): void {
  const base = results[0]!;
  const header = (what: string) => [what, ...results.map((r) => `N = ${r.nodes}`)];
  const grow = (value: (r: SizeResult) => number, digits: number) => results.map((r) => `${value(r).toFixed(digits)} (x${(value(r) / value(base)).toFixed(2)})`);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const vs = `value (x growth vs N = ${base.nodes})`;

  console.log(`\nfailover: a node's network cut (round robin), cut -> every pair of the cut node on storage at both ends (status polled every ${FAILOVER_POLL_MS} ms; ${vs})`);
  console.log(
    table(header("failover"), [
      ["cuts timed", ...results.map((r) => String(r.failoverMs.length))],
      ["cuts not on storage within 10 s", ...results.map((r) => String(r.failedCuts))],
      ["p50 ms", ...grow((r) => percentile(r.failoverMs, 50), 0)],
      ["p95 ms", ...grow((r) => percentile(r.failoverMs, 95), 0)],
      ["max ms", ...grow((r) => r.failoverMs.at(-1) ?? Number.NaN, 0)],
    ]),
  );

  console.log(`\nidle CPU per node: utime + stime of each lunlink up over ${idleSeconds} s, every pair on the primary (% of one core; ${vs})`);
  console.log(
    table(header("idle CPU"), [
      ["mean % per node", ...grow((r) => mean(r.cpuPercent), 2)],
      ["max % of one node", ...grow((r) => Math.max(...r.cpuPercent), 2)],
      ["whole cluster %", ...grow((r) => r.cpuPercent.reduce((a, b) => a + b, 0), 2)],
    ]),
  );

  console.log(`\nstorage reads per node while idle, over ${idleSeconds} s (${vs})`);
  console.log(
    table(header("storage reads"), [
      ["reads/s per node (loop device reads / N)", ...grow((r) => r.deviceReadsPerSecondPerNode, 0)],
      ["KB/s per node, mean (/proc/PID/io read_bytes)", ...grow((r) => mean(r.readKBpsPerNode), 0)],
      ["KB/s, max of one node", ...grow((r) => Math.max(...r.readKBpsPerNode), 0)],
    ]),
  );

  console.log(`\nTCP node 1 -> node 2 over storage (node 2's network cut; iperf3, 1 stream, ${seconds} s) while the other nodes idle (${vs})`);
  console.log(
    table(header("TCP over storage"), [
      ["MB/s", ...grow((r) => r.tcpMBps, 1)],
      ["CPU ms/MB, nodes 1 + 2", ...grow((r) => r.tcpCpuMsPerMB, 2)],
      ["CPU % per idle other node", ...results.map((r) => (Number.isNaN(r.idleOthersCpuPercent) ? "(none)" : r.idleOthersCpuPercent.toFixed(2)))],
    ]),
  );
}
