// Charts for `lunlink demo --plot DIR` and `npm run bench -- link|latency --plot DIR`: vega-lite specs
// built from plain series by pure functions (tests render them from fixed data), rendered headless to
// SVG by vega. vega and vega-lite are dev dependencies: they are imported only when a chart is drawn,
// and a missing one is ERR_LUNLINK_MISSING_DEPENDENCY, never a crash at startup. Series are reduced
// before they reach a spec (bins, quantiles), so an SVG stays small whatever the run length.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import type { TopLevelSpec } from "vega-lite";

import { ErrorCode, LunlinkError } from "../errors.ts";

/** A vega-lite spec as JSON; kept opaque so the shipped declarations do not name vega-lite's types. */
export type ChartSpec = Readonly<Record<string, unknown>>;

/** One chart to write: `file` is a name inside the plot directory (`.svg`). */
export interface Chart {
  file: string;
  spec: ChartSpec;
}

export interface TimelinePoint {
  /** Seconds since the start of the run. */
  tS: number;
  value: number;
}

export interface TimelineSeries {
  title: string;
  /** Title of the shared time axis (what time 0 is). */
  timeTitle: string;
  /** Delivered traffic per sampling interval (top panel). */
  throughput: TimelinePoint[];
  throughputTitle: string;
  /** Latency of each probe or ping reply (bottom panel). */
  latency: TimelinePoint[];
  latencyTitle: string;
  /** When the primary network was cut and restored, seconds since the start of the run. */
  cutS: number;
  restoreS: number;
}

export interface CdfSeries {
  /** Facet (one panel per group, e.g. the bench condition). */
  group: string;
  /** Line within the panel (e.g. "C probe", "lunlink"). */
  name: string;
  /** Sorted ascending. */
  values: Float64Array | number[];
}

/** A panel of a vertical concatenation, and a layer inside it (vega-lite exports only the top-level type). */
type Panel = Extract<TopLevelSpec, { vconcat: unknown }>["vconcat"][number];
type Layer = Extract<Panel, { layer: unknown }>["layer"][number];

/** Quantiles drawn per CDF line: every percent, then the tail in finer steps. */
const CDF_QUANTILES = [...Array.from({ length: 100 }, (_, i) => i / 100), 0.995, 0.999, 1];
const WIDTH_PX = 640;
const PANEL_HEIGHT_PX = 180;
const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** Cut and restore as labelled vertical rules, layered over each timeline panel. */
function markerLayers(cutS: number, restoreS: number): Layer[] {
  const data = { values: [{ tS: cutS, event: "cut" }, { tS: restoreS, event: "restore" }] };
  return [
    { data, mark: { type: "rule", strokeDash: [4, 3], color: "#b03a2e" }, encoding: { x: { field: "tS", type: "quantitative" } } },
    { data, mark: { type: "text", align: "left", dx: 3, dy: -4, baseline: "top", color: "#b03a2e" }, encoding: { x: { field: "tS", type: "quantitative" }, y: { value: 0 }, text: { field: "event" } } },
  ];
}

// Data marks carry aria: false: vega would otherwise write an aria-label per point, which made a
// 1300-ping timeline 450 KB of SVG.

/** Throughput (top) and latency (bottom) over time, the cut and restore marked: the failover is the dip. */
export function timelineSpec(series: TimelineSeries): ChartSpec {
  const x = { field: "tS", type: "quantitative", title: series.timeTitle } as const;
  const panel = (values: TimelinePoint[], yTitle: string, mark: Extract<Layer, { mark: unknown }>["mark"], logY: boolean): Panel => ({
    width: WIDTH_PX,
    height: PANEL_HEIGHT_PX,
    layer: [
      {
        data: { values: values.map((p) => ({ tS: p.tS, value: p.value })) },
        mark,
        encoding: { x, y: { field: "value", type: "quantitative", title: yTitle, ...(logY ? { scale: { type: "log" } } : {}) } },
      },
      ...markerLayers(series.cutS, series.restoreS),
    ],
  });
  const spec = {
    $schema: SCHEMA,
    title: series.title,
    resolve: { scale: { x: "shared" } },
    vconcat: [
      panel(series.throughput, series.throughputTitle, { type: "line", interpolate: "step-after", color: "#1f77b4", aria: false }, false),
      panel(series.latency.filter((p) => p.value > 0), series.latencyTitle, { type: "line", strokeWidth: 1, color: "#2ca02c", aria: false }, true),
    ],
  } satisfies TopLevelSpec;
  return spec;
}

/** Histogram of failover interruptions, with the target as a rule. */
export function histogramSpec(interruptionsMs: readonly number[], title: string, targetMs: number): ChartSpec {
  const finite = interruptionsMs.filter((v) => Number.isFinite(v));
  // Bins from 0 to past the target or the largest value, so the target rule is always on the chart.
  const extent: [number, number] = [0, Math.max(targetMs, ...finite) + 10];
  const spec = {
    $schema: SCHEMA,
    title,
    width: WIDTH_PX,
    height: PANEL_HEIGHT_PX * 1.5,
    layer: [
      {
        data: { values: finite.map((ms) => ({ ms })) },
        mark: { type: "bar", color: "#1f77b4", aria: false },
        encoding: {
          x: { field: "ms", type: "quantitative", bin: { step: 5, extent }, title: "interruption per cut (ms)" },
          y: { aggregate: "count", type: "quantitative", title: "cuts" },
        },
      },
      {
        data: { values: [{ ms: targetMs, label: `target ${targetMs} ms (p95 and max)` }] },
        layer: [
          { mark: { type: "rule", strokeDash: [4, 3], color: "#b03a2e" }, encoding: { x: { field: "ms", type: "quantitative" } } },
          { mark: { type: "text", align: "right", dx: -3, baseline: "top", color: "#b03a2e" }, encoding: { x: { field: "ms", type: "quantitative" }, y: { value: 4 }, text: { field: "label" } } },
        ],
      },
    ],
  } satisfies TopLevelSpec;
  return spec;
}

/** Latency CDFs, one panel per group, one line per series; the x axis (`xTitle`, with its unit) is logarithmic. */
export function cdfSpec(series: readonly CdfSeries[], title: string, xTitle: string): ChartSpec {
  const values: { group: string; name: string; latency: number; fraction: number }[] = [];
  for (const s of series) {
    if (s.values.length === 0) continue;
    for (const q of CDF_QUANTILES) {
      const index = Math.min(s.values.length - 1, Math.max(0, Math.ceil(q * s.values.length) - 1));
      values.push({ group: s.group, name: s.name, latency: Math.max(s.values[index]!, Number.MIN_VALUE), fraction: q });
    }
  }
  const spec = {
    $schema: SCHEMA,
    title,
    data: { values },
    facet: { column: { field: "group", type: "nominal", title: null } },
    spec: {
      width: WIDTH_PX / 3,
      height: PANEL_HEIGHT_PX * 1.5,
      mark: { type: "line", interpolate: "step-after", aria: false },
      encoding: {
        x: { field: "latency", type: "quantitative", title: xTitle, scale: { type: "log" } },
        y: { field: "fraction", type: "quantitative", title: "fraction of messages", scale: { domain: [0, 1] } },
        color: { field: "name", type: "nominal", title: "path", legend: { orient: "bottom", columns: 2, labelLimit: 400 } },
      },
    },
  } satisfies TopLevelSpec;
  return spec;
}

interface Renderer {
  compile(spec: ChartSpec): unknown;
  toSvg(vegaSpec: unknown): Promise<string>;
}

async function loadRenderer(): Promise<Renderer> {
  try {
    const [vega, vegaLite] = await Promise.all([import("vega"), import("vega-lite")]);
    return {
      compile: (spec) => vegaLite.compile(spec as unknown as TopLevelSpec).spec,
      toSvg: (vegaSpec) => new vega.View(vega.parse(vegaSpec as Parameters<typeof vega.parse>[0]), { renderer: "none" }).toSVG(),
    };
  } catch (error) {
    throw new LunlinkError(
      ErrorCode.MissingDependency,
      `--plot needs the charting packages vega and vega-lite (development dependencies of lunlink), which could not be loaded: ${error instanceof Error ? error.message : String(error)}; install them next to lunlink (npm install vega vega-lite) or run without --plot`,
      { cause: error },
    );
  }
}

/** Throws ERR_LUNLINK_MISSING_DEPENDENCY unless the charting packages load: call it before a long run. */
export async function assertCanPlot(): Promise<void> {
  await loadRenderer();
}

/** Renders one spec to SVG text. */
export async function renderSvg(spec: ChartSpec): Promise<string> {
  const renderer = await loadRenderer();
  return renderer.toSvg(renderer.compile(spec));
}

/** Renders the charts into `dir` (created if missing); returns the paths written. */
export async function writeCharts(dir: string, charts: readonly Chart[]): Promise<string[]> {
  const renderer = await loadRenderer();
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const chart of charts) {
    const path = join(dir, chart.file);
    await writeFile(path, await renderer.toSvg(renderer.compile(chart.spec)));
    written.push(path);
  }
  return written;
}
