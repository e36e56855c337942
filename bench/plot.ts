// `--plot DIR` for `npm run bench -- link|latency`: turns what the bench measured into the charts of
// lib/cli/plot.ts. link: the histogram of failover interruptions over all cuts, and the probe stream
// around the cut with the median interruption (probes delivered per PROBE_BIN_MS and each probe's
// one-way delay); latency: the CDF of each path against the C probe, one panel per condition.
import { cdfSpec, histogramSpec, timelineSpec, type CdfSeries, type Chart, type TimelinePoint } from "../lib/cli/plot.ts";

export const PROBE_BIN_MS = 10;
/** The window drawn around the chosen cut: from this long before it to this long after the restore. */
const BEFORE_CUT_MS = 300;
const AFTER_RESTORE_MS = 1000;
const FAILOVER_TARGET_MS = 300;

/** The directory after `--plot`, or undefined when the flag is absent. */
export function plotDirArg(args: readonly string[]): string | undefined {
  const at = args.indexOf("--plot");
  if (at < 0) return undefined;
  const dir = args[at + 1];
  if (dir === undefined || dir.startsWith("--")) throw new Error("--plot needs a directory");
  return dir;
}

/** A probe as the link bench's receiver reports it: [seq, sent wall ms, received wall ms]. */
export type ProbeRow = [number, number, number];
export interface CutEvent {
  cutAt: number;
  restoreAt: number;
}

/** The charts of the link bench's failover phase; `interruptionsMs[i]` belongs to `events[i]`. */
export function linkCharts(rows: readonly ProbeRow[], events: readonly CutEvent[], interruptionsMs: readonly number[], label: string): Chart[] {
  const charts: Chart[] = [{ file: "link-failover-histogram.svg", spec: histogramSpec(interruptionsMs, `lunlink failover: interruption per cut of the veth, ${interruptionsMs.length} cuts (${label})`, FAILOVER_TARGET_MS) }];
  const ranked = interruptionsMs.map((ms, i) => ({ ms, i })).filter((x) => Number.isFinite(x.ms)).sort((a, b) => a.ms - b.ms);
  const median = ranked[Math.floor((ranked.length - 1) / 2)];
  if (median === undefined) return charts;
  const e = events[median.i]!;
  const from = e.cutAt - BEFORE_CUT_MS;
  const to = Math.min(e.restoreAt + AFTER_RESTORE_MS, events[median.i + 1]?.cutAt ?? Number.POSITIVE_INFINITY);
  const arrived = rows.filter((r) => r[2] >= from && r[2] < to);
  const bins = new Uint32Array(Math.ceil((to - from) / PROBE_BIN_MS));
  for (const r of arrived) bins[Math.floor((r[2] - from) / PROBE_BIN_MS)]!++;
  const s = (wallMs: number): number => (wallMs - e.cutAt) / 1000;
  const throughput: TimelinePoint[] = [...bins].map((n, k) => ({ tS: s(from + k * PROBE_BIN_MS), value: (n * 1000) / PROBE_BIN_MS }));
  const latency: TimelinePoint[] = arrived.sort((a, b) => a[2] - b[2]).map((r) => ({ tS: s(r[2]), value: r[2] - r[1] }));
  charts.push({
    file: "link-failover-timeline.svg",
    spec: timelineSpec({
      title: `lunlink failover: 1 ms UDP probe through lunlink0 across the cut with the median interruption (${median.ms.toFixed(0)} ms; ${label})`,
      timeTitle: "time since the cut (s)",
      throughput,
      throughputTitle: `probes delivered per second (${PROBE_BIN_MS} ms bins)`,
      latency,
      latencyTitle: "one-way delay per probe (ms, log)",
      cutS: 0,
      restoreS: s(e.restoreAt),
    }),
  });
  return charts;
}

/** One-way latency CDFs of the latency bench (microseconds), one panel per condition. */
export function latencyCharts(series: readonly CdfSeries[]): Chart[] {
  return [{ file: "latency-cdf.svg", spec: cdfSpec(series, "one-way latency writer -> poller, lunlink against the C probe (ping-pong)", "one-way latency (us, log)") }];
}
