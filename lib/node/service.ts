// systemd integration of `lunlink up` (Type=notify): a sans-IO core that, given the time and the link's
// path states, decides the notifications (READY=1 once both paths have a verdict, STATUS= on every
// change of the active path or a path state, WATCHDOG=1 every half WATCHDOG_USEC, STOPPING=1 once), and
// a thin shell that ticks it and sends each tick's lines as one datagram (lib/io/notify.ts). Nothing
// runs unless $NOTIFY_SOCKET is set. A failed send is logged (once per error code), never fatal.
import type pino from "pino";

import type { Link } from "../link/link.ts";
import type { LinkTimers, PathState } from "../link/paths.ts";
import { notifySocketFrom, sdNotify } from "../io/notify.ts";

export interface ServiceView {
  active: string;
  primary: PathState;
  storage: PathState;
}

/** The watchdog ping period (half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises), or undefined when off or meant for another process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env["WATCHDOG_USEC"];
  if (usec === undefined || !/^[1-9][0-9]{0,15}$/.test(usec)) return undefined;
  const forPid = env["WATCHDOG_PID"];
  if (forPid !== undefined && forPid !== "" && forPid !== String(pid)) return undefined;
  return Number(usec) / 1000 / 2;
}

/**
 * The notification state machine. A path has a verdict once it is not "down" (heartbeats were heard)
 * or its downMs has passed since start (down is then the answer, not the initial value): READY=1 means
 * `lunlink status` now tells the truth about both paths.
 */
export class ServiceState {
  private readonly startMs: number;
  private readonly timers: Pick<LinkTimers, "primary" | "storage">;
  private readonly watchdogMs: number | undefined;
  private ready = false;
  private stopped = false;
  private lastStatus = "";
  private lastWatchdogMs = Number.NEGATIVE_INFINITY;

  constructor(startMs: number, timers: Pick<LinkTimers, "primary" | "storage">, watchdogMs: number | undefined) {
    this.startMs = startMs;
    this.timers = timers;
    this.watchdogMs = watchdogMs;
  }

  /** The lines to send now (empty: nothing to say). */
  tick(nowMs: number, view: ServiceView): string[] {
    if (this.stopped) return [];
    const lines: string[] = [];
    const elapsedMs = nowMs - this.startMs;
    if (!this.ready && (view.primary !== "down" || elapsedMs >= this.timers.primary.downMs) && (view.storage !== "down" || elapsedMs >= this.timers.storage.downMs)) {
      this.ready = true;
      lines.push("READY=1");
    }
    if (this.ready) {
      const status = `STATUS=active ${view.active} (primary ${view.primary}, storage ${view.storage})`;
      if (status !== this.lastStatus) {
        this.lastStatus = status;
        lines.push(status);
      }
    }
    if (this.watchdogMs !== undefined && nowMs - this.lastWatchdogMs >= this.watchdogMs) {
      this.lastWatchdogMs = nowMs;
      lines.push("WATCHDOG=1");
    }
    return lines;
  }

  /** Once: the node is going down (`why`: SIGTERM, SIGINT, down, tun-error). */
  stopping(why: string): string[] {
    if (this.stopped) return [];
    this.stopped = true;
    return ["STOPPING=1", `STATUS=stopping (${why})`];
  }

  /** How often the shell should tick: a tenth of a second, or often enough for the watchdog. */
  get tickMs(): number {
    return Math.max(MIN_TICK_MS, Math.min(MAX_TICK_MS, (this.watchdogMs ?? MAX_TICK_MS) / 2));
  }
}

/** Tick bounds: prompt READY/STATUS without waking an idle node more than 10 times a second. */
const MAX_TICK_MS = 100;
const MIN_TICK_MS = 5;
/** A send error is logged once per code, at most this many codes (the rest counted silently). */
const MAX_LOGGED_ERRORS = 8;

export interface ServiceNotifier {
  /** Sends STOPPING=1 (once) and stops ticking. */
  stopping(why: string): void;
  close(): void;
}

/** What the notifier ticks on besides its timer: a node that emits "transition" (a pair's Link, a ClusterNode). */
export interface TransitionSource {
  on(event: "transition", listener: () => void): unknown;
  off(event: "transition", listener: () => void): unknown;
}

/** Starts notifying systemd if $NOTIFY_SOCKET is set; undefined otherwise. Call once the node serves. */
export function startServiceNotify(link: Link, log: pino.Logger, env: NodeJS.ProcessEnv = process.env): ServiceNotifier | undefined {
  const paths = link.core.paths;
  return startNotifier(link.options.timers, () => ({ active: paths.active, primary: paths.primary.state, storage: paths.storage.state }), link, log, env);
}

/**
 * The notifier shell for any node (pair or cluster): ticks ServiceState with `view()` on its timer and
 * on every transition of `source`, and sends each tick's lines. Undefined when $NOTIFY_SOCKET is unset.
 */
export function startNotifier(timers: LinkTimers, view: () => ServiceView, source: TransitionSource, log: pino.Logger, env: NodeJS.ProcessEnv): ServiceNotifier | undefined {
  const socket = notifySocketFrom(env);
  if (socket === undefined) return undefined;
  const state = new ServiceState(performance.now(), timers, watchdogIntervalMs(env, process.pid));
  const logged = new Set<string>();
  const send = (lines: string[]) => {
    if (lines.length === 0) return;
    try {
      sdNotify(socket, lines.join("\n"));
    } catch (error) {
      const code = (error as { code?: string }).code ?? "unknown";
      if (!logged.has(code) && logged.size < MAX_LOGGED_ERRORS) {
        logged.add(code);
        log.warn({ event: "notify-error", code, message: (error as Error).message }, `cannot notify systemd: ${(error as Error).message}`);
      }
    }
  };
  const tick = () => send(state.tick(performance.now(), view()));
  const timer = setInterval(tick, state.tickMs);
  timer.unref(); // the node's own lifetime decides when the process ends
  source.on("transition", tick);
  tick();
  log.info({ event: "notify", socket, tickMs: state.tickMs }, `notifying systemd on ${socket}`);
  const close = () => {
    clearInterval(timer);
    source.off("transition", tick);
  };
  return {
    stopping(why) {
      close();
      send(state.stopping(why));
    },
    close,
  };
}
