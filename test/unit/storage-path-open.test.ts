// StoragePath.open (what `lunlink up` opens first) refuses a bad receive path before it touches the
// send volume: missing, unreadable, not a lunlink volume, the wrong geometry (a ring larger than the
// volume), another pair's or our own send volume. Each refusal keeps today's coded error, and the send
// volume's bytes (superblocks, status, ring: the epoch) are the same after it. A receive volume that is
// only not yet written (formatted, mirrored, no record yet) is still accepted. Plain files.
import { createHash } from "node:crypto";
import { mkdir, readFile, truncate } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";

import { ErrorCode } from "../../lib/errors.ts";
import { Volume } from "../../lib/io/volume.ts";
import { StoragePath } from "../../lib/link/storage-path.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { scratchDir, sparseFileIn } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;
const RING_BLOCKS = 128n;

async function formatted(path: string, writerNode: number, peerNode: number): Promise<void> {
  const v = await Volume.open(path);
  await formatVolume(v, { writerNode, peerNode, ringBlocks: RING_BLOCKS });
  await v.close();
}

/** Node 1's send volume (formatted for 1 -> 2) and a scratch directory for the receive paths. */
async function sendVolume(t: ExecutionContext): Promise<{ dir: string; send: string }> {
  const dir = await scratchDir(t);
  const send = await sparseFileIn(dir, 2 * MiB, "node1-send.img");
  await formatted(send, 1, 2);
  return { dir, send };
}

async function digest(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

function open(send: string, receive: string): Promise<StoragePath> {
  return StoragePath.open({ nodeId: 1, peerNodeId: 2, send, receive, dsync: false, onFrame: () => undefined });
}

/** The bad receive paths, each as `up` would be given it, and the code it is refused with. */
const BAD: { what: string; code: string; make: (dir: string, send: string) => Promise<string> }[] = [
  { what: "missing", code: ErrorCode.NotFound, make: async (dir) => join(dir, "no-such-volume.img") },
  { what: "unreadable (a directory)", code: ErrorCode.NotAVolume, make: async (dir) => {
      const path = join(dir, "a-directory");
      await mkdir(path);
      return path;
    } },
  { what: "not a lunlink volume (zeroes)", code: ErrorCode.NotFormatted, make: (dir) => sparseFileIn(dir, 2 * MiB, "blank.img") },
  { what: "the wrong geometry (its ring runs past the end of the volume)", code: ErrorCode.SuperblockConflict, make: async (dir) => {
      const path = await sparseFileIn(dir, 2 * MiB, "short.img");
      await formatted(path, 2, 1);
      await truncate(path, 64 * 1024);
      return path;
    } },
  { what: "another pair's (written by node 3 for node 4)", code: ErrorCode.WrongPair, make: async (dir) => {
      const path = await sparseFileIn(dir, 2 * MiB, "other-pair.img");
      await formatted(path, 3, 4);
      return path;
    } },
  { what: "our own send volume", code: ErrorCode.WrongPair, make: async (_dir, send) => send },
];

for (const bad of BAD) {
  test(`a receive path that is ${bad.what} is refused (${bad.code}) before the send volume is touched`, async (t) => {
    const { dir, send } = await sendVolume(t);
    const receive = await bad.make(dir, send);
    const before = await digest(send);
    await t.throwsAsync(open(send, receive), { code: bad.code });
    t.is(await digest(send), before, "the send volume's superblocks, status and epoch are unchanged");
    // The refusal released the send volume (exclusive): a good start right after works.
    const peer = await sparseFileIn(dir, 2 * MiB, "node2-send.img");
    await formatted(peer, 2, 1);
    const path = await open(send, peer);
    await path.close();
  });
}

test("a receive volume formatted (mirrored) but not yet written is accepted: the send ring opens in a new epoch", async (t) => {
  const { dir, send } = await sendVolume(t);
  const receive = await sparseFileIn(dir, 2 * MiB, "node2-send.img");
  await formatted(receive, 2, 1);
  const before = await digest(send);
  const path = await open(send, receive);
  await path.close();
  t.true(path.epoch > 0n, "the writer opened an epoch");
  t.not(await digest(send), before, "the send volume was opened for writing");
});
