// Real-time scheduling for `lunlink up`, as corosync does for its heartbeats: SCHED_RR at the lowest
// real-time priority for every thread of the process (threads started later inherit it), with
// reset-on-fork so commands the node starts (mirror hooks, `ip`) run at normal priority. Why
// (bench/pressure.ts): with a CPU hog at normal priority in the node's scheduling group, the kernel
// threads the node's storage I/O completes through (loop, dio completion, ksoftirqd) waited up to
// 3.4 s for a CPU and storage heartbeats went silent for up to 9 s; with the node real-time, under
// 0.3 s. Best effort: without CAP_SYS_NICE or chrt(1) the node logs a warning and runs on.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** The lowest SCHED_RR priority: above every normal task, below the kernel's own real-time threads. */
export const REALTIME_PRIORITY = 1;

export type SchedulingOutcome = { policy: "rr"; priority: number } | { policy: "other"; reason: string };

/**
 * Moves this process to SCHED_RR (all threads, reset-on-fork). `LUNLINK_SCHEDULING=other` in the
 * environment keeps normal scheduling (for hosts where a real-time data path is not wanted).
 */
export async function raiseScheduling(pid = process.pid): Promise<SchedulingOutcome> {
  if (process.env.LUNLINK_SCHEDULING === "other") return { policy: "other", reason: "LUNLINK_SCHEDULING=other" };
  try {
    await execFileAsync("chrt", ["--all-tasks", "--reset-on-fork", "--rr", "--pid", String(REALTIME_PRIORITY), String(pid)], { timeout: 5000 });
    return { policy: "rr", priority: REALTIME_PRIORITY };
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    return { policy: "other", reason: `chrt failed: ${(e.stderr ?? "").trim() || e.message}` };
  }
}
