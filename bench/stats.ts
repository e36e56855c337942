// Small statistics helpers for benchmarks.
export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export function mbps(bytesPerSecond: number): string {
  return (bytesPerSecond / 1e6).toFixed(1);
}

export function ratio(a: number, b: number): string {
  return b > 0 ? (a / b).toFixed(2) : "n/a";
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** The number after `--name` on the bench command line, or `fallback` if absent or not a positive number. */
export function numberArg(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name);
  const value = at >= 0 ? Number(args[at + 1]) : Number.NaN;
  return value > 0 ? value : fallback;
}

/** The median of `values` (the mean of the middle two for an even count); NaN if empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Ratios of runs made side by side in time: a[k] / b[k] for each slice k (a slice with b[k] <= 0
 * is left out), summarised by their median and range. Pairing keeps a machine whose speed swings
 * between slices from moving the ratio as it moves each side.
 */
export function pairedRatios(a: readonly number[], b: readonly number[]): { median: number; min: number; max: number } {
  if (a.length !== b.length) throw new Error(`pairedRatios: ${a.length} slices against ${b.length}`);
  const ratios = a.flatMap((value, k) => (b[k]! > 0 ? [value / b[k]!] : []));
  if (ratios.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}

/**
 * The ratio of two paths' p-th percentiles when both ran in the same slices, with a bootstrap
 * interval: `resamples` times, draw slice indices with replacement (the same indices for both
 * sides, which ran side by side), pool those slices' samples and take the ratio of their
 * percentiles; the interval is the 5th to 95th percentile of those ratios (90%). A tail percentile
 * of a row rests on a few slow rounds that come in bursts: the interval says how far the ratio
 * moves with which slices caught a burst. `random` is injectable for tests.
 */
export function slicedRatioInterval(a: readonly Float64Array[], b: readonly Float64Array[], p: number, resamples = 1000, random: () => number = Math.random): { low: number; high: number } {
  if (a.length !== b.length) throw new Error(`slicedRatioInterval: ${a.length} slices against ${b.length}`);
  if (a.length === 0) return { low: Number.NaN, high: Number.NaN };
  const ratios: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const picks = Array.from({ length: a.length }, () => Math.floor(random() * a.length));
    const below = percentile(sortedUnion(picks.map((k) => b[k]!)), p);
    if (below > 0) ratios.push(percentile(sortedUnion(picks.map((k) => a[k]!)), p) / below);
  }
  ratios.sort((x, y) => x - y);
  return { low: percentile(ratios, 5), high: percentile(ratios, 95) };
}

/** The samples of every part (slices, a part twice if listed twice), in one array sorted ascending. */
export function sortedUnion(parts: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all.sort();
}
