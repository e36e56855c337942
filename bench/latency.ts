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
// pause overlapped it; the table compares the median rounds with the slowest 1%. That tracing runs
// in a row of its own ("lunlink traced"), not in the "lunlink" row compared with C. Each slice starts
// with --warmup unmeasured rounds on every path. --sched adds the main thread's on-CPU and run-queue
// time per round (schedstat) and the GC pauses by kind; --profile also a V8 CPU profile (samples
// attributed to the median and slowest rounds' windows) and an allocation profile of the traced row.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import type { HeapProfiler, Profiler } from "node:inspector";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { PerformanceObserver, performance, type PerformanceEntry } from "node:perf_hooks";
import { getHeapStatistics } from "node:v8";

import { FrameType, RING_START_BLOCK } from "../lib/format/layout.ts";
import { Volume } from "../lib/index.ts";
import type { IoEngine } from "../lib/io/volume.ts";
import { receiveVolumeEngine } from "../lib/link/storage-path.ts";
import { paceAfter } from "../lib/poll/adaptive-wait.ts";
import { Poller } from "../lib/poll/poller.ts";
import { RingReader } from "../lib/ring/reader.ts";
import { formatVolume, minimumBlockBytes } from "../lib/ring/superblocks.ts";
import { RingWriter } from "../lib/ring/writer.ts";
import { LocalMirror } from "../lib/mirror/local.ts";
import { machineLine } from "./machine.ts";
import { withScratch } from "./scratch.ts";
import { numberArg, percentile, ratio, slicedRatioInterval, sortedUnion, table } from "./stats.ts";
import { assertCanPlot, writeCharts, type CdfSeries } from "../lib/cli/plot.ts";
import { latencyCharts, plotDirArg } from "./plot.ts";

const POLL_MIN_US = 100;
const POLL_MAX_MS = 1;

const LOAD_MBPS = 10;
/** --engines: extra untraced rows, in the slice's order (sliceOrder) with the others, naming the writer's and the poller's engine (the "lunlink" row takes what a pair opens: receiveVolumeEngine). */
const ENGINE_ROWS: Required<RowEngines>[] = [
  { send: "io_uring", receive: "io_uring" },
  { send: "threads", receive: "io_uring" },
  { send: "io_uring", receive: "threads" },
  { send: "threads", receive: "threads" },
];
/** performance.now() + this = CLOCK_MONOTONIC ms (both count from the same clock in Node): --slow prints it, to find a round in a kernel trace. */
export const MONO_OFFSET_MS = Number(process.hrtime.bigint()) / 1e6 - performance.now();
/** A slice's rows without --engines: C, lunlink, traced, busyPollUs, keyed. */
const DEFAULT_ROWS = 5;
/** Each condition's rounds run in this many slices, the paths in turn (--slices): one period of sliceOrder for the default rows. */
const DEFAULT_SLICES = slicePeriod(DEFAULT_ROWS);
/**
 * Each slice of each path (the C probe too) starts with this many rounds that are run but not
 * measured (--warmup), as fio's ramp_time: the first rounds after a path opens its volumes pay
 * one-off costs (the setup's garbage collected, first reads and writes of a fresh writer, reader and
 * watch); --slow showed 2-5 of a condition's 20 slowest lunlink rounds, the longest among them,
 * in a slice's first 25 rounds.
 */
const DEFAULT_WARMUP_ROUNDS = 50;
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
export interface RoundTrace {
  sentMs: number;
  writtenMs: number;
  wokeMs: number;
  deliveredMs: number;
  /** Event-loop time spent running JS (not waiting in epoll) between send and delivery (ms). */
  loopActiveMs: number;
  /** The slice (0-based), the round's index in it and ms since the slice's lunlink row started. */
  slice: number;
  round: number;
  sinceRowStartMs: number;
  /** --profile: the main thread's time on a CPU and waiting in the run queue between send and delivery (ms, /proc/thread-self/schedstat). */
  onCpuMs?: number;
  runQueueMs?: number;
}

/** The main thread's cumulative time on a CPU and in the run queue (ns), from the fd of /proc/thread-self/schedstat. */
function schedstat(fd: number, buffer: Buffer): [number, number] {
  const n = readSync(fd, buffer, 0, buffer.length, 0);
  const [run, wait] = buffer.toString("latin1", 0, n).split(" ");
  return [Number(run), Number(wait)];
}

/** One I/O as JS saw it: submitted at startMs, settled at endMs (ms, performance.now). */
export interface IoSpan {
  startMs: number;
  endMs: number;
  /** Writes: "record" or "status" (status and superblock blocks, below the ring); watches: the sleep (us) it started at. */
  what: string;
}

/** Every write on the send volume and every watch on the receive volume during a row (bound: a few per round). */
export interface IoLog {
  writes: IoSpan[];
  watches: IoSpan[];
}

/** Intervals [start, end) (ms) during which the event loop was busy elsewhere: GC pauses. */
interface Stalls {
  gc: [number, number][];
  /** Each pause's kind (perf_hooks' NODE_PERFORMANCE_GC_*: 1 minor, 2 major, 4 incremental, 8 weak callbacks), as gc. */
  gcKinds: number[];
}

/** --profile: V8 CPU profiles of the traced rows (sampled every PROFILE_INTERVAL_US) and the main thread's schedstat per round. */
interface ProfileLog {
  /** --profile: the CPU and allocation profiles too (--sched: the schedstat per round only, no profiler running). */
  cpu: boolean;
  profiles: Profiler.Profile[];
  /** Sampled allocations (HeapProfiler.startSampling, collected objects included): bytes by allocating function. */
  allocatedBytes: Map<string, number>;
}
/** One allocation sample per this many bytes, on average. */
const ALLOCATION_SAMPLE_BYTES = 512;

function addAllocations(node: HeapProfiler.SamplingHeapProfileNode, into: Map<string, number>): void {
  const f = node.callFrame;
  const file = f.url.split("/").pop() ?? "";
  const name = file === "" ? f.functionName || "(anonymous)" : `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
  if (node.selfSize > 0) into.set(name, (into.get(name) ?? 0) + node.selfSize);
  for (const child of node.children) addAllocations(child, into);
}
const PROFILE_INTERVAL_US = 50;

/** The I/O engines the lunlink rows' volumes got (engine "auto" or LUNLINK_ENGINE), printed under the table. */
const enginesSeen = new Set<string>();

/**
 * The V8 heap options of this process, where the lunlink rows run (a `lunlink up` daemon runs with
 * Node's defaults): printed in the header, since a run with other heap settings (say
 * --initial-old-space-size, which moves when major GCs start) measures something else.
 */
function heapLine(): string {
  const heapFlag = /^--(max|initial)-(old|semi|young)-(space|generation)-size|^--max-heap-size/;
  const flags = [...process.execArgv, ...(process.env["NODE_OPTIONS"] ?? "").split(/\s+/)].filter((a) => heapFlag.test(a));
  return `lunlink rows: V8 heap ${flags.length === 0 ? "Node.js defaults (as the daemon)" : flags.join(" ")}, heap limit ${(getHeapStatistics().heap_size_limit / 2 ** 20).toFixed(0)} MiB`;
}

/** --engines: the I/O engine of the writer's (send) and the poller's (receive) volume; unset: as a pair opens them (send "auto" or LUNLINK_ENGINE; receive receiveVolumeEngine: LUNLINK_ENGINE, else threads). */
interface RowEngines {
  send?: IoEngine;
  receive?: IoEngine;
}

/**
 * The order of `n` rows in slice `slice`: a Williams design (a balanced Latin square). The base order
 * is 0, 1, n-1, 2, n-2, ...; slice k adds k to every row (mod n), and for odd n slices n..2n-1 run the
 * same orders reversed. Over one period (n slices for even n, 2n for odd n) every row runs once in
 * each position and right after each other row equally often (once; twice for odd n). Session 12's
 * strides (1, 2, 3, 4 for n = 5) gave the C probe new successors but left row n-1 last in four slices
 * of five; a plain rotation kept every row's neighbours (the row after the C probe read up to 1.6x
 * slower at p50 than its identical twin elsewhere).
 */
export function sliceOrder(n: number, slice: number): number[] {
  const base = Array.from({ length: n }, (_, j) => (j % 2 === 1 ? (j + 1) / 2 : (n - j / 2) % n));
  const k = slice % slicePeriod(n);
  const order = base.map((row) => (row + k) % n);
  return k < n ? order : order.reverse();
}

/** The slices after which sliceOrder has balanced positions and neighbours: n for even n, 2n for odd n. */
export function slicePeriod(n: number): number {
  return n % 2 === 0 ? n : 2 * n;
}

/** One slice of one condition: what every row of it runs. */
interface SliceRun {
  device: string;
  rounds: number;
  warmupRounds: number;
  sendOnDelivery: boolean;
  loadMBps: number;
  mirrorTo: string | undefined;
  slice: number;
}

/** What sets a lunlink row apart: busy polling, keys, the volumes' engines, the breakdown's tracing. */
interface RowOptions {
  busyPollUs?: number;
  keyed?: boolean;
  engines?: RowEngines;
  trace?: { traces: RoundTrace[]; stalls: Stalls; io: IoLog; profile: ProfileLog | undefined };
}

async function lunlinkLatency(run: SliceRun, row: RowOptions = {}): Promise<LatencyRun> {
  const { device, rounds, warmupRounds, sendOnDelivery, loadMBps, mirrorTo, slice } = run;
  const { busyPollUs = 0, keyed = false, engines = {} } = row;
  const { traces, stalls, io, profile } = row.trace ?? {};
  const auth = keyed ? { auth: { key: new Uint8Array(randomBytes(32)) } } : {};
  const send = await Volume.open(device, { dsync: true, busyPollUs, ...(engines.send === undefined ? {} : { engine: engines.send }) });
  const receive = await Volume.open(mirrorTo ?? device, { readOnly: true, busyPollUs, ...receiveVolumeEngine(engines.receive) });
  enginesSeen.add(send.engine).add(receive.engine);
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
    // The write carrying the round's probe: the first record write started after its append (under
    // load the probe may ride a later record; the one started first is the one it waits behind).
    let probeUnwritten = false;
    let probeWritten: Promise<unknown> = Promise.resolve();
    const ringStartBytes = RING_START_BLOCK * minimumBlockBytes(send);
    const write = send.write.bind(send);
    send.write = (offset, buffer) => {
      const startMs = performance.now();
      const what = Number(offset) < ringStartBytes ? "status" : "record";
      const done = write(offset, buffer);
      if (probeUnwritten && what === "record") {
        probeUnwritten = false;
        probeWritten = done.catch(() => undefined);
      }
      if (traces === undefined) return done;
      return done.then(() => {
        writtenMs = performance.now();
        io?.writes.push({ startMs, endMs: writtenMs, what });
      });
    };
    if (traces !== undefined) {
      const watch = receive.watch.bind(receive);
      receive.watch = async (offset, buffer, options) => {
        const startMs = performance.now();
        const changed = await watch(offset, buffer, options);
        const endMs = performance.now();
        if (changed) wokeMs = endMs;
        io?.watches.push({ startMs, endMs, what: String(options.sleepUs) });
        return changed;
      };
    }
    const latenciesUs = new Float64Array(rounds);
    const schedFd = profile === undefined ? undefined : openSync("/proc/thread-self/schedstat", "r");
    const schedBuffer = Buffer.alloc(128);
    let schedAtSend: [number, number] = [0, 0];
    let rowStartMs = performance.now();
    const session = profile?.cpu === true ? new Session() : undefined;
    if (session !== undefined) {
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.setSamplingInterval", { interval: PROFILE_INTERVAL_US });
      await session.post("Profiler.start");
      await session.post("HeapProfiler.enable");
      await session.post("HeapProfiler.startSampling", { samplingInterval: ALLOCATION_SAMPLE_BYTES, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true } as HeapProfiler.StartSamplingParameterType);
    }
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
        const measured = round - warmupRounds;
        if (measured < 0) return void arrived?.(); // the slice's warm-up: not measured
        const sentMs = probe.getFloat64(0, true);
        const nowMs = performance.now();
        latenciesUs[measured] = (nowMs - sentMs) * 1000;
        const sched = schedFd === undefined ? undefined : schedstat(schedFd, schedBuffer);
        traces?.push({ sentMs, writtenMs, wokeMs, deliveredMs: nowMs, loopActiveMs: performance.eventLoopUtilization(roundLoop).active, slice, round: measured, sinceRowStartMs: sentMs - rowStartMs, ...(sched === undefined ? {} : { onCpuMs: (sched[0] - schedAtSend[0]) / 1e6, runQueueMs: (sched[1] - schedAtSend[1]) / 1e6 }) });
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
    let roundLoop = performance.eventLoopUtilization();
    rowStartMs = performance.now();
    for (round = 0; round < warmupRounds + rounds && performance.now() - rowStartMs < ROW_BUDGET_MS; round++) {
      let deadline: NodeJS.Timeout | undefined;
      const delivered = new Promise<void>((resolve) => {
        arrived = resolve;
        deadline = setTimeout(() => {
          if (round >= warmupRounds) lost.add(round - warmupRounds);
          resolve();
        }, ROUND_DEADLINE_MS);
      });
      // As the C probe's writer, which stamps the next message once its pwrite of the previous one
      // returned: the reader sees a record when its data is written, before the O_DSYNC flush that
      // completes the write, so a probe sent on delivery would wait behind that flush (the writer
      // issues one record write at a time), a wait the C probe never counts. --send-on-delivery: send at once.
      if (!sendOnDelivery) await probeWritten;
      roundLoop = performance.eventLoopUtilization();
      if (schedFd !== undefined) schedAtSend = schedstat(schedFd, schedBuffer);
      probeUnwritten = true;
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
    if (session !== undefined) {
      profile!.profiles.push((await session.post("Profiler.stop")).profile);
      addAllocations((await session.post("HeapProfiler.stopSampling")).profile.head, profile!.allocatedBytes);
      session.disconnect();
    }
    if (schedFd !== undefined) closeSync(schedFd);
    await poller.stop();
    await writer.close();
    const measuredRun = Math.max(0, round - warmupRounds);
    return { latenciesUs: latenciesUs.subarray(0, measuredRun).filter((_v, i) => !lost.has(i)).sort(), roundsRun: measuredRun, lostProbes: lost.size, lateProbes: late, overruns: reader.counters.overruns, lostRecords: reader.counters.lost, ackWaits: writer.counters.ackWaits };
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
    for (const e of list.getEntries()) {
      stalls.gc.push([e.startTime, e.startTime + e.duration]);
      stalls.gcKinds.push(((e as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind ?? 0);
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  return () => observer.disconnect();
}

/** What one round met on its way (ms unless named), from the I/O log and its own trace. */
export interface RoundCauses {
  /** Send -> the probe's record write submitted (the writer's queue, and any write it ran first). */
  queuedMs: number;
  /** The probe's record write, submitted -> completion seen by JS. */
  writeMs: number;
  /** Writes in flight on the send volume when the probe was sent. */
  inFlightAtSend: number;
  /** Send -> the last write in flight at send completed (0 if none): how long the probe waited behind it. */
  behindMs: number;
  /** A status write ran between send and the probe's write completing. */
  statusOverlap: boolean;
  /** The sleep (us) the waking watch had backed off to when the write completed (paceAfter). */
  watchSleepUs: number;
}

export function causesOf(r: RoundTrace, io: IoLog): RoundCauses {
  // The probe's record write: the first record write submitted after the send (under load it may be a later one: an estimate).
  const own = io.writes.find((w) => w.what === "record" && w.startMs >= r.sentMs);
  const before = io.writes.filter((w) => w.startMs <= r.sentMs && w.endMs > r.sentMs);
  const woke = io.watches.find((w) => w.endMs === r.wokeMs);
  return {
    queuedMs: own === undefined ? Number.NaN : own.startMs - r.sentMs,
    writeMs: own === undefined ? Number.NaN : own.endMs - own.startMs,
    inFlightAtSend: before.length,
    behindMs: before.reduce((n, w) => Math.max(n, w.endMs - r.sentMs), 0),
    statusOverlap: io.writes.some((w) => w.what === "status" && w.startMs < r.writtenMs && w.endMs > r.sentMs),
    watchSleepUs: woke === undefined || r.writtenMs < woke.startMs ? Number.NaN : paceAfter(Number(woke.what), POLL_MAX_MS * 1000, (r.writtenMs - woke.startMs) * 1000),
  };
}

/** The median round against the slowest 1%: where their time went (us), and what else was running. */
/** A round's one-way time, send -> delivered (ms). */
function roundMs(r: RoundTrace): number {
  return r.deliveredMs - r.sentMs;
}

/** The rounds, fastest first, and the slowest 1% of them (at least one): what the breakdown and --slow look at. */
function byRoundTime(traces: RoundTrace[]): { sorted: RoundTrace[]; slowest: RoundTrace[] } {
  const sorted = [...traces].sort((a, b) => roundMs(a) - roundMs(b));
  return { sorted, slowest: sorted.slice(-Math.max(1, Math.round(sorted.length / 100))) };
}

function breakdown(traces: RoundTrace[], stalls: Stalls, io: IoLog): string[][] {
  const { sorted, slowest } = byRoundTime(traces);
  const groups: [string, RoundTrace[]][] = [
    ["median 10% of rounds", sorted.slice(Math.floor(sorted.length * 0.45), Math.ceil(sorted.length * 0.55))],
    [`slowest 1% (${slowest.length} rounds)`, slowest],
  ];
  const overlaps = (r: RoundTrace, spans: [number, number][]): boolean => spans.some(([a, b]) => a < r.deliveredMs && b > r.sentMs);
  const mean = (xs: number[]): string => {
    const known = xs.filter((x) => Number.isFinite(x));
    return ((known.reduce((n, x) => n + x, 0) / Math.max(1, known.length)) * 1000).toFixed(0);
  };
  return groups.map(([name, rs]) => {
    // A round whose record was found by a poll, not a watch (the watch had woken for an earlier one): no watch phase.
    const watched = rs.filter((r) => r.wokeMs >= r.writtenMs && r.writtenMs >= r.sentMs);
    const causes = rs.map((r) => causesOf(r, io));
    return [
      name,
      mean(rs.map(roundMs)),
      mean(rs.map((r) => Math.max(0, r.writtenMs - r.sentMs))),
      `${mean(causes.map((c) => c.queuedMs))} (${mean(causes.map((c) => c.behindMs))}) / ${mean(causes.map((c) => c.writeMs))}`,
      mean(watched.map((r) => r.wokeMs - r.writtenMs)),
      mean(causes.map((c) => c.watchSleepUs / 1000)),
      mean(watched.map((r) => r.deliveredMs - r.wokeMs)),
      mean(rs.map((r) => r.loopActiveMs)),
      `${causes.filter((c) => c.inFlightAtSend > 0).length} / ${causes.filter((c) => c.statusOverlap).length}`,
      `${rs.length - watched.length}`,
      `${rs.filter((r) => overlaps(r, stalls.gc)).length}`,
    ];
  });
}

/** Each of the slowest rounds, one line each (--slow): the evidence behind the breakdown's means. */
export function slowRounds(condition: string, traces: RoundTrace[], io: IoLog): string[][] {
  const us = (ms: number): string => (Number.isFinite(ms) ? (ms * 1000).toFixed(0) : "-");
  return byRoundTime(traces).slowest.map((r) => {
    const c = causesOf(r, io);
    // A round found without a watch of its own keeps the last watch's wake time, from an earlier
    // round: no wake step then ("-"), as the breakdown's means leave such rounds out.
    const wokeMs = r.wokeMs >= r.sentMs ? r.wokeMs : Number.NaN;
    return [condition, ((r.sentMs + MONO_OFFSET_MS) / 1000).toFixed(6), `${r.slice} / ${r.round} / ${(r.sinceRowStartMs / 1000).toFixed(2)}`, us(roundMs(r)), us(c.queuedMs), us(c.behindMs), us(c.writeMs), us(wokeMs - r.writtenMs), Number.isFinite(c.watchSleepUs) ? c.watchSleepUs.toFixed(0) : "-", us(r.deliveredMs - wokeMs), us(r.loopActiveMs), `${c.inFlightAtSend}`, c.statusOverlap ? "yes" : "no"];
  });
}

/** A sampled span of the main thread: [startMs, endMs) in performance.now ms, and the function on top of the stack. */
export interface Sample {
  startMs: number;
  endMs: number;
  what: string;
}

/** Samples as spans on performance.now's clock (a profile counts CLOCK_MONOTONIC us; MONO_OFFSET_MS maps them), each lasting until the next sample. */
export function samplesOf(profile: Profiler.Profile): Sample[] {
  const names = new Map<number, string>();
  for (const node of profile.nodes) {
    const f = node.callFrame;
    const file = f.url.split("/").pop() ?? "";
    names.set(node.id, file === "" ? f.functionName || "(anonymous)" : `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`);
  }
  const spans: Sample[] = [];
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let atUs = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    atUs += deltas[i] ?? 0;
    const endUs = i + 1 < samples.length ? atUs + (deltas[i + 1] ?? 0) : profile.endTime;
    spans.push({ startMs: atUs / 1000 - MONO_OFFSET_MS, endMs: endUs / 1000 - MONO_OFFSET_MS, what: names.get(samples[i]!) ?? "?" });
  }
  return spans;
}

/** A sample span this much longer than the sampling interval: the main thread was not running (or the sampler was not), not attributable. */
const SAMPLE_GAP_MS = 0.5;
/** A round whose main thread waited longer than this for a CPU (schedstat) is counted as preempted. */
const RUN_QUEUE_SLOW_MS = 1;

/**
 * --profile: per group of rounds, their mean window, the main thread's on-CPU and run-queue time
 * (schedstat), and the sampled time inside the windows by top-of-stack function (ms per round).
 */
function profileBreakdown(condition: string, traces: RoundTrace[], profile: ProfileLog, stalls: Stalls): string[] {
  const spans = profile.profiles.flatMap(samplesOf).sort((a, b) => a.startMs - b.startMs);
  const { sorted, slowest } = byRoundTime(traces);
  const groups: [string, RoundTrace[]][] = [
    ["median 10%", sorted.slice(Math.floor(sorted.length * 0.45), Math.ceil(sorted.length * 0.55))],
    [`slowest 1% (${slowest.length})`, slowest],
  ];
  const lines: string[] = [];
  const first = profile.profiles[0];
  if (first !== undefined && traces[0] !== undefined) lines.push(`${condition}: clock check: first profile starts ${(traces[0].sentMs - (first.startTime / 1000 - MONO_OFFSET_MS)).toFixed(1)} ms before the first round's send (expect 0-50)`);
  for (const [name, rs] of groups) {
    const by = new Map<string, number>();
    let gapMs = 0;
    let windowMs = 0;
    for (const r of rs) {
      windowMs += roundMs(r);
      // Binary search for the first span ending after the send.
      let lo = 0;
      let hi = spans.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (spans[mid]!.endMs <= r.sentMs) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < spans.length && spans[i]!.startMs < r.deliveredMs; i++) {
        const sp = spans[i]!;
        const ms = Math.min(sp.endMs, r.deliveredMs) - Math.max(sp.startMs, r.sentMs);
        if (ms <= 0) continue;
        if (sp.endMs - sp.startMs > SAMPLE_GAP_MS) gapMs += ms;
        else by.set(sp.what, (by.get(sp.what) ?? 0) + ms);
      }
    }
    const n = Math.max(1, rs.length);
    const mean = (f: (r: RoundTrace) => number | undefined): string => (rs.reduce((x, r) => x + (f(r) ?? 0), 0) / n).toFixed(2);
    const top = [...by].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([what, ms]) => `    ${(ms / n).toFixed(3)}  ${what}`);
    const gcOverlap = rs.filter((r) => stalls.gc.some(([a, b]) => a < r.deliveredMs && b > r.sentMs)).length;
    const queued = rs.filter((r) => (r.runQueueMs ?? 0) > RUN_QUEUE_SLOW_MS).length;
    lines.push(`${condition}, ${name}: window ${(windowMs / n).toFixed(2)} ms, main thread on CPU ${mean((r) => r.onCpuMs)} ms, in the run queue ${mean((r) => r.runQueueMs)} ms (${queued} rounds > ${RUN_QUEUE_SLOW_MS} ms), loop busy ${mean((r) => r.loopActiveMs)} ms, ${gcOverlap} rounds overlapped a GC pause` + (profile.cpu ? `; sampled ${([...by.values()].reduce((x, y) => x + y, 0) / n).toFixed(2)} ms, in sample gaps > ${SAMPLE_GAP_MS} ms ${(gapMs / n).toFixed(2)} ms; top of stack (ms per round):` : ""), ...top);
  }
  const kinds = new Map<number, number[]>();
  stalls.gc.forEach(([a, b], i) => kinds.set(stalls.gcKinds[i] ?? 0, [...(kinds.get(stalls.gcKinds[i] ?? 0) ?? []), b - a]));
  lines.push(`${condition}: GC pauses in the traced rows (${traces.length} rounds): ${[...kinds].map(([kind, ms]) => `kind ${kind}: ${ms.length}, mean ${(ms.reduce((x, y) => x + y, 0) / ms.length).toFixed(2)} ms, max ${Math.max(...ms).toFixed(2)} ms`).join("; ")}`);
  if (!profile.cpu) return lines;
  const allocated = [...profile.allocatedBytes].sort((a, b) => b[1] - a[1]);
  const totalBytes = allocated.reduce((x, [, b]) => x + b, 0);
  lines.push(`${condition}: allocated (sampled) ${(totalBytes / Math.max(1, traces.length)).toFixed(0)} bytes per round; by function (bytes per round):`, ...allocated.slice(0, 15).map(([what, b]) => `    ${(b / Math.max(1, traces.length)).toFixed(0)}  ${what}`));
  return lines;
}

/** One row's slices as one run. */
function mergeRuns(runs: LatencyRun[]): LatencyRun {
  const sum = (f: (r: LatencyRun) => number): number => runs.reduce((n, r) => n + f(r), 0);
  return {
    latenciesUs: sortedUnion(runs.map((r) => r.latenciesUs)),
    roundsRun: sum((r) => r.roundsRun),
    lostProbes: sum((r) => r.lostProbes),
    lateProbes: sum((r) => r.lateProbes),
    overruns: sum((r) => r.overruns),
    lostRecords: runs.reduce((n, r) => n + r.lostRecords, 0n),
    ackWaits: sum((r) => r.ackWaits),
  };
}

/** The C probe's rounds, less the first warmupRounds (run, not measured: as lunlink's slice warm-up). */
function probeLatency(binary: string, device: string, rounds: number, warmupRounds: number, loadMBps = 0, mirrorTo?: string): Float64Array {
  const args = [device, String(warmupRounds + rounds), "1", String(POLL_MIN_US), String(POLL_MAX_MS * 1000)];
  if (loadMBps > 0 || mirrorTo !== undefined) args.push(String(loadMBps));
  if (mirrorTo !== undefined) args.push(mirrorTo);
  const out = execFileSync(binary, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return Float64Array.from(out.trim().split("\n").slice(warmupRounds).map((ns) => Number(ns) / 1000)).sort();
}

export async function latencyBench(args: string[]): Promise<void> {
  const rounds = numberArg(args, "--rounds", 2000);
  const plotDir = plotDirArg(args);
  const showSlow = args.includes("--slow");
  const cpuProfile = args.includes("--profile");
  const profiling = cpuProfile || args.includes("--sched");
  const sendOnDelivery = args.includes("--send-on-delivery");
  const withEngines = args.includes("--engines");
  const rowCount = DEFAULT_ROWS + (withEngines ? ENGINE_ROWS.length : 0);
  const slices = numberArg(args, "--slices", DEFAULT_SLICES);
  const warmupRounds = numberArg(args, "--warmup", DEFAULT_WARMUP_ROUNDS);
  if (!Number.isInteger(warmupRounds) || warmupRounds < 0) throw new Error(`--warmup must be a non-negative integer, got ${warmupRounds}`);
  if (!Number.isInteger(slices) || slices < 1 || slices > rounds) throw new Error(`--slices must be an integer in 1..rounds (${rounds}), got ${slices}`);
  if (plotDir !== undefined) await assertCanPlot();
  const cdfs: CdfSeries[] = [];
  await withScratch(async (scratch) => {
    const binary = join(scratch.dir, "latency");
    execFileSync("gcc", ["-O2", "-Wall", "-pthread", "-o", binary, new URL("./probe/latency.c", import.meta.url).pathname]);
    const loop = scratch.loop("volume.img", 64 * 1024 * 1024);
    const receiveLoop = scratch.loop("receive.img", 64 * 1024 * 1024);
    console.log(`# latency: one-way writer -> poller on one volume, O_DIRECT|O_DSYNC writes, poll sleep ${POLL_MIN_US} us doubling to ${POLL_MAX_MS} ms, ${rounds} rounds in ${slices} slices (each path in turn, in a balanced order changed per slice${slices % slicePeriod(rowCount) === 0 ? "" : ` (balanced every ${slicePeriod(rowCount)} slices: --slices ${slicePeriod(rowCount)})`}, each slice after ${warmupRounds} unmeasured warm-up rounds on every path, C too), next probe ${sendOnDelivery ? "on delivery" : "once the previous probe's write returned (as the C probe)"}`);
    console.log(machineLine());
    console.log(heapLine());
    console.log(`volumes: ${loop} (send) and ${receiveLoop} (receive, for row b), loop dio=on over 64 MiB files on ext4\n`);
    const rows: string[][] = [];
    const breakdowns: string[][] = [];
    const slow: string[][] = [];
    const profiles: string[] = [];
    const conditions: [number, string | undefined, string][] = [
      [0, undefined, "(a) idle"],
      [LOAD_MBPS, undefined, `(a) loaded ${LOAD_MBPS} MB/s`],
      [0, receiveLoop, "(b) via local mirror, idle"],
    ];
    // --only 1,3: run only these conditions (1-based), for narrow checks.
    const only = args.includes("--only") ? new Set(String(args[args.indexOf("--only") + 1]).split(",").map(Number)) : undefined;
    for (const [index, [load, mirrorTo, condition]] of conditions.entries()) {
      if (only !== undefined && !only.has(index + 1)) continue;
      const traces: RoundTrace[] = [];
      const stalls: Stalls = { gc: [], gcKinds: [] };
      const io: IoLog = { writes: [], watches: [] };
      const profile: ProfileLog | undefined = profiling ? { cpu: cpuProfile, profiles: [], allocatedBytes: new Map() } : undefined;
      // Slices run in turn (every row, then the next slice), so a load swing on a shared machine lands
      // on every path alike instead of on whichever ran in its minute. The rows' order changes per
      // slice (sliceOrder, a balanced Latin square): the row right after the C probe read up to 1.6x
      // slower at p50 than the same configuration elsewhere, so no row keeps a place or a neighbour.
      // The breakdown's tracing (a wrapped write and watch, a log entry per I/O, two ELU reads a
      // round) is work the C probe does not do: it runs in a row of its own, not in "lunlink".
      const cs: Float64Array[] = [];
      const lrs: LatencyRun[] = [];
      const trs: LatencyRun[] = [];
      const prs: LatencyRun[] = [];
      const krs: LatencyRun[] = [];
      const ers: LatencyRun[][] = ENGINE_ROWS.map(() => []);
      for (let slice = 0; slice < slices; slice++) {
        const sliceRounds = Math.floor(rounds / slices) + (slice < rounds % slices ? 1 : 0);
        const run: SliceRun = { device: loop, rounds: sliceRounds, warmupRounds, sendOnDelivery, loadMBps: load, mirrorTo, slice };
        const rows: (() => Promise<unknown>)[] = [
          async () => cs.push(probeLatency(binary, loop, sliceRounds, warmupRounds, load, mirrorTo)),
          async () => lrs.push(await lunlinkLatency(run)),
          async () => trs.push(await lunlinkLatency(run, { trace: { traces, stalls, io, profile } })),
          async () => prs.push(await lunlinkLatency(run, { busyPollUs: 500 })),
          async () => krs.push(await lunlinkLatency(run, { keyed: true })),
          ...(withEngines ? ENGINE_ROWS.map((engines, i) => async () => ers[i]!.push(await lunlinkLatency(run, { engines }))) : []),
        ];
        for (const i of sliceOrder(rows.length, slice)) await rows[i]!();
      }
      const c = sortedUnion(cs);
      const [lr, tr, pr, kr] = [mergeRuns(lrs), mergeRuns(trs), mergeRuns(prs), mergeRuns(krs)];
      breakdowns.push(...breakdown(traces, stalls, io).map((r) => [condition, ...r]));
      if (showSlow) slow.push(...slowRounds(condition, traces, io));
      if (profile !== undefined) profiles.push(...profileBreakdown(condition, traces, profile, stalls));
      const [l, t, p, k] = [lr.latenciesUs, tr.latenciesUs, pr.latenciesUs, kr.latenciesUs];
      const lostOf = (r: LatencyRun): string => `${r.roundsRun} / ${r.lostProbes} (${r.lateProbes} late) / ${r.overruns} / ${r.lostRecords} / ${r.ackWaits}`;
      console.error(`  done ${condition}`);
      // The p99 ratio's 90% bootstrap interval over the slices (stats.ts): identical rows read up to
      // 2x apart at p99, as slow rounds come in bursts and a row's p99 is a few of them.
      const interval = (sliceRuns: LatencyRun[]): string => {
        const { low, high } = slicedRatioInterval(sliceRuns.map((r) => r.latenciesUs), cs, 99);
        return `${low.toFixed(2)}-${high.toFixed(2)}`;
      };
      const row = (name: string, x: Float64Array, run?: LatencyRun, sliceRuns?: LatencyRun[]): string[] => [
        condition,
        name,
        percentile(x, 50).toFixed(0),
        percentile(x, 99).toFixed(0),
        ratio(percentile(x, 50), percentile(c, 50)),
        ratio(percentile(x, 99), percentile(c, 99)),
        sliceRuns === undefined ? "-" : interval(sliceRuns),
        run === undefined ? "-" : lostOf(run),
      ];
      cdfs.push(...([["C probe", c], ["lunlink", l], ["lunlink busyPollUs 500", p], ["lunlink keyed", k]] as const).map(([name, values]) => ({ group: condition, name, values })));
      rows.push(row("C probe", c), row("lunlink", l, lr, lrs), row(`lunlink traced, for the breakdown (p50 ${ratio(percentile(t, 50), percentile(l, 50))}x untraced)`, t, tr, trs), row("lunlink busyPollUs 500", p, pr, prs), row(`lunlink keyed (p50 ${ratio(percentile(k, 50), percentile(l, 50))}x unkeyed)`, k, kr, krs));
      if (withEngines) {
        for (const [i, engines] of ENGINE_ROWS.entries()) {
          const run = mergeRuns(ers[i]!);
          rows.push(row(`lunlink writer ${engines.send}, poller ${engines.receive}`, run.latenciesUs, run, ers[i]!));
        }
      }
    }
    console.log(table(["condition", "path (ping-pong)", "p50 us", "p99 us", "p50 vs C", "p99 vs C", "p99 vs C, 90% interval (slices resampled)", "rounds run / probes lost (late) / reader overruns / records lost / writer ack waits"], rows));
    console.log(`lunlink volumes' I/O engine: ${[...enginesSeen].join(", ")} (LUNLINK_ENGINE: ${process.env["LUNLINK_ENGINE"] ?? "unset"})`);
    console.log("p99 vs C, 90% interval: the slices drawn with replacement 1000 times (a row and the C probe by the same slice indices), the 5th-95th percentile of the pooled p99 ratios; rows whose intervals overlap are not told apart by this run.");
    console.log(`probes lost: rounds not delivered within ${ROUND_DEADLINE_MS} ms, left out of the percentiles (late: delivered after it); records lost: overwritten before the reader read them (it was lapped); writer ack waits: the writer held a probe's record for the reader's ack. A row stops after ${ROW_BUDGET_MS / 1000} s with the rounds it ran.`);
    if (plotDir !== undefined) for (const path of await writeCharts(plotDir, latencyCharts(cdfs))) console.log(`chart: ${path}`);
    console.log(`\nwhere the lunlink rounds' time goes (the traced row; means in us; GC overlap: rounds during which a GC pause ran)`);
    console.log(table(["condition", "rounds", "total", "send -> write done", "of which queued (behind a write in flight at send) / write", "write done -> watch woke", "watch sleep at write done", "watch woke -> delivered", "loop busy (JS)", "write in flight at send / status write overlap", "found without a watch", "GC overlap"], breakdowns));
    console.log("queued: send -> the probe's record write submitted; write: submitted -> completion seen by JS; watch sleep: the sleep the waking watch had backed off to (us, schedule of adaptive-wait.ts paceAfter); loop busy: event-loop time running JS during the round (eventLoopUtilization); the last counts are rounds.");
    if (showSlow) console.log(`\nthe slowest 1% of rounds, one by one (us)\n${table(["condition", "sent (CLOCK_MONOTONIC s, as ftrace's mono clock)", "slice / round / s into the slice", "total", "queued", "behind a write in flight", "write", "write done -> woke", "watch sleep", "woke -> delivered", "loop busy", "writes in flight at send", "status overlap"], slow)}`);
    if (profiling) console.log(`\n--profile: the lunlink rows' rounds against a V8 CPU profile (sampled every ${PROFILE_INTERVAL_US} us) and the main thread's schedstat\n${profiles.join("\n")}`);
    console.log(`\nloaded: a background stream of ${LOAD_MBPS} MB/s (lunlink: 1 KiB data frames through the same writer; C: 64 KiB writes to the same volume); the timed messages are control frames.`);
  });
}
