// What `lunlink demo --plot DIR` samples during its run: bytes delivered into the receiving node's TUN
// interface (its /proc/PID/net/dev, read from the root namespace, so no process is spawned per
// sample) every THROUGHPUT_SAMPLE_MS, and every ping reply's time and RTT. Parsing is pure; the
// recorder holds at most MAX_TIMELINE_SAMPLES of each and turns them into the charts of lib/cli/plot.ts.
import { readFile } from "node:fs/promises";

import { cdfSpec, timelineSpec, type CdfSeries, type Chart, type TimelinePoint } from "./plot.ts";

export const THROUGHPUT_SAMPLE_MS = 100;
/** Bound on stored samples of each kind (a demo run takes ~15 s: 150 counter samples, 1300 pings). */
export const MAX_TIMELINE_SAMPLES = 10_000;

/** Received bytes of `iface` in the text of /proc/net/dev, or undefined if the interface is not listed. */
export function interfaceRxBytes(netDev: string, iface: string): number | undefined {
  for (const line of netDev.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0 || line.slice(0, colon).trim() !== iface) continue;
    const rx = Number(line.slice(colon + 1).trim().split(/\s+/)[0]);
    return Number.isFinite(rx) ? rx : undefined;
  }
  return undefined;
}

/** The wall-clock time (ms, from `ping -D`) and RTT of a ping reply line, or undefined for any other line. */
export function parsePingReply(line: string): { wallMs: number; rttMs: number } | undefined {
  const m = /^\[(\d+\.\d+)\].*icmp_seq=\d+.*time=([\d.]+) ms/.exec(line);
  return m === null ? undefined : { wallMs: Number(m[1]) * 1000, rttMs: Number(m[2]) };
}

/** Delivered MB/s per interval from cumulative byte counters (`wallMs` ascending), at each interval's start. */
export function throughputSeries(counters: readonly { wallMs: number; bytes: number }[], startWallMs: number): TimelinePoint[] {
  const points: TimelinePoint[] = [];
  for (let i = 1; i < counters.length; i++) {
    const a = counters[i - 1]!;
    const b = counters[i]!;
    if (b.wallMs <= a.wallMs) continue;
    points.push({ tS: (a.wallMs - startWallMs) / 1000, value: (b.bytes - a.bytes) / 1e3 / (b.wallMs - a.wallMs) });
  }
  return points;
}

export class DemoRecorder {
  private readonly counters: { wallMs: number; bytes: number }[] = [];
  private readonly replies: { wallMs: number; rttMs: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private reading = false;

  /** `pid`: a process in the receiving node's network namespace; `iface`: its TUN interface. */
  constructor(
    private readonly pid: number,
    private readonly iface: string,
    readonly startWallMs: number = Date.now(),
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sample(), THROUGHPUT_SAMPLE_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Feeds one line of `ping -D` output. */
  ping(line: string): void {
    const reply = parsePingReply(line);
    if (reply !== undefined && this.replies.length < MAX_TIMELINE_SAMPLES) this.replies.push(reply);
  }

  private async sample(): Promise<void> {
    if (this.reading || this.counters.length >= MAX_TIMELINE_SAMPLES) return; // a slow read skips a tick
    this.reading = true;
    try {
      const bytes = interfaceRxBytes(await readFile(`/proc/${this.pid}/net/dev`, "utf8"), this.iface);
      if (bytes !== undefined) this.counters.push({ wallMs: Date.now(), bytes });
    } catch {
      // The node exited: the chart ends here.
    } finally {
      this.reading = false;
    }
  }

  /** The timeline (TCP MB/s and ping RTT across the cut) and the RTT CDF per phase. */
  charts(cutWallMs: number, restoreWallMs: number): Chart[] {
    const s = (wallMs: number): number => (wallMs - this.startWallMs) / 1000;
    const rtts = (from: number, to: number): Float64Array => Float64Array.from(this.replies.filter((r) => r.wallMs > from && r.wallMs <= to).map((r) => r.rttMs)).sort();
    const phases: CdfSeries[] = [
      { group: "ping RTT through lunlink0", name: "primary, before the cut", values: rtts(0, cutWallMs) },
      { group: "ping RTT through lunlink0", name: "storage, veth cut", values: rtts(cutWallMs, restoreWallMs) },
      { group: "ping RTT through lunlink0", name: "after the restore", values: rtts(restoreWallMs, Number.POSITIVE_INFINITY) },
    ];
    return [
      {
        file: "demo-timeline.svg",
        spec: timelineSpec({
          title: "lunlink demo: TCP stream and 10 ms ping through lunlink0 while the veth is cut and restored",
          timeTitle: "time since the stream was launched (s)",
          throughput: throughputSeries(this.counters, this.startWallMs),
          throughputTitle: `MB/s into node 2's lunlink0 (${THROUGHPUT_SAMPLE_MS} ms samples)`,
          latency: this.replies.map((r) => ({ tS: s(r.wallMs), value: r.rttMs })),
          latencyTitle: "ping RTT (ms, log)",
          cutS: s(cutWallMs),
          restoreS: s(restoreWallMs),
        }),
      },
      { file: "demo-ping-cdf.svg", spec: cdfSpec(phases, "lunlink demo: ping RTT before, during and after the cut", "RTT (ms, log)") },
    ];
  }
}
