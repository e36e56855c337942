// `lunlink demo`: the main job. Two hosts in network namespaces joined by a veth (their network),
// four loop devices (each host's send and receive volume) with lunlink's local mirror in the root
// namespace standing in for the array, and `lunlink up` on both. It pings across the TUN addresses
// and runs a checksummed TCP stream while it cuts the veth (traffic moves to storage), restores it
// (traffic fails back), prints a timeline with the measured interruption, checks the stream's
// SHA-256 end to end, and removes everything it made, also on Ctrl-C.
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

import { parse } from "./args.ts";
import { assertCanPlot, writeCharts } from "./plot.ts";
import { DemoRecorder } from "./plot-data.ts";
import { Lab } from "../node/lab.ts";
import type { Command } from "./command.ts";

const STREAM_BYTES = 120 * 1024 * 1024;
const STREAM_RATE_MBPS = 12;
const PING_INTERVAL_S = 0.01;
const PING_COUNT = 1300; // 13 s at 10 ms: bounded
const CUT_AT_MS = 3000;
const RESTORE_AT_MS = 7000;
/** Bound on the wait for the stream's first bytes at node 2 (a loaded host starts its processes slowly). */
const STREAM_START_TIMEOUT_MS = 30_000;

export const demoCommand: Command = {
  summary: "the main job: two hosts in namespaces, cut their network, watch traffic move to storage (root)",
  usage: [
    "Usage: lunlink demo [--plot DIR]",
    "",
    "Builds two hosts in network namespaces (lld-*-node1/2) joined by a veth (198.18.1.0/24), four 64 MiB",
    "loop devices (direct I/O, 4096-byte sectors) and two local mirrors in the root namespace (the",
    "array), starts `lunlink up` on both (lunlink0: 198.18.100.1 and .2), then pings and streams",
    `${STREAM_BYTES / 1024 / 1024} MiB of TCP across the TUN addresses while it cuts the veth at ${CUT_AT_MS / 1000} s and restores it at ${RESTORE_AT_MS / 1000} s.`,
    "Prints a timeline and a summary and removes everything it made (also on Ctrl-C).",
    "",
    "  --plot DIR   also write SVG charts into DIR: throughput and ping across the cut and restore",
    "               (demo-timeline.svg) and the ping RTT CDF per phase (demo-ping-cdf.svg); needs the",
    "               packages vega and vega-lite (lunlink's development dependencies)",
  ].join("\n"),
  async run(args, out) {
    const plotDir = parse(args, { plot: { type: "string" } }, { min: 0, max: 0 }).values.plot as string | undefined;
    if (plotDir !== undefined) await assertCanPlot(); // before the run, not after it
    const t0 = performance.now();
    const at = () => `${((performance.now() - t0) / 1000).toFixed(2).padStart(6)} s`;
    const say = (line: string): void => void out.stdout.write(`${at()}  ${line}\n`);
    let lab: Lab | undefined;
    const onSignal = (): void => {
      say("interrupted: cleaning up");
      void (lab?.destroy() ?? Promise.resolve()).finally(() => process.exit(130));
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      say("building two hosts: network namespaces, veth 198.18.1.1 <-> 198.18.1.2, four loop devices, two mirrors, X25519 keys");
      lab = await Lab.create({
        prefix: "lld-",
        keys: true,
        onLog: (node, line) => {
          try {
            const e = JSON.parse(line) as { event?: string; kind?: string; subject?: string; from?: string; to?: string; detail?: string };
            if (e.event === "transition" && e.kind === "active") say(`node ${node}: traffic ${e.from} -> ${e.to}  [${e.detail}]`);
            else if (e.event === "transition" && e.kind === "path") say(`node ${node}: ${e.subject} path ${e.from} -> ${e.to} (${e.detail})`);
            else if (e.event === "peer-restarted" || e.event?.endsWith("error")) say(`node ${node}: ${e.event}`);
          } catch {
            say(`node ${node}: ${line}`);
          }
        },
      });
      const [n1, n2] = lab.nodes;
      say(`node 1: ns ${n1.ns}, send ${n1.send} -> mirror -> node 2 receive ${n2.receive}`);
      say(`node 2: ns ${n2.ns}, send ${n2.send} -> mirror -> node 1 receive ${n1.receive}`);
      await lab.startPair();
      say("both nodes up: lunlink0 198.18.100.1 <-> 198.18.100.2, primary (sealed UDP over the veth) and storage (keyed rings + mirrors) both healthy");
      const warm = await lab.exec(1, "ping", ["-c", "3", "-i", "0.2", "-W", "1", n2.tunAddress]);
      say(`ping over the primary: ${/rtt min\/avg\/max\/mdev = ([\d./]+)/.exec(warm)?.[1] ?? "?"} ms (min/avg/max/mdev)`);

      // Traffic: a checksummed TCP stream node 1 -> node 2, and a 10 ms ping, through the cut.
      const recorder = plotDir === undefined ? undefined : new DemoRecorder(n2.process!.pid!, "lunlink0");
      recorder?.start();
      let flowing: () => void = () => undefined;
      const firstBytes = new Promise<void>((resolve) => (flowing = resolve));
      const stream = await lab.startStream(1, STREAM_BYTES, STREAM_RATE_MBPS, (bytes) => {
        say(`stream: node 2 has received ${(bytes / 1e6).toFixed(1)} MB`);
        if (bytes > 0) flowing();
      });
      // The cut clock starts once data flows, so the cut always falls inside the stream.
      const startWait = new AbortController();
      await Promise.race([firstBytes, sleep(STREAM_START_TIMEOUT_MS, undefined, { signal: startWait.signal }).catch(() => undefined)]);
      startWait.abort(); // no timer left to hold the process open
      const pinger = lab.spawnIn(1, "ping", ["-D", "-n", "-i", String(PING_INTERVAL_S), "-c", String(PING_COUNT), "-W", "1", n2.tunAddress]);
      const replies: number[] = [];
      createInterface({ input: pinger.stdout! }).on("line", (line) => {
        recorder?.ping(line);
        const m = /^\[(\d+\.\d+)\].*icmp_seq=(\d+)/.exec(line);
        if (m !== null) replies.push(Number(m[1]) * 1000);
      });
      const pingDone = new Promise<void>((resolve) => pinger.once("exit", () => resolve()));
      say(`traffic started: TCP stream of ${STREAM_BYTES / 1024 / 1024} MiB at ${STREAM_RATE_MBPS} MB/s node 1 -> node 2, ping every ${PING_INTERVAL_S * 1000} ms`);

      await sleep(CUT_AT_MS);
      await lab.setPrimary(false);
      const cutWallMs = Date.now(); // both veth ends are down from here (a conservative start)
      say("CUT: the veth between the hosts is down (both ends); storage is untouched");
      await sleep(RESTORE_AT_MS - CUT_AT_MS);
      const restoreWallMs = Date.now();
      await lab.setPrimary(true);
      say("RESTORED: the veth is up again");
      const [{ sent, received }] = await Promise.all([stream.finished, pingDone]);
      recorder?.stop();

      const statuses = [await lab.status(1), await lab.status(2)];
      // The interruption: the gap between the replies around the cut (the last before it, the first after).
      const before = replies.filter((r) => r <= cutWallMs).at(-1);
      const after = replies.find((r) => r > cutWallMs);
      const interruptionMs = before !== undefined && after !== undefined ? after - before : Number.NaN;
      const duringCut = replies.filter((r) => r > cutWallMs && r < restoreWallMs).length;
      let longestGapMs = 0;
      for (let i = 1; i < replies.length; i++) longestGapMs = Math.max(longestGapMs, replies[i]! - replies[i - 1]!);
      const ok = received.sha256 !== undefined && received.sha256 === sent.sha256 && received.bytes === STREAM_BYTES;
      out.stdout.write("\nSummary\n");
      out.stdout.write(`  TCP stream: sent ${sent.bytes} bytes, received ${received.bytes}, SHA-256 ${ok ? "equal" : "DIFFERENT"} (${received.sha256?.slice(0, 16) ?? "none"}...), ${sent.seconds?.toFixed(1) ?? "?"} s\n`);
      out.stdout.write(`  ping: ${replies.length} of ${PING_COUNT} replies, ${duringCut} of them while the network was cut (over storage)\n`);
      out.stdout.write(`  interruption at the cut: ${interruptionMs.toFixed(0)} ms between the last reply before the cut and the first after it; longest gap between replies ${longestGapMs.toFixed(0)} ms\n`);
      for (const s of statuses) {
        out.stdout.write(`  node ${s.node}: failovers ${s.failovers}, failbacks ${s.failbacks}, messages over storage sent ${s.counters.sent.storage} / received ${s.counters.received.storage}, duplicates dropped ${s.counters.dataDuplicates}, active ${s.active}\n`);
      }
      if (recorder !== undefined) for (const path of await writeCharts(plotDir!, recorder.charts(cutWallMs, restoreWallMs))) out.stdout.write(`  chart: ${path}\n`);
      if (!ok) throw new Error("the TCP stream did not arrive intact");
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      await lab?.destroy();
      say("cleaned up: nodes stopped, namespaces deleted, loop devices detached, scratch removed");
    }
  },
};
