// A block device whose faults the test controls, as DESIGN.md section 5 describes for a kernel
// without device-mapper or the nbd module: nbdkit serves a RAM disk (optionally behind its error
// filter), nbdfuse exposes it as a file on a FUSE mount, and a loop device with --direct-io=on sits
// on that file. SIGSTOP on nbdkit and nbdfuse stalls I/O without an error; while `errorFile` exists
// every request fails with EIO. Teardown resumes, detaches, unmounts and waits for both to exit.
// stop() returns only once every thread of both is stopped: kill() returns while a group stop is
// still spreading (measured under load: 17-22 threads still running, up to 26 ms), and a request
// made in that window is served, so a "stalled" read completed with its data (seen with io_uring,
// which submits in the same event-loop turn; the thread engine's thread wake-up hid the window).
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { spawn } from "node:child_process";
import type { ExecutionContext } from "ava";

import { run, sleep } from "./exec.ts";
import { attachLoop } from "./loop.ts";
import { scratchDir } from "./scratch.ts";

export interface FaultDevice {
  /** The loop device to open. */
  device: string;
  /** Stall: SIGSTOP nbdfuse and nbdkit; I/O blocks without an error. */
  stop(): void;
  /** Resume after stop(). */
  resume(): void;
  /** Make every request fail with EIO (true) or succeed again (false). */
  setFailing(failing: boolean): Promise<void>;
}

/** How long stop() waits for every thread of nbdfuse and nbdkit to be stopped. */
const STOP_SETTLE_MS = 5000;
const STOP_POLL_MS = 0.2;
const settleWait = new Int32Array(new SharedArrayBuffer(4));

/** Threads of `pids` not yet in the stopped state ("T", or "t" when traced). */
function runningThreads(pids: readonly number[]): number {
  let running = 0;
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone
    }
    for (const tid of tids) {
      try {
        // State is the field after the parenthesised command name.
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
        if (state !== "T" && state !== "t") running++;
      } catch {
        // thread exited
      }
    }
  }
  return running;
}

export async function faultDevice(t: ExecutionContext, sizeMiB = 64): Promise<FaultDevice> {
  const dir = await scratchDir(t);
  const mountpoint = join(dir, "mnt");
  const pidFile = join(dir, "nbdfuse.pid");
  const errorFile = join(dir, "fail-now");
  await mkdir(mountpoint);
  const child = spawn(
    "nbdfuse",
    ["-P", pidFile, join(mountpoint, "disk"), "--command", "nbdkit", "-s", "--filter=error", "memory", `${sizeMiB}M`,
      "error=EIO", "error-rate=100%", `error-file=${errorFile}`],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  let pids: number[] = [];
  const signal = (sig: NodeJS.Signals): void => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  t.teardown(async () => {
    signal("SIGCONT");
    await run("fusermount3", ["-u", mountpoint]).catch(() => run("umount", ["-l", mountpoint]).catch(() => undefined));
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(5000)]);
    await rm(errorFile, { force: true });
  });

  for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(50);
  if (!existsSync(pidFile)) throw new Error(`nbdfuse did not start: ${stderr}`);
  const fusePid = Number((await readFile(pidFile, "utf8")).trim());
  const children = (await run("pgrep", ["-P", String(fusePid)]).catch(() => "")).trim().split("\n").filter(Boolean).map(Number);
  pids = [fusePid, ...children];
  if (children.length === 0) throw new Error("nbdkit (child of nbdfuse) not found");

  const device = await attachLoop(t, join(mountpoint, "disk"), { directIo: true });
  // Teardowns run last-in first-out: resume the server before the loop device is detached.
  t.teardown(() => signal("SIGCONT"));
  return {
    device,
    stop: () => {
      signal("SIGSTOP");
      // Synchronous on purpose: callers issue the request that must stall right after stop().
      const deadlineMs = performance.now() + STOP_SETTLE_MS;
      while (runningThreads(pids) > 0) {
        if (performance.now() > deadlineMs) throw new Error(`nbdfuse/nbdkit threads still running ${STOP_SETTLE_MS} ms after SIGSTOP`);
        Atomics.wait(settleWait, 0, 0, STOP_POLL_MS); // sleep, leaving the CPU to the threads that must stop
      }
    },
    resume: () => signal("SIGCONT"),
    setFailing: async (failing) => (failing ? writeFile(errorFile, "") : rm(errorFile, { force: true })),
  };
}
