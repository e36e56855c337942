// `lunlink status` as text, and `status --watch`: the same text refreshed every interval, in place on a
// terminal (cursor home, each line cleared to its end, the rest of the screen cleared: no flicker,
// like `watch wg show`), or as plain frames one after another when stdout is not a terminal (a log,
// a pipe). The view is a pure function of the status; the loop takes its clock and sleep from the
// caller, and its interval is bounded (WATCH_INTERVAL_*).
import type { LinkStatus } from "../link/link.ts";
import type { StorageReport } from "../link/storage-path.ts";
import type { TimelineEntry } from "../node/timeline.ts";

export type NodeStatus = LinkStatus & { tun: { name: string; packetsIn: number; packetsOut: number }; timeline?: TimelineEntry[] };

/** Timeline entries the text view shows (newest last); --json has all of them. */
export const TIMELINE_SHOWN = 10;
export const WATCH_INTERVAL_MIN_S = 0.1;
export const WATCH_INTERVAL_MAX_S = 60;
export const WATCH_INTERVAL_DEFAULT_S = 1;

export function renderStatus(s: NodeStatus): string {
  const r = s.ring.readerCounters;
  const lines = [
    `node ${s.node} <-> node ${s.peer}: active path ${s.active}${s.active === "isolated" ? " (both paths silent; lunlink does not fence)" : ""}${dataOnNote(s)}`,
    `  primary  ${pathLine(s.paths.primary)}`,
    `  storage  ${s.storage.state === "up" ? `${pathLine(s.paths.storage)}${s.paths.storage.state === "up" ? "" : " (local volumes fine: the mirror or the peer)"}` : `${s.storage.state}  ${storageLine(s.storage)}`}`,
    `  failovers ${s.failovers}, failbacks ${s.failbacks}, self pauses ${s.selfPauses}, control pending ${s.controlPending}`,
    `  sent primary ${s.counters.sent.primary} storage ${s.counters.sent.storage}; received primary ${s.counters.received.primary} storage ${s.counters.received.storage}; duplicates dropped ${s.counters.dataDuplicates}`,
    `  ring head ${s.ring.headSeq}, peer ack ${s.ring.peerAckSeq ?? "none"}, receive lag ${s.ring.receiveLagRecords} records, writer queue ${s.ring.writerQueuedBytes} B, writer drops ${s.ring.writerCounters.framesDropped}`,
    `  peer ring: lost ${r.lost}, damaged ${r.damaged}, torn seen ${r.tornSeen}, overruns ${r.overruns}; refused: auth ${r.authFailures}, downgrade ${r.downgrades}, replay ${r.replays}`,
    `  tun ${s.tun.name}: ${s.tun.packetsIn} packets in, ${s.tun.packetsOut} out`,
  ];
  const timeline = s.timeline ?? [];
  if (timeline.length > 0) {
    const shown = timeline.slice(-TIMELINE_SHOWN);
    lines.push(`  timeline (last ${shown.length} of ${timeline.length}${shown.length < timeline.length ? "; --json has all" : ""}, oldest first):`);
    for (const e of shown) lines.push(`    ${clock(e.at)}  ${`${e.subject}`.padEnd(14)} ${`${e.from} -> ${e.to}`.padEnd(20)} ${e.reason}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Where data goes when that is not simply the active path: a suspect primary, a failback drain. */
function dataOnNote(s: NodeStatus): string {
  if (s.dataOn === s.active || s.active === "isolated") return "";
  if (s.dataOn === "both") return "; data on both paths (primary suspect)";
  return `; data on ${s.dataOn} (failback: the ring drains first)`;
}

function pathLine(p: LinkStatus["paths"]["primary"]): string {
  return `${p.state.padEnd(8)} last heard ${p.lastHeardAgoMs ?? "never"} ms ago${p.state === "up" ? "" : ` (${p.reason})`}`;
}

/** Local time of day with ms, and the date when it is not today: what an operator matches against logs. */
function clock(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  return d.toDateString() === new Date().toDateString() ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** Why the local storage path is not up, e.g. "send volume stalled 12.4 s (2 requests parked)". */
export function storageLine(report: StorageReport): string {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const parts: string[] = [];
  for (const v of [report.send, report.receive]) {
    const name = `${v.component} volume`;
    if (v.state === "stalled") parts.push(`${name} stalled ${seconds(v.stalledForMs ?? v.forMs)} (${v.parked} request${v.parked === 1 ? "" : "s"} parked)`);
    else if (v.state === "retrying") parts.push(`${name} ${v.fault?.code.replace("ERR_LUNLINK_", "") ?? "fault"} ${seconds(v.forMs)} ago, attempt ${v.attempts}${v.nextAttemptInMs === null ? "" : `, next in ${seconds(v.nextAttemptInMs)}`}`);
    else if (v.state === "failed") parts.push(`${name} failed: ${v.fault?.message ?? "unknown"} (configuration fault: not retried; fix it and restart)`);
    else if (v.state !== "up") parts.push(`${name} ${v.state}`);
  }
  return parts.join("; ");
}

export interface WatchTarget {
  write(text: string): unknown;
  /** A terminal: frames replace each other in place. */
  isTTY?: boolean;
  /** Terminal height: a frame is cut to fit (as watch does), so the screen never scrolls. */
  rows?: number;
}

export interface WatchOptions {
  intervalS: number;
  /** Stop after this many frames (scripts, tests); default: until the signal. */
  count?: number;
  /** The header's title, e.g. the command line. */
  title: string;
  signal: AbortSignal;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => Date;
}

const HOME = "\x1b[H";
const CLEAR_LINE = "\x1b[K";
const CLEAR_BELOW = "\x1b[J";
const CLEAR_SCREEN = "\x1b[2J";
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";

/**
 * Renders `frame()` every intervalS until the signal aborts or `count` frames were shown. A frame
 * that fails (the node went down) shows its error and the watch goes on, as watch does. Returns
 * whether the last frame succeeded.
 */
export async function watch(frame: () => Promise<string>, target: WatchTarget, options: WatchOptions): Promise<boolean> {
  if (!(options.intervalS >= WATCH_INTERVAL_MIN_S && options.intervalS <= WATCH_INTERVAL_MAX_S)) throw new Error(`assertion failed: watch interval ${options.intervalS} s`);
  const now = options.now ?? (() => new Date());
  const tty = target.isTTY === true;
  let ok = true;
  if (tty) target.write(`${HIDE_CURSOR}${CLEAR_SCREEN}`);
  try {
    for (let n = 0; options.count === undefined || n < options.count; n++) {
      if (options.signal.aborted) break;
      let body: string;
      try {
        body = await frame();
        ok = true;
      } catch (error) {
        const code = error instanceof Error ? (error as Error & { code?: string }).code : undefined;
        body = `lunlink: ${code === undefined ? "" : `${code}: `}${error instanceof Error ? error.message : String(error)}\n`;
        ok = false;
      }
      const header = `Every ${options.intervalS.toFixed(1)}s: ${options.title}`;
      const stamp = now().toString().replace(/ \(.*\)$/, "");
      if (tty) {
        let lines = [`${header}${" ".repeat(Math.max(2, 80 - header.length - stamp.length))}${stamp}`, "", ...body.replace(/\n$/, "").split("\n")];
        if (target.rows !== undefined && target.rows > 1) lines = lines.slice(0, target.rows - 1);
        target.write(`${HOME}${lines.map((l) => `${l}${CLEAR_LINE}`).join("\n")}\n${CLEAR_BELOW}`);
      } else {
        target.write(`${n === 0 ? "" : "\n"}${header}  ${stamp}\n${body}`);
      }
      if (options.count !== undefined && n + 1 >= options.count) break;
      await options.sleep(options.intervalS * 1000, options.signal).catch(() => undefined);
    }
  } finally {
    if (tty) target.write(SHOW_CURSOR);
  }
  return ok;
}
