// `lunlink up` start-up scheduling (lib/node/scheduling.ts), applied to a child process (never to the
// test runner): every thread SCHED_RR at the lowest real-time priority, threads started afterwards
// too, or normal scheduling kept when the environment opts out or the caller may not raise it.
import { spawn, type ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";

import test from "ava";

import { REALTIME_PRIORITY, raiseScheduling } from "../../lib/node/scheduling.ts";

/** A multi-threaded child (node runs several threads) that lives until killed, at most 30 s; a line on stdin starts one more thread. */
const CHILD = `
const { Worker } = require("node:worker_threads");
console.log("ready");
process.stdin.once("data", () => new Worker("setTimeout(() => {}, 30000)", { eval: true }).once("online", () => console.log("started")));
setTimeout(() => process.exit(0), 30000);`;

async function child(): Promise<ChildProcess> {
  const c = spawn(process.execPath, ["-e", CHILD], { stdio: ["pipe", "pipe", "ignore"] });
  await new Promise((resolve) => c.stdout!.once("data", resolve)); // its event loop (and threads) run
  return c;
}

/** Each thread's [policy, rt_priority] from /proc/PID/task/TID/stat (fields 41 and 40). */
async function threadPolicies(pid: number): Promise<[number, number][]> {
  const out: [number, number][] = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from 3 (state) on
    out.push([Number(fields[41 - 3]), Number(fields[40 - 3])]);
  }
  return out;
}

const SCHED_OTHER = 0;
const SCHED_RR = 2;

test.serial("raiseScheduling moves every thread of the process to SCHED_RR 1, and the threads it starts later (root only)", async (t) => {
  if (process.getuid?.() !== 0) return t.pass("needs CAP_SYS_NICE: skipped as a non-root user");
  const c = await child();
  try {
    t.deepEqual(await raiseScheduling("realtime", c.pid!), { policy: "rr", priority: REALTIME_PRIORITY });
    const threads = await threadPolicies(c.pid!);
    t.true(threads.length > 1, `a multi-threaded child (${threads.length} threads)`);
    t.deepEqual(threads, threads.map(() => [SCHED_RR, REALTIME_PRIORITY]));
    // Like the addon's I/O threads, started on demand after start-up: they must not fall back to normal.
    c.stdin!.write("start a thread\n");
    await new Promise((resolve) => c.stdout!.once("data", resolve));
    const later = await threadPolicies(c.pid!);
    t.true(later.length > threads.length, `one more thread (${later.length})`);
    t.deepEqual(later, later.map(() => [SCHED_RR, REALTIME_PRIORITY]));
  } finally {
    c.kill("SIGKILL");
  }
});

test.serial("scheduling \"normal\" in the config keeps normal scheduling", async (t) => {
  const c = await child();
  try {
    t.deepEqual(await raiseScheduling("normal", c.pid!), { policy: "other", reason: 'scheduling "normal" in the config' });
    t.true((await threadPolicies(c.pid!)).every(([policy]) => policy === SCHED_OTHER));
  } finally {
    c.kill("SIGKILL");
  }
});

test.serial("a process that is gone: normal scheduling, with chrt's reason", async (t) => {
  const c = await child();
  c.kill("SIGKILL");
  await new Promise((resolve) => c.once("exit", resolve));
  const outcome = await raiseScheduling("realtime", c.pid!);
  t.is(outcome.policy, "other");
  t.regex(outcome.policy === "other" ? outcome.reason : "", /chrt failed/);
});
