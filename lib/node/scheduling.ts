// Real-time scheduling for `lunlink up`, as corosync does for its heartbeats: SCHED_RR at the lowest
// real-time priority for every thread of the process. Threads started later (the addon's I/O and
// watch threads start on demand) inherit it, so no reset-on-fork: that flag applies to threads too
// and left them at normal priority (`lunlink up` starts no child process). Why (bench/pressure.ts):
// with a CPU hog at normal priority in the node's scheduling group, the kernel threads the node's
// storage I/O completes through (loop, dio completion, ksoftirqd) waited up to 3.4 s for a CPU and
// storage heartbeats went silent for up to 9 s. Best effort: without CAP_SYS_NICE or chrt(1) the
// node logs a warning and runs on.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** The lowest SCHED_RR priority: above every normal task, below the kernel's own real-time threads. */
export const REALTIME_PRIORITY = 1;

export type SchedulingOutcome = { policy: "rr"; priority: number } | { policy: "other"; reason: string };

/** The node config's `scheduling`: "realtime" (default) or "normal" (hosts where a real-time data path is not wanted). */
export type SchedulingPolicy = "realtime" | "normal";

/** Moves this process to SCHED_RR (all threads, and the threads they start), unless `wanted` is "normal". */
export async function raiseScheduling(wanted: SchedulingPolicy, pid = process.pid): Promise<SchedulingOutcome> {
  if (wanted === "normal") return { policy: "other", reason: "scheduling \"normal\" in the config" };
  try {
    await execFileAsync("chrt", ["--all-tasks", "--rr", "--pid", String(REALTIME_PRIORITY), String(pid)], { timeout: 5000 });
    return { policy: "rr", priority: REALTIME_PRIORITY };
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    return { policy: "other", reason: `chrt failed: ${(e.stderr ?? "").trim() || e.message}` };
  }
}
