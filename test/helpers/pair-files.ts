// A pair's two volumes on sparse files in scratch space, formatted as `lunlink format` would: node 1's
// send volume (ring 1 -> 2) and node 2's, which is node 1's receive volume once mirrored. For tests of
// the storage path and the link on plain files (no loop device).
import type { ExecutionContext } from "ava";

import { Volume } from "../../lib/io/volume.ts";
import { Link, type LinkOptions } from "../../lib/link/link.ts";
import { DEFAULT_TIMERS } from "../../lib/link/paths.ts";
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

/**
 * A real pair of Links on loopback over pairFiles, closed at teardown. `primary` false: each end's peer
 * port is one nobody binds, so storage alone carries the pair.
 */
export async function linkPair(t: ExecutionContext, options: { primary?: boolean } = {}): Promise<[Link, Link]> {
  const { primary = true } = options;
  const { send: a, receive: b } = await pairFiles(t);
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const linkOptions = (node: number, send: string, receive: string, mine: number, theirs: number): LinkOptions => ({
    nodeId: node,
    peerNodeId: 3 - node,
    primary: { bind: { host: "127.0.0.1", port: mine }, peer: { host: "127.0.0.1", port: primary ? theirs : theirs + 4 } },
    storage: { send, receive, dsync: false },
    timers: DEFAULT_TIMERS,
  });
  const one = await Link.open(linkOptions(1, a, b, port, port + 2));
  const two = await Link.open(linkOptions(2, b, a, port + 2, port));
  t.teardown(async () => {
    await one.close();
    await two.close();
  });
  return [one, two];
}
