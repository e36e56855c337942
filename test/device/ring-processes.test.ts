// Two processes, two loop devices: one appends, one tails; the tailer's acks come back through the
// second volume's status block, and the ring laps many times, so flow control is exercised for real.
import test from "ava";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createInterface } from "node:readline";

import { Volume } from "../../lib/index.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
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
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const lines = createInterface({ input: child.stdout });
  const messages: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  lines.on("line", (line) => {
    messages.push(JSON.parse(line) as Record<string, unknown>);
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? -1)));
  const next = async (): Promise<Record<string, unknown>> => {
    while (messages.length === 0) {
      const code = await Promise.race([new Promise<null>((r) => waiters.push(() => r(null))), exited]);
      if (code !== null && messages.length === 0) throw new Error(`${args[0]} exited ${code}: ${stderr}`);
    }
    return messages.shift()!;
  };
  return { next, exited, stderr: () => stderr };
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

  const expected = createHash("sha256");
  for (let i = 0; i < FRAMES; i++) {
    const length = 16 + ((i * 7919) % 3000);
    const p = new Uint8Array(length);
    new DataView(p.buffer).setUint32(0, i, true);
    for (let k = 4; k < length; k++) p[k] = (i * 31 + k) & 0xff;
    expected.update(p);
  }
  t.is(read.count, FRAMES);
  t.true(read.inOrder);
  t.is(read.corrupt, 0);
  t.is(read.hash, expected.digest("hex"));
  t.is(read.lost, 0);
  t.is(read.overruns, 0);
  t.is(written.framesDropped, 0);
  t.is(written.overwrittenUnacked, 0);
  const laps = written.bytesWritten / (Number(RING_BLOCKS) * 4096);
  t.true(laps >= 10, `the ring lapped ${laps.toFixed(1)} times`);
  t.log(`records ${written.records}, laps ${laps.toFixed(1)}, writer waited for acks ${written.ackWaits} times`);
});
