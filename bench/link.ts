// `npm run bench -- link [--cuts N] [--seconds S] [--keys] [--mtu N] [--plot DIR] [--only storage] [--stages] [--ss] [--hog]`: the link end to end in the two-host lab
// (lib/node/lab.ts: namespaces, veth, loop devices with direct I/O, local mirrors), side by side in
// one run with the plain veth and wireguard-go over the same veth:
//   1. failover: N cuts of the veth with a 1 ms UDP probe node 1 -> node 2 through lunlink0;
//      per switch: the interruption (longest gap between probe arrivals from the cut until the
//      restore, i.e. cut -> traffic flowing over storage), probes lost, duplicated, reordered;
//   2. ping RTT (p50/p99 of 200 pings at 10 ms) and TCP throughput (iperf3, one stream);
//   3. CPU per MB of the two lunlink processes during each TCP run; for the storage rows also what the
//      ring did (records, frames per record, bytes per record, drops) and TCP's view (ss -tin: cwnd, rtt);
//   4. fio running the storage path's four-stream pattern (write A, read A, write B, read B) on two
//      loop devices of its own, the reference the storage rows are held against; and the send ring
//      alone (the link's RingWriter settings flooded on a loop device, 1 vs LINK_RECORDS_IN_FLIGHT
//      record writes in flight), the bound the writer sets with nothing else in the way.
// `--only storage` runs just the storage TCP rows and fio (no veth, wireguard-go, primary, failover).
// `--stages` traces every record of the storage TCP runs through writer, mirror and poller (link-stages.ts).
// `--no-reference` skips fio and the send ring alone (quick A/B runs of the storage rows).
// `--tun-txqueuelen N` sets lunlink0's txqueuelen on both nodes before the TCP runs (ip link; an experiment beside the product's own setting).
// `--ss` samples `ss -tin` every 100 ms in both namespaces during the storage TCP runs (link-tcp.ts: what limits the window).
// `--hog` adds the storage TCP rows again with stress-ng (bench/hog.ts: a worker per core) running beside them,
// each held against its quiet row ("x quiet"; issue #13: it must keep >= 0.5x).
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";

import { Lab } from "../lib/node/lab.ts";
import type { LinkStatus } from "../lib/link/link.ts";
import { LINK_RECORDS_IN_FLIGHT } from "../lib/link/storage-path.ts";
import { fourStreams, sendRingAlone, STORAGE_FIO_BLOCK_BYTES } from "./link-fio.ts";
import { STAGE_COLUMNS, stageRows } from "./link-stages.ts";
import { counterDeltas, mirrorCpuMs, netCounters, sampleSeries, TCP_COLUMNS, tcpRow, timeCourse, windowSettings } from "./link-tcp.ts";
import { startHog } from "./hog.ts";
import { withScratch } from "./scratch.ts";
import { numberArg, percentile, ratio, table } from "./stats.ts";
import { assertCanPlot, writeCharts } from "../lib/cli/plot.ts";
import { linkCharts, plotDirArg, type CutEvent, type ProbeRow } from "./plot.ts";

const execFileAsync = promisify(execFile);
const wallMs = () => performance.timeOrigin + performance.now();
const PROBE_PORT = 6001;
const IPERF_PORT = 5201;
/** After a traced run: longer than the trace's flush period (stage-trace.ts), so every line is on disk. */
const TRACE_SETTLE_MS = 800;

export async function linkBench(args: string[]): Promise<void> {
  const cuts = numberArg(args, "--cuts", 50);
  const seconds = numberArg(args, "--seconds", 5);
  const keys = args.includes("--keys");
  const tunMtu = numberArg(args, "--mtu", 1400);
  const plotDir = plotDirArg(args);
  const storageOnly = args[args.indexOf("--only") + 1] === "storage" && args.includes("--only");
  const hog = args.includes("--hog");
  const ssSeries = args.includes("--ss");
  const references = !args.includes("--no-reference");
  const tcpRows: string[][] = [];
  const tcpCourses: string[] = [];
  if (plotDir !== undefined) await assertCanPlot();
  // The lab's processes inherit the variable and trace (lib/ring/stage-trace.ts); this one does not (read at import).
  const traceDir = args.includes("--stages") ? await mkdtemp(join(tmpdir(), "lunlink-stages-")) : undefined;
  if (traceDir !== undefined) process.env["LUNLINK_STAGE_TRACE"] = traceDir;
  const stages: string[][] = [];
  const lab = await Lab.create({ prefix: "llb-", keys, tunMtu });
  const stop = () => void lab.destroy().finally(() => process.exit(130));
  process.once("SIGINT", stop);
  try {
    await lab.startPair();
    const txQueueLen = args.includes("--tun-txqueuelen") ? numberArg(args, "--tun-txqueuelen", 0) : undefined;
    if (txQueueLen !== undefined) for (const id of [1, 2] as const) await lab.exec(id, "/usr/sbin/ip", ["link", "set", "dev", "lunlink0", "txqueuelen", String(txQueueLen)]);
    console.log(`lab: loop devices (direct I/O, 4096-byte sectors), mirrors in the root namespace, default timers, ${keys ? "keys: sealed UDP and keyed rings" : "no keys"}, TUN MTU ${tunMtu}`);
    const wireguard = storageOnly ? undefined : await startWireguard(lab).catch((error: Error) => {
      console.log(`wireguard-go: not measured (${error.message})`);
      return undefined;
    });

    // 2 + 3: RTT and throughput per path.
    const rows: string[][] = [];
    const allTargets: { name: string; address: string; prepare: () => Promise<void>; congestion?: string; hogged?: boolean }[] = [
      { name: "veth (no tunnel)", address: lab.nodes[1].underlayAddress, prepare: async () => undefined },
      ...(wireguard === undefined ? [] : [{ name: "wireguard-go over the veth", address: wireguard, prepare: async () => undefined }]),
      { name: "lunlink0, primary (UDP)", address: lab.nodes[1].tunAddress, prepare: async () => undefined },
      {
        name: "lunlink0, storage (veth cut)",
        address: lab.nodes[1].tunAddress,
        prepare: async () => {
          await lab.setPrimary(false);
          for (const id of [1, 2] as const) await lab.waitFor(id, "on storage", (s) => s.active === "storage");
        },
      },
      // The host's default congestion control here is BBR; ring-batched delivery (bursts of a record's
      // packets every few ms) suits loss-based CUBIC better. Same path, TCP told to use cubic.
      { name: "lunlink0, storage, TCP cubic", address: lab.nodes[1].tunAddress, prepare: async () => undefined, congestion: "cubic" },
    ];
    if (hog) {
      allTargets.push(
        { name: "lunlink0, storage, CPU hog", address: lab.nodes[1].tunAddress, prepare: async () => undefined, hogged: true },
        { name: "lunlink0, storage, TCP cubic, CPU hog", address: lab.nodes[1].tunAddress, prepare: async () => undefined, congestion: "cubic", hogged: true },
      );
    }
    const targets = storageOnly ? allTargets.filter((t) => t.name.includes("storage")) : allTargets;
    /** Quiet storage rows by congestion control, for the hogged rows' "x quiet". */
    const quiet = new Map<string, number>();
    const fioBytesPerSecond: number[] = [];
    for (const blockBytes of STORAGE_FIO_BLOCK_BYTES) {
      if (!references) {
        fioBytesPerSecond.push(Number.NaN);
        continue;
      }
      fioBytesPerSecond.push(
        await withScratch((scratch) => fourStreams(scratch, seconds, blockBytes)).catch((error: Error) => {
          console.log(`fio four streams, ${blockBytes / 1024} KiB: not measured (${error.message})`);
          return Number.NaN;
        }),
      );
    }
    let veth = 0;
    const ringRows: string[][] = [];
    for (const target of targets) {
      await target.prepare();
      const rtt = await pingRtt(lab, target.address);
      const cpuBefore = await cpuMs(lab);
      const before = await Promise.all([lab.status(1), lab.status(2)]);
      const sampled = target.name.includes("storage") ? sampleTcp(lab, seconds) : Promise.resolve("");
      const countersBefore = ssSeries && target.name.includes("storage") ? await Promise.all([netCounters(lab, 1), netCounters(lab, 2)]) : undefined;
      const mirrorCpuBefore = await mirrorCpuMs(lab.mirrors.map((m) => m.source));
      const series = ssSeries && target.name.includes("storage") ? Promise.all([sampleSeries(lab, 1, IPERF_PORT, seconds + 1, "sender"), sampleSeries(lab, 2, IPERF_PORT, seconds + 1, "receiver")]) : undefined;
      const hogger = target.hogged === true ? startHog(seconds + HOG_MARGIN_S) : undefined;
      const startUs = wallMs() * 1000;
      let hogRan = true;
      const { bytesPerSecond, retransmits, perSecondMBps } = await iperf(lab, target.address, seconds, target.congestion).finally(async () => {
        if (hogger !== undefined) hogRan = await hogger.stop();
      });
      if (traceDir !== undefined && target.name.includes("storage")) {
        await sleep(TRACE_SETTLE_MS);
        stages.push(...(await stageRows(traceDir, lab, stageRunLabel(target), startUs, wallMs() * 1000 - TRACE_SETTLE_MS * 1000)));
      }
      const cpu = (await cpuMs(lab)) - cpuBefore;
      const mirrorCpu = (await mirrorCpuMs(lab.mirrors.map((m) => m.source))) - mirrorCpuBefore;
      const after = await Promise.all([lab.status(1), lab.status(2)]);
      const tcp = await sampled;
      if (series !== undefined) {
        const [sender, receiver] = await series;
        tcpRows.push(tcpRow(stageRunLabel(target), sender, receiver));
        tcpCourses.push(`${stageRunLabel(target)}: ${timeCourse(sender, perSecondMBps)}`);
        if (countersBefore !== undefined) {
          const after = await Promise.all([netCounters(lab, 1), netCounters(lab, 2)]);
          tcpCourses.push(`${stageRunLabel(target)}: kernel counters node 1 (sender): ${counterDeltas(countersBefore[0], after[0])}; node 2 (receiver): ${counterDeltas(countersBefore[1], after[1])}`);
        }
        tcpCourses.push(`${stageRunLabel(target)}: mirrors' CPU ${(mirrorCpu / ((bytesPerSecond * seconds) / 1e6)).toFixed(2)} ms/MB (both), nodes' ${(cpu / ((bytesPerSecond * seconds) / 1e6)).toFixed(2)}`);
      }
      if (veth === 0 && !storageOnly) veth = bytesPerSecond;
      const lunlink = target.name.startsWith("lunlink");
      const storage = target.name.includes("storage");
      if (storage && target.hogged !== true) quiet.set(target.congestion ?? "default", bytesPerSecond);
      const quietBytesPerSecond = target.hogged === true ? quiet.get(target.congestion ?? "default") : undefined;
      rows.push([target.name, rtt.p50.toFixed(3), rtt.p99.toFixed(3), (bytesPerSecond / 1e6).toFixed(1), ratio(bytesPerSecond, veth), ...fioBytesPerSecond.map((f) => (storage ? ratio(bytesPerSecond, f) : "")), lunlink ? (cpu / ((bytesPerSecond * seconds) / 1e6)).toFixed(2) : "", quietBytesPerSecond === undefined ? "" : hogRan ? ratio(bytesPerSecond, quietBytesPerSecond) : "no hog (stress-ng not running)"]);
      if (storage) for (const id of [1, 2] as const) ringRows.push([target.name, `${id} -> ${3 - id}`, ...ringActivity(before[id - 1]!, after[id - 1]!, before[2 - id]!, after[2 - id]!), id === 1 ? `${tcp}; ${retransmits} retransmits` : ""]);
    }
    if (!storageOnly) {
      await lab.setPrimary(true);
      for (const id of [1, 2] as const) await lab.waitFor(id, "back on the primary", (s) => s.active === "primary", 15_000);
    }
    const cc = (await lab.exec(1, "sysctl", ["-n", "net.ipv4.tcp_congestion_control"])).trim();
    console.log(`\nRTT and TCP throughput (iperf3, 1 stream, ${seconds} s; TUN MTU ${tunMtu}, veth MTU ${Math.max(1500, tunMtu + 80)}; congestion control ${cc} unless named)`);
    console.log(table(["path", "ping p50 ms", "ping p99 ms", "TCP MB/s", "x veth", ...STORAGE_FIO_BLOCK_BYTES.map((b) => `x fio 4 streams ${b / 1024} KiB`), "lunlink CPU ms/MB (both nodes)", "x quiet (hogged rows)"], rows));
    const fioFigures = STORAGE_FIO_BLOCK_BYTES.map((b, i) => `${(fioBytesPerSecond[i]! / 1e6).toFixed(1)} MB/s at ${b / 1024} KiB`).join(", ");
    console.log(`fio four streams (write A O_DSYNC, read A, write B, read B at once; O_DIRECT, loop devices with direct I/O, ${seconds} s each), the slowest stream: ${fioFigures} (the rate data could cross that pipeline)`);
    console.log(`\nring activity during the storage TCP runs (writer of the sending node, reader of the receiving one; TCP as ss -tin saw it on node 1 halfway)`);
    console.log(table(["path", "direction", "records", "frames/record", "KiB/record", "frames dropped", "reader records", "reader lost", "ss -tin node 1; iperf3 retransmits"], ringRows));
    if (ssSeries) {
      console.log(`\nwhat limits TCP during the storage runs (ss -tin every 100 ms in both namespaces; p50/p95/max; limited times from tcpi as of the last sample, share of busy)`);
      for (const id of [1, 2] as const) console.log(await windowSettings(lab, id));
      console.log(table(TCP_COLUMNS, tcpRows));
      console.log(`per second (iperf3 sender MB/s, sender cwnd / unacked / rtt ms, median of the second's samples):`);
      for (const line of tcpCourses) console.log(`  ${line}`);
    }
    if (traceDir !== undefined) {
      console.log(`\nwhere a record's time goes during the storage TCP runs (stage trace; each step from the one before; enqueued: the record's first frame appended to the writer); load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
      console.log(table(STAGE_COLUMNS, stages));
    }
    if (!references) return;
    const sendRing: string[][] = [];
    for (const inFlight of [1, LINK_RECORDS_IN_FLIGHT]) {
      const r = await withScratch((scratch) => sendRingAlone(scratch, seconds, inFlight)).catch((error: Error) => error);
      sendRing.push(r instanceof Error ? [String(inFlight), `not measured (${r.message})`, "", ""] : [String(inFlight), (r.bytesPerSecond / 1e6).toFixed(1), r.cpuMsPerMB.toFixed(2), r.kibPerRecord.toFixed(0)]);
    }
    console.log(`\nthe send ring alone (RingWriter, the link's settings, O_DSYNC loop device, ${seconds} s flood of ${1400 + 64}-byte frames; no TCP, mirror or reader); load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    console.log(table(["record writes in flight", "MB/s", "CPU ms/MB", "KiB/record"], sendRing));
    if (storageOnly) return;

    // 1: failover.
    console.log(`\nfailover: ${cuts} cuts of the veth, 1 ms UDP probe node 1 -> node 2 through lunlink0`);
    let probes: { rows: ProbeRow[]; events: CutEvent[] } | undefined;
    const switches = await failover(lab, cuts, (rows, events) => (probes = { rows, events }));
    const times = switches.map((s) => s.failoverMs).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    console.log(
      table(
        ["cuts", "interruption p50 ms", "p95 ms", "max ms", "lost per cut p50/max", "duplicates", "reordered", "lost per failback p50/max", "failback dup/reorder"],
        [
          [
            String(switches.length),
            percentile(times, 50).toFixed(0),
            percentile(times, 95).toFixed(0),
            (times.at(-1) ?? Number.NaN).toFixed(0),
            `${percentile(switches.map((s) => s.lost).sort((a, b) => a - b), 50)}/${Math.max(...switches.map((s) => s.lost))}`,
            String(switches.reduce((n, s) => n + s.duplicates, 0)),
            String(switches.reduce((n, s) => n + s.reordered, 0)),
            `${percentile(switches.map((s) => s.lostBack).sort((a, b) => a - b), 50)}/${Math.max(...switches.map((s) => s.lostBack))}`,
            `${switches.reduce((n, s) => n + s.duplicatesBack, 0)}/${switches.reduce((n, s) => n + s.reorderedBack, 0)}`,
          ],
        ],
      ),
    );
    if (plotDir !== undefined && probes !== undefined) {
      const label = `${keys ? "keys" : "no keys"}, TUN MTU ${tunMtu}`;
      for (const path of await writeCharts(plotDir, linkCharts(probes.rows, probes.events, switches.map((s) => s.failoverMs), label))) console.log(`chart: ${path}`);
    }
    const corosync = await corosyncDetection(lab, Math.min(cuts, 5)).catch((error: Error) => {
      console.log(`corosync: not measured (${error.message})`);
      return undefined;
    });
    if (corosync !== undefined) {
      console.log(`\ncorosync 3 (knet, default totem timers, two_node) in the same namespaces over the same veth: ${corosync.length} cuts`);
      const sorted = [...corosync].sort((a, b) => a.membershipMs - b.membershipMs);
      console.log(
        table(
          ["cuts", "knet link down p50 ms", "token timeout p50 ms", "membership without the peer p50 ms", "max ms", "x lunlink interruption p50"],
          [[String(corosync.length), percentile(corosync.map((c) => c.linkDownMs).sort((a, b) => a - b), 50).toFixed(0), percentile(corosync.map((c) => c.tokenMs).sort((a, b) => a - b), 50).toFixed(0), percentile(sorted.map((c) => c.membershipMs), 50).toFixed(0), (sorted.at(-1)?.membershipMs ?? Number.NaN).toFixed(0), ratio(percentile(sorted.map((c) => c.membershipMs), 50), percentile(times, 50))]],
        ),
      );
    }
  } finally {
    process.off("SIGINT", stop);
    await lab.destroy();
    if (traceDir !== undefined) await rm(traceDir, { recursive: true, force: true });
  }
}

/** The writer's records, frames and bytes of one direction between two status snapshots, and its reader's. */
function ringActivity(writerBefore: LinkStatus, writerAfter: LinkStatus, readerBefore: LinkStatus, readerAfter: LinkStatus): string[] {
  const w0 = writerBefore.ring.writerCounters;
  const w1 = writerAfter.ring.writerCounters;
  const records = w1.records - w0.records;
  const frames = w1.framesAppended - w0.framesAppended;
  const bytes = w1.bytesWritten - w0.bytesWritten;
  const r0 = readerBefore.ring.readerCounters;
  const r1 = readerAfter.ring.readerCounters;
  return [String(records), records > 0 ? (frames / records).toFixed(1) : "-", records > 0 ? (bytes / records / 1024).toFixed(1) : "-", String(w1.framesDropped - w0.framesDropped), String(r1.records - r0.records), String(BigInt(r1.lost) - BigInt(r0.lost))];
}

/** Bound on a hog's life beyond its TCP run: stress-ng stops itself even if this process dies first. */
const HOG_MARGIN_S = 30;

/** A storage run's name in the stage table: its congestion control, and the hog when one ran beside it. */
export function stageRunLabel(target: { congestion?: string; hogged?: boolean }): string {
  return `${target.congestion ?? "default"}${target.hogged === true ? ", CPU hog" : ""}`;
}

/** cwnd, rtt and unacked segments of node 1's iperf3 data connection, halfway through the run. */
async function sampleTcp(lab: Lab, seconds: number): Promise<string> {
  await sleep((seconds * 1000) / 2 + 300);
  const out = await lab.exec(1, "ss", ["-tin", "dport", "=", String(IPERF_PORT)]).catch(() => "");
  // The data connection is the one that moved the most bytes (the other is iperf3's control connection).
  const bytes = (l: string) => Number(/bytes_acked:(\d+)/.exec(l)?.[1] ?? 0);
  const last = out.split("\n").filter((l) => l.includes("cwnd:")).sort((x, y) => bytes(y) - bytes(x))[0] ?? "";
  const pick = (re: RegExp) => re.exec(last)?.[1] ?? "?";
  return `cwnd ${pick(/cwnd:(\d+)/)} rtt ${pick(/ rtt:([\d.]+)/)} ms unacked ${pick(/unacked:(\d+)/)} ${pick(/(bbr|cubic)/)}`;
}

async function pingRtt(lab: Lab, address: string): Promise<{ p50: number; p99: number }> {
  const out = await lab.exec(1, "ping", ["-n", "-c", "200", "-i", "0.01", "-W", "1", address], 60_000);
  const times = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

/** Received bytes per second of one iperf3 stream, and the sender's retransmitted segments. */
async function iperf(lab: Lab, address: string, seconds: number, congestion?: string): Promise<{ bytesPerSecond: number; retransmits: number; perSecondMBps: number[] }> {
  const server = lab.spawnIn(2, "iperf3", ["-s", "-1", "-B", address, "-p", String(IPERF_PORT)]);
  await sleep(300);
  const json = JSON.parse(await lab.exec(1, "iperf3", ["-c", address, "-p", String(IPERF_PORT), "-t", String(seconds), "-J", ...(congestion === undefined ? [] : ["-C", congestion])], (seconds + 30) * 1000)) as { intervals?: { sum: { bits_per_second: number } }[]; end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } } };
  await new Promise((r) => (server.exitCode === null ? server.once("exit", r) : r(undefined)));
  const perSecondMBps = (json.intervals ?? []).map((i) => i.sum.bits_per_second / 8e6);
  return { bytesPerSecond: json.end.sum_received.bits_per_second / 8, retransmits: json.end.sum_sent.retransmits ?? Number.NaN, perSecondMBps };
}

/** CPU time (user + system, ms) of both lunlink processes so far. */
async function cpuMs(lab: Lab): Promise<number> {
  let total = 0;
  for (const n of lab.nodes) {
    const stat = await readFile(`/proc/${n.process!.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
  }
  return total;
}

interface Switch {
  failoverMs: number;
  lost: number;
  duplicates: number;
  reordered: number;
  lostBack: number;
  duplicatesBack: number;
  reorderedBack: number;
}

export async function failover(lab: Lab, cuts: number, onProbes?: (rows: ProbeRow[], events: CutEvent[]) => void): Promise<Switch[]> {
  const probe = join(import.meta.dirname, "probe", "udp-probe.ts");
  const target = `${lab.nodes[1].tunAddress}:${PROBE_PORT}`;
  const receiver = lab.spawnIn(2, process.execPath, ["--import=tsx", probe, "recv", target, String(cuts * 6 + 30)]);
  const lines = createInterface({ input: receiver.stdout! });
  const output: string[] = [];
  const listening = new Promise<void>((resolve) => lines.on("line", (l) => (l.includes("listening") ? resolve() : output.push(l))));
  await listening;
  const sender = lab.spawnIn(1, process.execPath, ["--import=tsx", probe, "send", target, "1", String(cuts * 6 + 20)]);
  await sleep(500);
  const events: { cutAt: number; restoreAt: number }[] = [];
  for (let i = 0; i < cuts; i++) {
    const cutAt = wallMs();
    await lab.setPrimary(false);
    await lab.waitFor(1, "on storage", (s) => s.active === "storage");
    await lab.waitFor(2, "on storage", (s) => s.active === "storage");
    await sleep(300);
    const restoreAt = wallMs();
    await lab.setPrimary(true);
    for (const id of [1, 2] as const) await lab.waitFor(id, "back on the primary", (s) => s.active === "primary" && s.paths.primary.state === "up", 15_000);
    await sleep(700); // failbackDrainMs passes: data is on the primary again
    events.push({ cutAt, restoreAt });
    if ((i + 1) % 10 === 0) process.stdout.write(`  ${i + 1} cuts done\n`);
  }
  sender.stdin!.end();
  await new Promise((r) => sender.once("exit", r));
  await sleep(200);
  receiver.stdin!.end();
  await new Promise((r) => receiver.once("exit", r));
  const rows = (JSON.parse(output.at(-1)!) as { rows: [number, number, number][] }).rows;
  onProbes?.(rows, events);
  return events.map((e, i) => {
    const until = events[i + 1]?.cutAt ?? Number.POSITIVE_INFINITY;
    const cutWindow = analyse(rows, e.cutAt - 200, e.restoreAt);
    // The interruption the application sees: the longest gap between probe arrivals from just
    // before the cut until the restore (probes go every 1 ms).
    const arrivals = rows.filter((r) => r[2] >= e.cutAt - 50 && r[2] < e.restoreAt).map((r) => r[2]).sort((x, y) => x - y);
    let gapMs = 0;
    for (let k = 1; k < arrivals.length; k++) gapMs = Math.max(gapMs, arrivals[k]! - arrivals[k - 1]!);
    const back = analyse(rows, e.restoreAt, Math.min(until, e.restoreAt + 3000));
    return { failoverMs: arrivals.length < 2 ? Number.NaN : gapMs, lost: cutWindow.lost, duplicates: cutWindow.duplicates, reordered: cutWindow.reordered, lostBack: back.lost, duplicatesBack: back.duplicates, reorderedBack: back.reordered };
  });
}

/** Loss, duplicates and reorders among probes sent in [from, to). */
function analyse(rows: [number, number, number][], from: number, to: number): { lost: number; duplicates: number; reordered: number } {
  const inWindow = rows.filter((r) => r[1] >= from && r[1] < to);
  if (inWindow.length === 0) return { lost: 0, duplicates: 0, reordered: 0 };
  const seqs = inWindow.map((r) => r[0]);
  const distinct = new Set(seqs);
  const lo = Math.min(...seqs);
  const hi = Math.max(...seqs);
  let reordered = 0;
  let max = -1;
  for (const s of seqs) {
    if (s < max) reordered++;
    max = Math.max(max, s);
  }
  return { lost: hi - lo + 1 - distinct.size, duplicates: seqs.length - distinct.size, reordered };
}

interface CorosyncCut {
  linkDownMs: number;
  tokenMs: number;
  membershipMs: number;
}

/**
 * corosync's own failure detection for the same cut: one corosync per namespace (knet over the lab's
 * veth, default totem timers), each in a private mount namespace so their runtime files (/run,
 * /var/lib/corosync) do not collide; the time from the cut to the log lines that say the peer is gone.
 */
async function corosyncDetection(lab: Lab, cuts: number): Promise<CorosyncCut[]> {
  await execFileAsync("which", ["corosync"]).catch(() => {
    throw new Error("corosync missing (scripts/deps.sh bench installs it)");
  });
  const events: { node: number; atMs: number; line: string }[] = [];
  for (const n of lab.nodes) {
    const nodes = lab.nodes.map((m) => `  node {\n    ring0_addr: ${m.underlayAddress}\n    nodeid: ${m.id}\n    name: n${m.id}\n  }`).join("\n");
    const conf = join(lab.dir, `corosync${n.id}.conf`);
    await writeFile(conf, `totem {\n  version: 2\n  cluster_name: lunlink-bench\n  transport: knet\n  crypto_cipher: none\n  crypto_hash: none\n}\nnodelist {\n${nodes}\n}\nquorum {\n  provider: corosync_votequorum\n  two_node: 1\n}\nlogging {\n  to_stderr: yes\n  to_syslog: no\n  to_logfile: no\n  debug: off\n}\n`);
    const child = lab.spawnIn(n.id, "unshare", ["-m", "--propagation", "private", "sh", "-c", `mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/corosync && exec corosync -f -c ${conf}`]);
    createInterface({ input: child.stderr! }).on("line", (line) => events.push({ node: n.id, atMs: wallMs(), line }));
  }
  const until = async (from: number, pattern: RegExp, timeoutMs: number): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const hit = events.find((e) => e.node === 1 && e.atMs >= from && pattern.test(e.line));
      if (hit !== undefined) return hit.atMs;
      await sleep(10);
    }
    throw new Error(`no corosync log line ${pattern} within ${timeoutMs} ms`);
  };
  await until(0, /Members\[2\]/, 20_000);
  const out: CorosyncCut[] = [];
  for (let i = 0; i < cuts; i++) {
    await lab.setPrimary(false);
    const cutAt = wallMs();
    const membership = await until(cutAt, /Members left|Members\[1\]/, 30_000);
    const linkDown = events.find((e) => e.node === 1 && e.atMs >= cutAt && /link: 0 is down/.test(e.line))?.atMs ?? Number.NaN;
    const token = events.find((e) => e.node === 1 && e.atMs >= cutAt && /token timed out|processor failed/.test(e.line))?.atMs ?? Number.NaN;
    out.push({ linkDownMs: linkDown - cutAt, tokenMs: token - cutAt, membershipMs: membership - cutAt });
    const restoredAt = wallMs();
    await lab.setPrimary(true);
    await until(restoredAt, /Members\[2\]/, 30_000);
  }
  return out;
}

/** wireguard-go between the two namespaces over the same veth; returns node 2's tunnel address. */
async function startWireguard(lab: Lab): Promise<string> {
  await execFileAsync("which", ["wireguard-go", "wg"]).catch(() => {
    throw new Error("wireguard-go or wg missing (scripts/deps.sh bench installs them)");
  });
  const keys = await Promise.all(
    [0, 1].map(async () => {
      const priv = (await execFileAsync("wg", ["genkey"])).stdout.trim();
      const pub = await new Promise<string>((resolve, reject) => {
        const child = execFile("wg", ["pubkey"], (error, stdout) => (error ? reject(error) : resolve(stdout.trim())));
        child.stdin!.end(priv);
      });
      return { priv, pub };
    }),
  );
  for (const n of lab.nodes) {
    const me = keys[n.id - 1]!;
    const peer = lab.nodes[2 - n.id]!;
    const keyFile = join(lab.dir, `wg${n.id}.key`);
    await import("node:fs/promises").then((fs) => fs.writeFile(keyFile, me.priv, { mode: 0o600 }));
    // Foreground (-f) under the lab, so destroy() ends it with the namespace. Its UAPI socket
    // (/var/run/wireguard/<name>.sock) is not namespaced: each node needs its own interface name.
    const dev = `wgb${n.id}`;
    lab.spawnIn(n.id, "env", ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1", "wireguard-go", "-f", dev]);
    for (let i = 0; i < 50 && !(await execFileAsync("ip", ["-n", n.ns, "link", "show", dev]).then(() => true, () => false)); i++) await sleep(50);
    await execFileAsync("ip", ["netns", "exec", n.ns, "wg", "set", dev, "private-key", keyFile, "listen-port", "51820", "peer", keys[peer.id - 1]!.pub, "allowed-ips", `198.18.200.${peer.id}/32`, "endpoint", `${peer.underlayAddress}:51820`]);
    await execFileAsync("ip", ["-n", n.ns, "addr", "add", `198.18.200.${n.id}/24`, "dev", dev]);
    await execFileAsync("ip", ["-n", n.ns, "link", "set", dev, "mtu", "1420", "up"]);
  }
  return "198.18.200.2";
}
