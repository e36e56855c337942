// `bench link --ss`: what limits TCP on the storage path, from `ss -tin` sampled every SAMPLE_MS in
// both namespaces during one iperf3 run (issue #13 part 2). Sender (node 1): cwnd, ssthresh, rtt,
// rttvar, unacked, retransmits, the peer's advertised window (snd_wnd) and the kernel's limited-time
// counters (busy, rwnd_limited, sndbuf_limited; cwnd-limited is the rest of busy); receiver (node 2):
// rcv_space and rcv_ssthresh (how far its window grew). Also the settings that bound the window inside
// the namespaces (tcp_rmem/wmem, lunlink0's txqueuelen and qdisc backlog). One shell per namespace
// loops `ss` (no process spawn per sample from here); the loop is bounded by a sample count.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import type { Lab } from "../lib/node/lab.ts";
import { percentile } from "./stats.ts";

export const SAMPLE_MS = 100;

/** One parsed `ss -tin` line of the iperf3 data connection. */
export interface TcpSample {
  cwnd: number | undefined;
  ssthresh: number | undefined;
  rttMs: number | undefined;
  rttvarMs: number | undefined;
  unacked: number | undefined;
  retransTotal: number | undefined;
  sndWndBytes: number | undefined;
  busyMs: number | undefined;
  rwndLimitedMs: number | undefined;
  sndbufLimitedMs: number | undefined;
  bytesAcked: number | undefined;
  rcvSpaceBytes: number | undefined;
  rcvSsthreshBytes: number | undefined;
  bytesReceived: number | undefined;
  mss: number | undefined;
  qdiscBacklogPackets: number | undefined;
}

/** Parses the connection lines of one `ss -tin` output; the data connection moved the most bytes. */
export function parseSs(out: string): TcpSample | undefined {
  const lines = out.split("\n").filter((l) => l.includes("cwnd:"));
  const num = (l: string, re: RegExp): number | undefined => {
    const m = re.exec(l);
    return m === null ? undefined : Number(m[1]);
  };
  const moved = (l: string) => (num(l, /bytes_acked:(\d+)/) ?? 0) + (num(l, /bytes_received:(\d+)/) ?? 0);
  const line = lines.sort((a, b) => moved(b) - moved(a))[0];
  if (line === undefined) return undefined;
  return {
    cwnd: num(line, /cwnd:(\d+)/),
    ssthresh: num(line, /ssthresh:(\d+)/),
    rttMs: num(line, / rtt:([\d.]+)\//),
    rttvarMs: num(line, / rtt:[\d.]+\/([\d.]+)/),
    unacked: num(line, /unacked:(\d+)/),
    retransTotal: num(line, /retrans:\d+\/(\d+)/),
    sndWndBytes: num(line, /snd_wnd:(\d+)/),
    busyMs: num(line, /busy:(\d+)ms/),
    rwndLimitedMs: num(line, /rwnd_limited:(\d+)ms/),
    sndbufLimitedMs: num(line, /sndbuf_limited:(\d+)ms/),
    bytesAcked: num(line, /bytes_acked:(\d+)/),
    rcvSpaceBytes: num(line, /rcv_space:(\d+)/),
    rcvSsthreshBytes: num(line, /rcv_ssthresh:(\d+)/),
    bytesReceived: num(line, /bytes_received:(\d+)/),
    mss: num(line, / mss:(\d+)/),
    qdiscBacklogPackets: undefined,
  };
}

const SEPARATOR = "@@sample@@";

/** Samples `ss -tin` on port `port` in node `id`'s namespace every SAMPLE_MS for `seconds`, plus lunlink0's qdisc backlog. */
export async function sampleSeries(lab: Lab, id: 1 | 2, port: number, seconds: number, side: "sender" | "receiver"): Promise<TcpSample[]> {
  const count = Math.ceil((seconds * 1000) / SAMPLE_MS);
  const filter = side === "sender" ? `dport = ${port}` : `sport = ${port}`;
  const script = `i=0; while [ $i -lt ${count} ]; do ss -tin ${filter}; tc -s qdisc show dev lunlink0 | grep -o 'backlog [0-9]*b [0-9]*p' | head -1; echo ${SEPARATOR}; sleep ${SAMPLE_MS / 1000}; i=$((i+1)); done`;
  const out = await lab.exec(id, "sh", ["-c", script], (seconds + 30) * 1000).catch(() => "");
  // LUNLINK_SS_RAW=DIR keeps each run's raw samples (bbr's own state: bw, mrtt, pacing_rate, app_limited).
  const rawDir = process.env["LUNLINK_SS_RAW"];
  if (rawDir !== undefined) await writeFile(join(rawDir, `${Date.now()}-node${id}-${side}.txt`), out);
  return out.split(SEPARATOR).flatMap((chunk) => {
    const sample = parseSs(chunk);
    if (sample === undefined) return [];
    const backlog = / (\d+)p/.exec(chunk);
    return [{ ...sample, qdiscBacklogPackets: backlog === null ? undefined : Number(backlog[1]) }];
  });
}

/** The settings that bound the window in node `id`'s namespace. */
export async function windowSettings(lab: Lab, id: 1 | 2): Promise<string> {
  const sysctl = (await lab.exec(id, "sysctl", ["-n", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.core.rmem_max", "net.core.wmem_max"]).catch(() => "?")).trim().split("\n");
  const link = await lab.exec(id, "ip", ["link", "show", "lunlink0"]).catch(() => "");
  const qlen = /qlen (\d+)/.exec(link)?.[1] ?? "?";
  return `node ${id}: tcp_rmem ${sysctl[0]?.replace(/\s+/g, " ")}, tcp_wmem ${sysctl[1]?.replace(/\s+/g, " ")}, rmem_max ${sysctl[2]}, wmem_max ${sysctl[3]}, lunlink0 txqueuelen ${qlen}`;
}

/** p50 / p95 / max of one field over the samples ("-" when absent). */
function spread(samples: TcpSample[], field: keyof TcpSample, scale = 1, digits = 0): string {
  const values = samples.map((s) => s[field]).filter((v): v is number => v !== undefined).map((v) => v * scale).sort((a, b) => a - b);
  if (values.length === 0) return "-";
  return `${percentile(values, 50).toFixed(digits)}/${percentile(values, 95).toFixed(digits)}/${values.at(-1)!.toFixed(digits)}`;
}

export const TCP_COLUMNS = ["run", "samples", "cwnd p50/p95/max", "ssthresh", "unacked", "in flight KiB", "rtt ms", "rttvar ms", "peer rwnd KiB", "rcv_space KiB (recv)", "retrans", "busy ms", "rwnd-limited", "sndbuf-limited", "cwnd-limited (rest)", "qdisc backlog pkts"];

/** One row of the table from a run's sender and receiver series. */
export function tcpRow(label: string, sender: TcpSample[], receiver: TcpSample[]): string[] {
  // The limited-time counters of the data connection as of its last sample (the one that had moved the most).
  const last = sender.reduce<TcpSample | undefined>((best, s) => ((s.bytesAcked ?? 0) >= (best?.bytesAcked ?? 0) ? s : best), undefined);
  const busy = last?.busyMs ?? 0;
  const rwnd = last?.rwndLimitedMs ?? 0;
  const sndbuf = last?.sndbufLimitedMs ?? 0;
  const pct = (ms: number) => (busy > 0 ? `${ms} ms (${((100 * ms) / busy).toFixed(0)}%)` : "-");
  const mss = last?.mss ?? 1348;
  const inFlight = sender.map((s) => ({ ...s, unacked: s.unacked === undefined ? undefined : (s.unacked * mss) / 1024 }));
  return [
    label,
    String(sender.length),
    spread(sender, "cwnd"),
    spread(sender, "ssthresh"),
    spread(sender, "unacked"),
    spread(inFlight, "unacked"),
    spread(sender, "rttMs", 1, 1),
    spread(sender, "rttvarMs", 1, 1),
    spread(sender, "sndWndBytes", 1 / 1024),
    spread(receiver, "rcvSpaceBytes", 1 / 1024),
    String(last?.retransTotal ?? 0),
    String(busy),
    pct(rwnd),
    pct(sndbuf),
    pct(Math.max(0, busy - rwnd - sndbuf)),
    spread(sender, "qdiscBacklogPackets"),
  ];
}

/** Per second of the run: iperf3's rate, and the median cwnd / unacked / rtt of that second's samples. */
export function timeCourse(sender: TcpSample[], perSecondMBps: number[]): string {
  const perSecond = Math.round(1000 / SAMPLE_MS);
  const median = (values: (number | undefined)[], digits: number) => {
    const v = values.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
    return v.length === 0 ? "-" : percentile(v, 50).toFixed(digits);
  };
  return perSecondMBps
    .map((mbps, i) => {
      const second = sender.slice(i * perSecond, (i + 1) * perSecond);
      return `${mbps.toFixed(0)} MB/s ${median(second.map((s) => s.cwnd), 0)}/${median(second.map((s) => s.unacked), 0)}/${median(second.map((s) => s.rttMs), 0)}`;
    })
    .join(" | ");
}

/** Kernel counters that tell a retransmit's cause (RTO, spurious, reordering, drops) and the TUN's drops. */
const COUNTER_PATTERN = /Retrans|Timeout|Spurious|DSACK|Reorder|Recovery|Loss|Drop|Prune|OFO|Undo|Hystart|Reneg|Collapse/;

/** nstat's absolute counters (TCP/IP, the namespace's own) and lunlink0's TX/RX drops in node `id`'s namespace. */
export async function netCounters(lab: Lab, id: 1 | 2): Promise<Map<string, number>> {
  const counters = new Map<string, number>();
  const out = await lab.exec(id, "nstat", ["-asz"]).catch(() => "");
  for (const line of out.split("\n")) {
    const [name, value] = line.trim().split(/\s+/);
    if (name !== undefined && value !== undefined && COUNTER_PATTERN.test(name)) counters.set(name, Number(value));
  }
  const link = await lab.exec(id, "ip", ["-s", "-j", "link", "show", "lunlink0"]).catch(() => "[]");
  const stats = (JSON.parse(link) as { stats64?: { tx?: { dropped?: number }; rx?: { dropped?: number } } }[])[0]?.stats64;
  counters.set("lunlink0.tx_dropped", stats?.tx?.dropped ?? 0);
  counters.set("lunlink0.rx_dropped", stats?.rx?.dropped ?? 0);
  return counters;
}

/** The counters that moved between two snapshots, "name +delta". */
export function counterDeltas(before: Map<string, number>, after: Map<string, number>): string {
  const moved = [...after].map(([name, value]) => [name.replace(/^TcpExt/, ""), value - (before.get(name) ?? 0)] as const).filter(([, d]) => d !== 0);
  return moved.length === 0 ? "none moved" : moved.map(([name, d]) => `${name} +${d}`).join(", ");
}

/** utime+stime (ms) of the `lunlink mirror copy --follow` processes whose source is one of `sources`. */
export async function mirrorCpuMs(sources: string[]): Promise<number> {
  let total = 0;
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes("mirror\0copy\0--follow\0") || !sources.some((s) => cmdline.includes(`--follow\0${s}\0`))) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
  }
  return total;
}
