// The mirror's status copy while a record write is in flight on the destination (issue #13 part 2):
// it is not held up by the write (before, every status copy first drained the write pump, so the
// follow loop stopped reading for a write or two every statusCopyMs), and the head it copies names
// only records whose writes completed, so a reader of the destination never learns of one that is
// not there yet. The destination's ring writes are held by a gate; status writes pass.
import test from "ava";

import { FrameType, RingWriter, Volume, formatVolume } from "../../lib/index.ts";
import { RING_START_BLOCK, STATUS_SLOT_BLOCKS } from "../../lib/format/layout.ts";
import { decodeStatus } from "../../lib/format/status.ts";
import { LocalMirror } from "../../lib/mirror/local.ts";
import type { BlockSink } from "../../lib/mirror/sink.ts";
import { mirrorFrame } from "../helpers/mirror-stream.ts";
import { sparseFile } from "../helpers/scratch.ts";
import { pollUntil } from "../helpers/until.ts";

const MiB = 1024 * 1024;
const B = 4096;
const RING_BLOCKS = 64;

/** Head (seq) of the newest valid status slot among the two slot blocks. */
function statusHead(slots: Uint8Array): bigint | undefined {
  let best: { generation: bigint; headSeq: bigint } | undefined;
  for (let i = 0; i < 2; i++) {
    const d = decodeStatus(slots.subarray(i * B, (i + 1) * B));
    if (d.ok && (best === undefined || d.status.generation > best.generation)) best = d.status;
  }
  return best?.headSeq;
}

test("a status copy goes out while a record write is held, naming only records already written; the head catches up once it completes", async (t) => {
  const a = await Volume.open(await sparseFile(t, 2 * MiB, "a.img"), { dsync: true });
  const b = await Volume.open(await sparseFile(t, 2 * MiB, "b.img"));
  const releases: (() => void)[] = [];
  let gateClosed = false;
  let heldWrites = 0;
  const statusHeads: (bigint | undefined)[] = [];
  const ringStart = RING_START_BLOCK * B;
  const gated: BlockSink = {
    write: async (offsetBytes, bytes) => {
      if (gateClosed && offsetBytes >= ringStart && offsetBytes < ringStart + RING_BLOCKS * B) {
        heldWrites++;
        await new Promise<void>((resolve) => releases.push(resolve));
      }
      if (offsetBytes === STATUS_SLOT_BLOCKS[0] * B && bytes.length === 2 * B) statusHeads.push(statusHead(bytes));
      await b.write(offsetBytes, bytes);
    },
    flush: () => b.flush(),
  };
  await formatVolume(a, { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS) });
  const mirror = await LocalMirror.open(a, b, { statusCopyMs: 2, pollMinUs: 50, pollMaxMs: 2 });
  Object.defineProperty(mirror, "sink", { get: () => gated }); // the destination's writes through the gate
  let writer: RingWriter | undefined;
  t.teardown(async () => {
    gateClosed = false;
    for (const r of releases.splice(0)) r();
    await mirror.stop().catch(() => undefined);
    await writer?.close().catch(() => undefined);
    await a.close();
    await b.close();
  });
  const copiedSeqs: bigint[] = [];
  mirror.on("record", (seq) => copiedSeqs.push(seq));
  const resynced = new Promise<void>((resolve) => mirror.once("resync", () => resolve()));
  mirror.start();
  await resynced;
  writer = await RingWriter.open(a, { nodeId: 1, maxDelayMs: 0 });
  await writer.append(FrameType.Control, mirrorFrame(0));
  await writer.flush();
  await pollUntil("record 0 copied", () => mirror.counters.records >= 1, 10_000, 5);
  const sourceSlots = a.alloc(2 * B);
  const sourceHead = async () => {
    await a.read(STATUS_SLOT_BLOCKS[0] * B, sourceSlots);
    return statusHead(sourceSlots) ?? 0n;
  };
  // The source's status names record 0 and the copy caught up with it: that head is on both. The
  // writer writes the record, then its status: the mirror may copy the record while the source's
  // status still names the head the writer opened with (record 0's seq), so wait for the head past it.
  const record0 = copiedSeqs[0]!;
  await pollUntil("the source's status past record 0, copied", async () => (await sourceHead()) > record0 && statusHeads.at(-1) === (await sourceHead()), 10_000, 5);
  const headBefore = await sourceHead();
  t.is(headBefore, record0 + 1n, "the source's head names record 0 and nothing after it");

  gateClosed = true;
  await writer.append(FrameType.Control, mirrorFrame(1));
  await writer.flush();
  await pollUntil("the next record's write held at the destination", () => heldWrites >= 1, 10_000, 5);
  const copiesWhileHeld = statusHeads.length;
  // The writer rewrites its status (generation, heartbeat) after the record and on its interval.
  await pollUntil("a status copy while the record write is held", () => statusHeads.length > copiesWhileHeld, 10_000, 5);
  for (const head of statusHeads.slice(copiesWhileHeld)) t.true(head !== undefined && head <= headBefore, `a status copied while record ${headBefore} was held names head ${head}`);

  gateClosed = false;
  for (const r of releases.splice(0)) r();
  await pollUntil("the copied head past the released record", () => (statusHeads.at(-1) ?? 0n) > headBefore, 10_000, 5);
  t.is(mirror.counters.records, writer.counters.records);
});
