// RingWriter memory under a sustained flood: a sender that outruns the disk for 60 s (heartbeat/data
// frames dropped at a full 1 MiB queue, as a network drops) must not grow the process. The writer used
// to compact its overflow queue only when it drained completely, which under a flood never happens,
// so every frame ever queued stayed referenced (RSS grew by megabytes per second).
// Bounded: FLOOD_MS of wall time and FLOOD_MAX_ROUNDS rounds of FRAMES_PER_ROUND frames.
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { Volume } from "../../lib/index.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { sparseFile } from "../helpers/scratch.ts";

const FLOOD_MS = 60_000;
const WARM_UP_MS = 5_000;
const FLOOD_MAX_ROUNDS = 50_000_000;
const FRAMES_PER_ROUND = 256;
const FRAME_BYTES = 1024;
const QUEUE_LIMIT_BYTES = 1024 * 1024;
/** Generous: the writer's own buffers are a few MiB; the leak grew by hundreds of MiB in 60 s. */
const RSS_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024;

const MiB = 1024 * 1024;

test("a 60 s flood that outruns the disk keeps RSS bounded (queue at its limit, frames dropped)", async (t) => {
  t.timeout(FLOOD_MS + 60_000);
  const path = await sparseFile(t, 64 * MiB);
  const formatter = await Volume.open(path, { dsync: true });
  await formatVolume(formatter, { writerNode: 1, peerNode: 2, ringBlocks: 8192n });
  await formatter.close();
  const volume = await Volume.open(path, { dsync: true });
  t.teardown(() => volume.close());
  const writer = await RingWriter.open(volume, { nodeId: 1, queueLimitBytes: QUEUE_LIMIT_BYTES, fullQueue: "drop", maxDelayMs: 1 });
  // Distinct payload objects, as a TUN or socket hands over: the writer must copy, not keep them.
  const payload = new Uint8Array(FRAME_BYTES).fill(7);
  const start = performance.now();
  let warmRss: number | undefined;
  let maxQueuedBytes = 0;
  let rounds = 0;
  while (rounds < FLOOD_MAX_ROUNDS && performance.now() - start < FLOOD_MS) {
    for (let i = 0; i < FRAMES_PER_ROUND; i++) writer.tryAppend(i % 64 === 0 ? FrameType.Heartbeat : FrameType.Data, payload);
    maxQueuedBytes = Math.max(maxQueuedBytes, writer.queuedBytes);
    rounds++;
    if (warmRss === undefined && performance.now() - start >= WARM_UP_MS) warmRss = process.memoryUsage().rss;
    await new Promise((r) => setImmediate(r));
  }
  const endRss = process.memoryUsage().rss;
  const elapsedS = (performance.now() - start) / 1000;
  const counters = { ...writer.counters };
  await writer.close();
  const growth = endRss - (warmRss ?? endRss);
  t.log(
    `flood ${elapsedS.toFixed(1)} s: appended ${counters.framesAppended}, dropped ${counters.framesDropped}, records ${counters.records}, ` +
      `written ${(counters.bytesWritten / MiB).toFixed(0)} MiB, max queued ${(maxQueuedBytes / MiB).toFixed(2)} MiB, ` +
      `RSS after warm-up ${((warmRss ?? 0) / MiB).toFixed(1)} MiB, at end ${(endRss / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB ` +
      `(${(growth / MiB / Math.max(1, elapsedS - WARM_UP_MS / 1000)).toFixed(2)} MiB/s)`,
  );
  // The flood really outran the disk (otherwise this test proves nothing)...
  t.true(counters.framesDropped > 0, "the flood never filled the queue");
  t.true(counters.records > 0, "the writer wrote nothing");
  // ...and memory stayed bounded.
  t.true(warmRss !== undefined, "the flood ended before warm-up");
  t.true(growth < RSS_GROWTH_LIMIT_BYTES, `RSS grew by ${(growth / MiB).toFixed(1)} MiB after warm-up (limit ${RSS_GROWTH_LIMIT_BYTES / MiB} MiB)`);
});
