// Two processes configured with the same node id on one cluster volume (a file here, O_DIRECT):
// exactly one keeps the ring. A second writer that watches the ring first (liveCheckMs) sees the live
// heartbeat and refuses to start; one that does not (two opening at once) takes a new epoch, and the
// first writer's owner check then stops it. Either way ERR_LUNLINK_NOT_OWNER names the duplicate id.
import { spawn } from "node:child_process";

import test from "ava";

import { ErrorCode, Volume } from "../../lib/index.ts";
import { formatCluster } from "../../lib/ring/cluster.ts";
import { jsonLines, type JsonLines } from "../helpers/json-lines.ts";
import { sparseFile } from "../helpers/scratch.ts";

const WRITER = new URL("../helpers/cluster-writer.ts", import.meta.url).pathname;

function start(t: import("ava").ExecutionContext, path: string, node: number, liveCheckMs: number, label: string): JsonLines & { stop: () => void } {
  const child = spawn(process.execPath, ["--import=tsx", WRITER, path, String(node), String(liveCheckMs)], { stdio: ["pipe", "pipe", "pipe"] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return { ...jsonLines(child, label), stop: () => child.stdin.end() };
}

/**
 * A hang guard for each line, not a timing: each child is a Node process that compiles the writer and
 * lib through tsx before its first line (seconds of CPU). jsonLines' 25 s default ran out for both
 * children of the first two tests in a full unit run under stress-ng (load ~30 on 2 cores), with
 * nothing on their stderr: they were still starting.
 */
const LINE_GUARD_MS = 120_000;

/** The next line is this event (the whole line shown if not: a refusal says why). */
async function expectEvent(t: import("ava").ExecutionContext, lines: JsonLines, event: string, what?: string): Promise<Record<string, unknown>> {
  const line = await lines.next(LINE_GUARD_MS);
  t.like(line, { event }, `${what ?? event}: ${JSON.stringify(line)}`);
  return line;
}

async function clusterFile(t: import("ava").ExecutionContext): Promise<string> {
  const path = await sparseFile(t, 3 * 64 * 4096 + 2 * 4096, "cluster.img");
  const volume = await Volume.open(path, { dsync: true });
  await formatCluster(volume, { nodes: [1, 2, 3] });
  await volume.close();
  return path;
}

test("same id, second watches first: the second refuses to start (live heartbeat); the first writes on", async (t) => {
  const path = await clusterFile(t);
  const first = start(t, path, 2, 0, "first");
  await expectEvent(t, first, "open");
  // The live check's window is a parameter here, not the subject: the first writer's status moves
  // every 20 ms, but a child process starved of CPU (load ~41 on 2 cores) went 500 ms without a status
  // write, the second opened a new epoch and the first's owner check stopped it. 5 s holds under load.
  const second = start(t, path, 2, 5000, "second");
  const refused = await expectEvent(t, second, "refused");
  t.is(refused.code, ErrorCode.NotOwner);
  t.regex(String(refused.message), /node id 2 is live on this ring.*two nodes configured with the same id/);
  first.stop();
  await expectEvent(t, first, "closed", "the first writer never stopped");
});

test("same id, both open at once (no live check): the older writer's owner check stops it; the newer keeps the ring", async (t) => {
  const path = await clusterFile(t);
  const first = start(t, path, 2, 0, "first");
  await expectEvent(t, first, "open");
  const second = start(t, path, 2, 0, "second");
  await expectEvent(t, second, "open");
  const stopped = await expectEvent(t, first, "stopped");
  t.is(stopped.code, ErrorCode.NotOwner);
  t.regex(String(stopped.message), /another writer with node id 2 opened this ring.*two nodes configured with the same id/);
  second.stop();
  await expectEvent(t, second, "closed", "the newer writer kept the ring");
});

test("another node's id on the same volume is no conflict: regions are separate", async (t) => {
  const path = await clusterFile(t);
  const a = start(t, path, 1, 200, "node1");
  const b = start(t, path, 3, 200, "node3");
  await expectEvent(t, a, "open");
  await expectEvent(t, b, "open");
  a.stop();
  b.stop();
  await expectEvent(t, a, "closed");
  await expectEvent(t, b, "closed");
});
