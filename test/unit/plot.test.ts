// The charts of --plot: each spec, built from a small fixed series, renders headless to an SVG with the
// expected marks, axis titles and chart title; a missing charting package is a coded error.
import test from "ava";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import { cdfSpec, histogramSpec, renderSvg, timelineSpec, writeCharts } from "../../lib/cli/plot.ts";
import { linkCharts, PROBE_BIN_MS, type ProbeRow } from "../../bench/plot.ts";
import { interfaceRxBytes, parsePingReply, throughputSeries } from "../../lib/cli/plot-data.ts";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const timeline = timelineSpec({
  title: "fixed timeline",
  timeTitle: "time since start (s)",
  throughput: [0, 0.5, 1, 1.5, 2, 2.5, 3].map((tS, i) => ({ tS, value: i === 3 ? 0 : 12 })),
  throughputTitle: "delivered MB/s",
  latency: [0.2, 0.7, 1.2, 1.7, 2.2, 2.7].map((tS, i) => ({ tS, value: i >= 3 && i < 5 ? 3 : 0.5 })),
  latencyTitle: "ping RTT (ms)",
  cutS: 1.4,
  restoreS: 2.4,
});

/** Class names vega gives the mark groups it drew, e.g. "mark-line mark". */
function markClasses(svg: string): Set<string> {
  return new Set([...svg.matchAll(/class="(mark-[a-z]+) role-([a-z-]+)/g)].map((m) => `${m[1]} ${m[2]}`));
}

/** The number of shapes vega drew in the mark groups of class `mark` (e.g. mark-rect: bars). */
function shapes(svg: string, mark: string): number {
  const groups = [...svg.matchAll(new RegExp(`<g class="${mark} role-mark[^"]*"[^>]*>(.*?)</g>`, "g"))];
  return groups.reduce((n, g) => n + [...g[1]!.matchAll(/<path /g)].length, 0);
}

/** The text of every <text> element. */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
}

test("timeline: a throughput line and a latency line, with cut and restore rules and both axis titles", async (t) => {
  const svg = await renderSvg(timeline);
  t.true(svg.startsWith("<svg"));
  const marks = markClasses(svg);
  t.true(marks.has("mark-rule mark"), [...marks].join(", "));
  t.is(shapes(svg, "mark-line"), 2, "one line per panel");
  const words = texts(svg);
  for (const expected of ["fixed timeline", "delivered MB/s", "ping RTT (ms)", "time since start (s)", "cut", "restore"]) t.true(words.includes(expected), `missing text ${expected}`);
  // Two panels share the time axis: its title appears once per panel.
  t.is(words.filter((w) => w === "time since start (s)").length, 2);
});

test("histogram: bars of interruptions per cut, the target rule and its label", async (t) => {
  const svg = await renderSvg(histogramSpec([67, 70, 72, 79, 81, Number.NaN], "fixed histogram", 300));
  const marks = markClasses(svg);
  t.true(marks.has("mark-rect mark"), [...marks].join(", "));
  t.true(marks.has("mark-rule mark"));
  const words = texts(svg);
  for (const expected of ["fixed histogram", "interruption per cut (ms)", "cuts", "target 300 ms (p95 and max)"]) t.true(words.includes(expected), `missing text ${expected}`);
  // Five finite values in 5 ms bins: 65-70, 70-75 (two), 75-80, 80-85.
  t.is(shapes(svg, "mark-rect"), 4);
});

test("cdf: one panel per group, one line per series, a legend naming each series", async (t) => {
  const sorted = (scale: number) => Float64Array.from({ length: 200 }, (_, i) => scale * (50 + i));
  const svg = await renderSvg(
    cdfSpec(
      [
        { group: "(a) idle", name: "C probe", values: sorted(1) },
        { group: "(a) idle", name: "lunlink", values: sorted(1.3) },
        { group: "(b) mirror", name: "C probe", values: sorted(2) },
        { group: "(b) mirror", name: "lunlink", values: sorted(2.5) },
        { group: "(b) mirror", name: "empty", values: [] },
      ],
      "fixed cdf",
      "one-way latency (us)",
    ),
  );
  const words = texts(svg);
  for (const expected of ["fixed cdf", "(a) idle", "(b) mirror", "one-way latency (us)", "fraction of messages", "C probe", "lunlink", "path"]) t.true(words.includes(expected), `missing text ${expected}`);
  t.false(words.includes("empty"), "an empty series draws nothing");
  // Two panels with two lines each.
  t.is(shapes(svg, "mark-line"), 4);
});

test("writeCharts writes one SVG file per chart into a directory it creates", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "lunlink-plot-"));
  try {
    const written = await writeCharts(join(dir, "img"), [{ file: "timeline.svg", spec: timeline }]);
    t.deepEqual(written, [join(dir, "img", "timeline.svg")]);
    t.regex(await readFile(written[0]!, "utf8"), /^<svg[^>]*>.*fixed timeline/s);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("demo sampling: /proc/net/dev rx bytes, ping -D reply lines, MB/s between counter samples", (t) => {
  const netDev = [
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
    "    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0",
    "lunlink0: 125829120   90000    0    0    0     0          0         0     4200     100    0    0    0     0       0          0",
  ].join("\n");
  t.is(interfaceRxBytes(netDev, "lunlink0"), 125829120);
  t.is(interfaceRxBytes(netDev, "lo"), 0);
  t.is(interfaceRxBytes(netDev, "lunlink1"), undefined);
  t.deepEqual(parsePingReply("[1764437000.123456] 64 bytes from 198.18.100.2: icmp_seq=7 ttl=64 time=2.31 ms"), { wallMs: 1764437000123.456, rttMs: 2.31 });
  t.is(parsePingReply("PING 198.18.100.2 (198.18.100.2) 56(84) bytes of data."), undefined);
  t.is(parsePingReply("[1764437000.123456] From 198.18.100.1 icmp_seq=8 Destination Host Unreachable"), undefined);
  const points = throughputSeries(
    [
      { wallMs: 1000, bytes: 0 },
      { wallMs: 1100, bytes: 1_200_000 },
      { wallMs: 1100, bytes: 1_200_000 }, // same instant: skipped, no division by zero
      { wallMs: 1300, bytes: 1_200_000 },
    ],
    1000,
  );
  t.deepEqual(points, [
    { tS: 0, value: 12 },
    { tS: 0.1, value: 0 },
  ]);
});

test("link bench charts: the histogram of all cuts, and the timeline of the cut with the median interruption", async (t) => {
  // Three cuts 10 s apart; probes every 1 ms, none delivered for 70/90/80 ms after each cut.
  const gapsMs = [70, 90, 80];
  const events = gapsMs.map((_, i) => ({ cutAt: 10_000 * (i + 1), restoreAt: 10_000 * (i + 1) + 500 }));
  const rows: ProbeRow[] = [];
  let seq = 0;
  for (let at = 9_000; at < 32_000; at++) {
    const cut = events.findIndex((e) => at >= e.cutAt && at < e.cutAt + gapsMs[events.indexOf(e)]!);
    if (cut < 0) rows.push([seq, at, at + 10]); // a 10 ms one-way delay: arrivals shift by exactly one bin
    seq++;
  }
  const charts = linkCharts(rows, events, gapsMs, "fixed");
  t.deepEqual(charts.map((c) => c.file), ["link-failover-histogram.svg", "link-failover-timeline.svg"]);
  const timeline = await renderSvg(charts[1]!.spec);
  t.true(texts(timeline).some((w) => w.includes("median interruption (80 ms")), "the third cut (80 ms) is the median");
  t.true(texts(timeline).includes("time since the cut (s)"));
  // The chart's throughput series has one 10 ms bin per step from 300 ms before the cut to 1 s after the restore.
  const spec = charts[1]!.spec as { vconcat: { layer: { data: { values: { tS: number; value: number }[] } }[] }[] };
  const bins = spec.vconcat[0]!.layer[0]!.data.values;
  t.is(bins.length, (300 + 500 + 1000) / PROBE_BIN_MS);
  t.is(bins.filter((b) => b.value === 0).length, 8, "80 ms without a probe = 8 empty bins");
  t.true(bins.filter((b) => b.value !== 0).every((b) => b.value === 1000), "1 probe per ms elsewhere");
  t.is(linkCharts(rows, events, [Number.NaN, Number.NaN, Number.NaN], "none").length, 1, "no finite interruption: only the histogram");
});

test("without vega and vega-lite, assertCanPlot (called before a --plot run) fails with ERR_LUNLINK_MISSING_DEPENDENCY", async (t) => {
  // A child whose module resolver cannot find the two packages, as in an installation without dev dependencies.
  const hide = `export async function resolve(s, c, next) { if (s === "vega" || s === "vega-lite") { const e = new Error("Cannot find package " + s); e.code = "ERR_MODULE_NOT_FOUND"; throw e; } return next(s, c); }`;
  const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hide)}`)});`;
  const script = `const { assertCanPlot } = await import(${JSON.stringify(new URL("../../lib/cli/plot.ts", import.meta.url).href)}); try { await assertCanPlot(); console.log("loaded"); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  const { stdout } = await promisify(execFile)(process.execPath, ["--import=tsx", "--import", `data:text/javascript,${encodeURIComponent(register)}`, "--input-type=module", "-e", script]);
  const result = JSON.parse(stdout) as { code: string; message: string };
  t.is(result.code, "ERR_LUNLINK_MISSING_DEPENDENCY");
  t.regex(result.message, /vega and vega-lite .*Cannot find package vega/);
});
