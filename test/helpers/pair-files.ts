// A pair's two volumes on sparse files in scratch space, formatted as `lunlink format` would: node 1's
// send volume (ring 1 -> 2) and node 2's, which is node 1's receive volume once mirrored. For tests of
// the storage path and the link on plain files (no loop device).
import type { ExecutionContext } from "ava";

import { Volume } from "../../lib/io/volume.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { scratchDir, sparseFileIn } from "./scratch.ts";

const MiB = 1024 * 1024;
/** Each file's size unless a test asks for more. */
export const PAIR_FILE_BYTES = 2 * MiB;
/** Each ring's blocks unless a test asks for more. */
export const PAIR_RING_BLOCKS = 128n;

/** Formats the volume file at `path` for the ring writerNode -> peerNode. */
export async function formatFile(path: string, writerNode: number, peerNode: number, ringBlocks = PAIR_RING_BLOCKS): Promise<void> {
  const v = await Volume.open(path);
  await formatVolume(v, { writerNode, peerNode, ringBlocks });
  await v.close();
}

/** node1-send.img (send, 1 -> 2) and node2-send.img (receive, 2 -> 1) in a fresh scratch directory. */
export async function pairFiles(t: ExecutionContext, sizes: { fileBytes?: number; ringBlocks?: bigint } = {}): Promise<{ send: string; receive: string }> {
  const { fileBytes = PAIR_FILE_BYTES, ringBlocks = PAIR_RING_BLOCKS } = sizes;
  const dir = await scratchDir(t);
  const send = await sparseFileIn(dir, fileBytes, "node1-send.img");
  const receive = await sparseFileIn(dir, fileBytes, "node2-send.img");
  await formatFile(send, 1, 2, ringBlocks);
  await formatFile(receive, 2, 1, ringBlocks);
  return { send, receive };
}
