// One ring on a sparse file, as a pair's two ends see it: node 1's writer on a dsync send volume and
// node 2's reader at the head on a read-only open of the same file. Everything closes in teardown.
import type { ExecutionContext } from "ava";

import { Volume } from "../../lib/index.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { sparseFile } from "./scratch.ts";

const FILE_RING_BYTES = 8 * 1024 * 1024;
const FILE_RING_BLOCKS = 256n;

export async function fileRing(t: ExecutionContext): Promise<{ writer: RingWriter; reader: RingReader }> {
  const path = await sparseFile(t, FILE_RING_BYTES);
  const send = await Volume.open(path, { dsync: true });
  t.teardown(() => send.close());
  await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: FILE_RING_BLOCKS, force: true });
  const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0 });
  t.teardown(() => writer.close());
  const receive = await Volume.open(path, { readOnly: true });
  t.teardown(() => receive.close());
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
  return { writer, reader };
}
