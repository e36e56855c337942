// The follower's watch on a real ring (a file volume): the options follow() builds, maxSleepUs
// included, reach the addon through RingReader.watch, so an idle wait backs off natively (few
// re-reads, counted as read syscalls of this process) and still sees the next record.
import test from "ava";
import { readFile } from "node:fs/promises";

import type { WatchOptions } from "../../lib/io/volume.ts";
import { Volume } from "../../lib/index.ts";
import { WATCH_COMPARE_BYTES } from "../../lib/poll/follower.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { FrameType } from "../../lib/format/layout.ts";
import { sparseFile } from "../helpers/scratch.ts";

/** read(2)-family syscalls this process made so far (/proc/self/io syscr: pread64 included). */
async function readSyscalls(): Promise<number> {
  const io = await readFile("/proc/self/io", "utf8");
  return Number(/^syscr: (\d+)$/m.exec(io)![1]);
}

test.serial("RingReader.watch hands maxSleepUs to the addon: an idle 400 ms wait makes few re-reads, and the next record ends it", async (t) => {
  const path = await sparseFile(t, 8 * 1024 * 1024);
  const send = await Volume.open(path, { dsync: true });
  t.teardown(() => send.close());
  await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 256n, force: true });
  const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0 });
  t.teardown(() => writer.close());
  const receive = await Volume.open(path, { readOnly: true });
  t.teardown(() => receive.close());
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
  t.is(await reader.poll(() => {}), "waiting");
  // 50 us for 200 us, 400 us for 1.6 ms, 3.2 ms for 12.8 ms, then 20 ms: about 30 re-reads in 400 ms
  // (a constant 50 us pace: thousands). CPU pressure only makes fewer.
  const idle: WatchOptions = { compareBytes: WATCH_COMPARE_BYTES, sleepUs: 50, maxSleepUs: 20_000, timeoutMs: 400 };
  const before = await readSyscalls();
  t.false(await reader.watch(idle));
  const reads = (await readSyscalls()) - before;
  t.true(reads <= 100, `${reads} read syscalls during a 400 ms idle wait (about 30 expected)`);
  const watching = reader.watch({ ...idle, timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  await writer.append(FrameType.Data, new TextEncoder().encode("after the back-off"));
  t.true(await watching, "backed off to 20 ms, the watch sees the record");
  const frames: string[] = [];
  t.is(await reader.poll((_s, _type, _f, bytes, offset, length) => frames.push(new TextDecoder().decode(bytes.subarray(offset, offset + length))), true), "delivered");
  t.deepEqual(frames, ["after the back-off"]);
});
