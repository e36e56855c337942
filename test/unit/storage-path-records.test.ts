// StoragePath's send ring under a burst (a TCP stream's window arriving while a record write is in
// flight): the frames that gather meanwhile go out as records of up to LINK_MAX_RECORD_BLOCKS (1 MiB),
// not the RingWriter's default 65 blocks, since each record costs one O_DSYNC flush. No frame is
// dropped and none is split across the bound.
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { LINK_MAX_RECORD_BLOCKS, StoragePath } from "../../lib/link/storage-path.ts";
import { pairFiles } from "../helpers/pair-files.ts";

const MiB = 1024 * 1024;
/** The RingWriter's own default record bound (lib/ring/writer-options.ts), which the link raises. */
const WRITER_DEFAULT_RECORD_BLOCKS = 65;
/** A TUN MTU's worth of payload per frame, as a TCP stream through lunlink0 sends. */
const FRAME_BYTES = 1400;
/** Frames in the burst: 2 MiB, two full link records' worth. */
const BURST_FRAMES = Math.ceil((2 * MiB) / FRAME_BYTES);

test("a burst appended while a record write is in flight goes out in records above the writer's default 65 blocks, at most LINK_MAX_RECORD_BLOCKS", async (t) => {
  const { send, receive } = await pairFiles(t, { fileBytes: 8 * MiB, ringBlocks: 1024n });
  const path = await StoragePath.open({ nodeId: 1, peerNodeId: 2, send, receive, onFrame: () => undefined });
  t.teardown(() => path.close());
  const writer = path.send.writer;
  if (writer === undefined) throw new Error("the send ring's writer is not up");
  const recordBlocks: number[] = [];
  writer.on("flush", (_seq, blocks) => recordBlocks.push(blocks));

  // One event-loop turn: the first record is sealed and its write starts; the rest gathers behind it.
  const frame = new Uint8Array(FRAME_BYTES).fill(7);
  const results = new Map<string, number>();
  for (let i = 0; i < BURST_FRAMES; i++) {
    const r = path.append(0, FrameType.Data, frame);
    results.set(r, (results.get(r) ?? 0) + 1);
  }
  t.deepEqual([...results], [["queued", BURST_FRAMES]], "every frame of the burst is taken");

  await writer.flush();
  t.is(path.queuedBytes, 0, "the burst was written");
  const largest = Math.max(...recordBlocks);
  t.log(`records written: ${recordBlocks.length}, blocks each: ${recordBlocks.join(" ")}`);
  t.true(largest > WRITER_DEFAULT_RECORD_BLOCKS, `a record above ${WRITER_DEFAULT_RECORD_BLOCKS} blocks (largest ${largest})`);
  t.true(largest <= LINK_MAX_RECORD_BLOCKS, `no record above ${LINK_MAX_RECORD_BLOCKS} blocks (largest ${largest})`);
  t.is(path.writerCounters.framesDropped, 0);
});
