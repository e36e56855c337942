// latency: one-way latency writer -> poller on one volume (DESIGN.md section 7, row a), lunlink
// (RingWriter -> volume -> Poller) against bench/probe/latency.c doing the same steps (O_DIRECT|O_DSYNC
// write of the record, O_DIRECT re-reads with the same adaptive poll sleep), built and run in the
// same run on the same loop device (--direct-io=on). Ping-pong: the next message is sent once the
// previous one arrived. Rounds: --rounds (default 2000). A keyed row (authMode keyed: AEAD records,
// MACed status; the mirror keyless) runs in the same session for each condition. --plot DIR writes
// the latency CDFs (bench/plot.ts).
// Where the time goes (row a, lunlink): each round is split into send -> write done (writer queue +
// O_DIRECT|O_DSYNC pwrite + its completion reaching JS), write done -> watch woke (the poll sleep and
// the watch completion reaching JS), watch woke -> delivered (read and verify), and marked when a GC
// pause overlapped it; the table compares the median rounds with the slowest 1%.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";

import { FrameType } from "../lib/format/layout.ts";
import { Volume } from "../lib/index.ts";
import { Poller } from "../lib/poll/poller.ts";
import { RingReader } from "../lib/ring/reader.ts";
import { formatVolume } from "../lib/ring/superblocks.ts";
import { RingWriter } from "../lib/ring/writer.ts";
import { LocalMirror } from "../lib/mirror/local.ts";
import { machineLine } from "./machine.ts";
import { withScratch } from "./scratch.ts";
import { numberArg, percentile, ratio, table } from "./stats.ts";
import { assertCanPlot, writeCharts, type CdfSeries } from "../lib/cli/plot.ts";
import { latencyCharts, plotDirArg } from "./plot.ts";

const POLL_MIN_US = 100;
const POLL_MAX_MS = 1;

const LOAD_MBPS = 10;
/**
 * A round whose probe has not arrived by then is counted lost and the next one starts. Before #13's
 * fix a reader lapped under load resynced at the newest record and skipped the unread probe (a control
 * record the writer was holding), and the loaded row waited forever; it now resumes at the oldest
 * intact record (docs/format.md, row N1), so a probe is lost only if something else breaks.
 */
const ROUND_DEADLINE_MS = 1000;
/** Each lunlink row stops after this long even if rounds remain (a loaded row on a busy machine: rounds of 0.5 s). */
const ROW_BUDGET_MS = 60_000;

interface LatencyRun {
  /** Delivered rounds only, sorted. */
  latenciesUs: Float64Array;
  /** Rounds run (fewer than asked when the row's time budget ran out). */
  roundsRun: number;
  lostProbes: number;
  /** Of the lost probes, those that arrived after their deadline (late, not skipped by the reader). */
  lateProbes: number;
  overruns: number;
  /** Records the reader counted lost (overwritten before it read them). */
  lostRecords: bigint;
  /** Times the writer waited for the reader's ack before overwriting a record holding a control frame. */
  ackWaits: number;
}

/** One round's phases (ms, performance.now), for the breakdown. */
interface RoundTrace {
  sentMs: number;
  writtenMs: number;
  wokeMs: number;
  deliveredMs: number;
}

/** Intervals [start, end) (ms) during which the event loop was busy elsewhere: GC pauses. */
interface Stalls {
  gc: [number, number][];
}

async function lunlinkLatency(device: string, rounds: number, busyPollUs: number, loadMBps = 0, mirrorTo?: string, keyed = false, traces?: RoundTrace[], stalls?: Stalls): Promise<LatencyRun> {
  const auth = keyed ? { auth: { key: new Uint8Array(randomBytes(32)) } } : {};
  const send = await Volume.open(device, { dsync: true, busyPollUs });
  const receive = await Volume.open(mirrorTo ?? device, { readOnly: true, busyPollUs });
  let mirror: LocalMirror | undefined;
  let mirrorVolumes: Volume[] = [];
  try {
    await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 4096n, force: true, ...auth });
    if (mirrorTo !== undefined) {
      mirrorVolumes = [await Volume.open(device, { readOnly: true, busyPollUs }), await Volume.open(mirrorTo, { dsync: true, busyPollUs })];
      mirror = await LocalMirror.open(mirrorVolumes[0]!, mirrorVolumes[1]!, { force: true, pollMinUs: POLL_MIN_US, pollMaxMs: POLL_MAX_MS, statusCopyMs: 50 });
      const resynced = new Promise<void>((resolve, reject) => {
        mirror!.once("resync", () => resolve());
        mirror!.once("error", reject);
      });
      mirror.start();
      await resynced;
    }
    // The reader acks in-process (in a deployment: through the peer's status block), so control
    // records can be reused once read and a loaded run can lap the ring.
    let reader: RingReader | undefined;
    const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0, statusIntervalMs: 1000, peerAck: () => reader?.ack, ...auth });
    reader = await RingReader.open(receive, { nodeId: 2, start: "head", ...auth });
    // Breakdown: when the last write completed and the last watch that saw a change woke, as JS saw them.
    let writtenMs = 0;
    let wokeMs = 0;
    if (traces !== undefined) {
      const write = send.write.bind(send);
      send.write = async (offset, buffer) => {
        await write(offset, buffer);
        writtenMs = performance.now();
      };
      const watch = receive.watch.bind(receive);
      receive.watch = async (offset, buffer, options) => {
        const changed = await watch(offset, buffer, options);
        if (changed) wokeMs = performance.now();
        return changed;
      };
    }
    const latenciesUs = new Float64Array(rounds);
    let arrived: (() => void) | undefined;
    let round = 0;
    let late = 0;
    const poller = new Poller(reader, {
      pollMinUs: POLL_MIN_US,
      pollMaxMs: POLL_MAX_MS,
      statusPollMs: 1000,
      onFrame: (_seq, type, _flags, bytes, offset) => {
        if (type !== FrameType.Control) return; // background load
        const probe = new DataView(bytes.buffer, bytes.byteOffset + offset, 12);
        if (probe.getUint32(8, true) !== round) return void late++; // a round already counted lost, arriving late
        const sentMs = probe.getFloat64(0, true);
        const nowMs = performance.now();
        latenciesUs[round] = (nowMs - sentMs) * 1000;
        traces?.push({ sentMs, writtenMs, wokeMs, deliveredMs: nowMs });
        arrived?.();
      },
    });
    let failure: Error | undefined;
    const fail = (error: Error): void => {
      failure ??= error;
      arrived?.();
    };
    poller.on("error", fail);
    mirror?.on("error", fail);
    poller.start();
    const stallWatch = stalls === undefined ? undefined : watchStalls(stalls);
    // Loaded: 1 KiB data frames at loadMBps through the same writer, paced every millisecond.
    let loading = loadMBps > 0;
    const filler = new Uint8Array(1024);
    const load = loading
      ? (async () => {
          const perTick = Math.max(1, Math.round((loadMBps * 1e6) / 1000 / filler.length));
          while (loading) {
            for (let i = 0; i < perTick; i++) writer.tryAppend(FrameType.Data, filler);
            await new Promise((r) => setTimeout(r, 1));
          }
        })()
      : Promise.resolve();
    const payload = new Uint8Array(64);
    const view = new DataView(payload.buffer);
    const lost = new Set<number>();
    const rowStartMs = performance.now();
    for (round = 0; round < rounds && performance.now() - rowStartMs < ROW_BUDGET_MS; round++) {
      let deadline: NodeJS.Timeout | undefined;
      const delivered = new Promise<void>((resolve) => {
        arrived = resolve;
        deadline = setTimeout(() => {
          lost.add(round);
          resolve();
        }, ROUND_DEADLINE_MS);
      });
      view.setFloat64(0, performance.now(), true);
      view.setUint32(8, round, true);
      // append, not tryAppend: a probe that found its queue full would never be sent; the wait for
      // room counts in the round, as it would for an application's frame.
      if (!(await writer.append(FrameType.Control, payload))) throw new Error("the writer dropped a control probe frame");
      await delivered;
      clearTimeout(deadline);
      if (failure !== undefined) throw failure;
    }
    loading = false;
    await load;
    stallWatch?.();
    await poller.stop();
    await writer.close();
    return { latenciesUs: latenciesUs.subarray(0, round).filter((_v, i) => !lost.has(i)).sort(), roundsRun: round, lostProbes: lost.size, lateProbes: late, overruns: reader.counters.overruns, lostRecords: reader.counters.lost, ackWaits: writer.counters.ackWaits };
  } finally {
    await mirror?.stop();
    for (const v of mirrorVolumes) await v.close();
    await send.close();
    await receive.close();
  }
}

/** Records GC pauses (a PerformanceObserver: no timer that would itself wake the loop) until the returned function is called. */
function watchStalls(stalls: Stalls): () => void {
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) stalls.gc.push([e.startTime, e.startTime + e.duration]);
  });
  observer.observe({ entryTypes: ["gc"] });
  return () => observer.disconnect();
}

/** The median round against the slowest 1%: where their time went (us), and how many overlapped a stall. */
function breakdown(traces: RoundTrace[], stalls: Stalls): string[][] {
  const total = (r: RoundTrace): number => r.deliveredMs - r.sentMs;
  const sorted = [...traces].sort((a, b) => total(a) - total(b));
  const slowCount = Math.max(1, Math.round(sorted.length / 100));
  const groups: [string, RoundTrace[]][] = [
    ["median 10% of rounds", sorted.slice(Math.floor(sorted.length * 0.45), Math.ceil(sorted.length * 0.55))],
    [`slowest 1% (${slowCount} rounds)`, sorted.slice(-slowCount)],
  ];
  const overlaps = (r: RoundTrace, spans: [number, number][]): boolean => spans.some(([a, b]) => a < r.deliveredMs && b > r.sentMs);
  const mean = (xs: number[]): string => ((xs.reduce((n, x) => n + x, 0) / Math.max(1, xs.length)) * 1000).toFixed(0);
  return groups.map(([name, rs]) => {
    // A round whose record was found by a poll, not a watch (the watch had woken for an earlier one): no watch phase.
    const watched = rs.filter((r) => r.wokeMs >= r.writtenMs && r.writtenMs >= r.sentMs);
    return [
      name,
      mean(rs.map(total)),
      mean(rs.map((r) => Math.max(0, r.writtenMs - r.sentMs))),
      mean(watched.map((r) => r.wokeMs - r.writtenMs)),
      mean(watched.map((r) => r.deliveredMs - r.wokeMs)),
      `${rs.length - watched.length}`,
      `${rs.filter((r) => overlaps(r, stalls.gc)).length}`,
    ];
  });
}

function probeLatency(binary: string, device: string, rounds: number, loadMBps = 0, mirrorTo?: string): Float64Array {
  const args = [device, String(rounds), "1", String(POLL_MIN_US), String(POLL_MAX_MS * 1000)];
  if (loadMBps > 0 || mirrorTo !== undefined) args.push(String(loadMBps));
  if (mirrorTo !== undefined) args.push(mirrorTo);
  const out = execFileSync(binary, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return Float64Array.from(out.trim().split("\n").map((ns) => Number(ns) / 1000)).sort();
}

export async function latencyBench(args: string[]): Promise<void> {
  const rounds = numberArg(args, "--rounds", 2000);
  const plotDir = plotDirArg(args);
  if (plotDir !== undefined) await assertCanPlot();
  const cdfs: CdfSeries[] = [];
  await withScratch(async (scratch) => {
    const binary = join(scratch.dir, "latency");
    execFileSync("gcc", ["-O2", "-Wall", "-pthread", "-o", binary, new URL("./probe/latency.c", import.meta.url).pathname]);
    const loop = scratch.loop("volume.img", 64 * 1024 * 1024);
    const receiveLoop = scratch.loop("receive.img", 64 * 1024 * 1024);
    console.log(`# latency: one-way writer -> poller on one volume, O_DIRECT|O_DSYNC writes, poll sleep ${POLL_MIN_US} us doubling to ${POLL_MAX_MS} ms, ${rounds} rounds`);
    console.log(machineLine());
    console.log(`volumes: ${loop} (send) and ${receiveLoop} (receive, for row b), loop dio=on over 64 MiB files on ext4\n`);
    const rows: string[][] = [];
    const breakdowns: string[][] = [];
    const conditions: [number, string | undefined, string][] = [
      [0, undefined, "(a) idle"],
      [LOAD_MBPS, undefined, `(a) loaded ${LOAD_MBPS} MB/s`],
      [0, receiveLoop, "(b) via local mirror, idle"],
    ];
    for (const [load, mirrorTo, condition] of conditions) {
      const c = probeLatency(binary, loop, rounds, load, mirrorTo);
      console.error(`  probe ${condition}`);
      const traces: RoundTrace[] = [];
      const stalls: Stalls = { gc: [] };
      const lr = await lunlinkLatency(loop, rounds, 0, load, mirrorTo, false, traces, stalls);
      breakdowns.push(...breakdown(traces, stalls).map((r) => [condition, ...r]));
      const pr = await lunlinkLatency(loop, rounds, 500, load, mirrorTo);
      const kr = await lunlinkLatency(loop, rounds, 0, load, mirrorTo, true);
      const [l, p, k] = [lr.latenciesUs, pr.latenciesUs, kr.latenciesUs];
      const lostOf = (r: LatencyRun): string => `${r.roundsRun} / ${r.lostProbes} (${r.lateProbes} late) / ${r.overruns} / ${r.lostRecords} / ${r.ackWaits}`;
      console.error(`  done ${condition}`);
      const row = (name: string, x: Float64Array, run?: LatencyRun): string[] => [
        condition,
        name,
        percentile(x, 50).toFixed(0),
        percentile(x, 99).toFixed(0),
        ratio(percentile(x, 50), percentile(c, 50)),
        ratio(percentile(x, 99), percentile(c, 99)),
        run === undefined ? "-" : lostOf(run),
      ];
      cdfs.push(...([["C probe", c], ["lunlink", l], ["lunlink busyPollUs 500", p], ["lunlink keyed", k]] as const).map(([name, values]) => ({ group: condition, name, values })));
      rows.push(row("C probe", c), row("lunlink", l, lr), row("lunlink busyPollUs 500", p, pr), row(`lunlink keyed (p50 ${ratio(percentile(k, 50), percentile(l, 50))}x unkeyed)`, k, kr));
    }
    console.log(table(["condition", "path (ping-pong)", "p50 us", "p99 us", "p50 vs C", "p99 vs C", "rounds run / probes lost (late) / reader overruns / records lost / writer ack waits"], rows));
    console.log(`probes lost: rounds not delivered within ${ROUND_DEADLINE_MS} ms, left out of the percentiles (late: delivered after it); records lost: overwritten before the reader read them (it was lapped); writer ack waits: the writer held a probe's record for the reader's ack. A row stops after ${ROW_BUDGET_MS / 1000} s with the rounds it ran.`);
    if (plotDir !== undefined) for (const path of await writeCharts(plotDir, latencyCharts(cdfs))) console.log(`chart: ${path}`);
    console.log(`\nwhere the lunlink rounds' time goes (means in us; GC overlap: rounds during which a GC pause ran)`);
    console.log(table(["condition", "rounds", "total", "send -> write done", "write done -> watch woke", "watch woke -> delivered", "found without a watch", "GC overlap"], breakdowns));
    console.log(`\nloaded: a background stream of ${LOAD_MBPS} MB/s (lunlink: 1 KiB data frames through the same writer; C: 64 KiB writes to the same volume); the timed messages are control frames.`);
  });
}
