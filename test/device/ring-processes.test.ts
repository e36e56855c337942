// Two processes, two loop devices: one appends, one tails; the tailer's acks come back through the
// second volume's status block, and the ring laps many times, so flow control is exercised for real.
import test from "ava";
import { spawn } from "node:child_process";

import { Volume } from "../../lib/index.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { jsonLines } from "../helpers/json-lines.ts";
import { expectedHash } from "../helpers/ring-payloads.ts";
import { attachLoop } from "../helpers/loop.ts";
import { sparseFile } from "../helpers/scratch.ts";

const PEER = new URL("../helpers/ring-peer.ts", import.meta.url).pathname;
const FRAMES = 6000;
const RING_BLOCKS = 128n;

function start(t: Parameters<typeof sparseFile>[0], args: string[]) {
  const child = spawn(process.execPath, ["--import=tsx", PEER, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return jsonLines(child, args[0]!);
}

test("every frame exactly once and in order while the ring laps 10+ times, acks through a second volume", async (t) => {
  const devices: string[] = [];
  for (const name of ["a.img", "b.img"]) devices.push(await attachLoop(t, await sparseFile(t, 8 * 1024 * 1024, name), { directIo: true }));
  const [a, b] = devices as [string, string];
  const pair = "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3";
  for (const [path, writerNode, peerNode] of [[a, 1, 2], [b, 2, 1]] as const) {
    const v = await Volume.open(path, { dsync: true });
    await formatVolume(v, { writerNode, peerNode, pairUuid: pair, ringBlocks: RING_BLOCKS });
    await v.close();
  }
  const tailer = start(t, ["tailer", a, b, String(FRAMES)]);
  t.deepEqual(await tailer.next(), { ready: true });
  const appender = start(t, ["appender", a, b, String(FRAMES)]);
  const written = (await appender.next()) as { bytesWritten: number; records: number; ackWaits: number; overwrittenUnacked: number; framesDropped: number };
  const read = (await tailer.next()) as { count: number; inOrder: boolean; corrupt: number; hash: string; lost: number; overruns: number };
  t.is(await appender.exited, 0, appender.stderr());
  t.is(await tailer.exited, 0, tailer.stderr());

  t.is(read.count, FRAMES);
  t.true(read.inOrder);
  t.is(read.corrupt, 0);
  t.is(read.hash, expectedHash(FRAMES));
  t.is(read.lost, 0);
  t.is(read.overruns, 0);
  t.is(written.framesDropped, 0);
  t.is(written.overwrittenUnacked, 0);
  const laps = written.bytesWritten / (Number(RING_BLOCKS) * 4096);
  t.true(laps >= 10, `the ring lapped ${laps.toFixed(1)} times`);
  t.log(`records ${written.records}, laps ${laps.toFixed(1)}, writer waited for acks ${written.ackWaits} times`);
});
