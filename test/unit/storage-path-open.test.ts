// StoragePath.open (what `lunlink up` opens first) refuses a bad receive path before it touches the
// send volume: missing, unreadable, not a lunlink volume, the wrong geometry (a ring larger than the
// volume), another pair's or our own send volume. Each refusal keeps today's coded error, and the send
// volume's bytes (superblocks, status, ring: the epoch) are the same after it; keyed, a ring under another
// key too. A receive volume that is only not yet written (formatted, mirrored, no record yet) or stale
// (its writer stopped) is still accepted: the reader follows it and heals. A cluster node's storage
// already opens every peer ring before its writer: a missing one leaves its own region unchanged. Plain files.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, truncate } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";

import { ErrorCode } from "../../lib/errors.ts";
import { FrameType } from "../../lib/format/layout.ts";
import { Volume } from "../../lib/io/volume.ts";
import { StoragePath } from "../../lib/link/storage-path.ts";
import { ClusterStorage } from "../../lib/node/cluster-storage.ts";
import { formatCluster } from "../../lib/ring/cluster.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { PAIR_RING_BLOCKS, formatFile } from "../helpers/pair-files.ts";
import { scratchDir, sparseFileIn } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;

/** Node 1's send volume (formatted for 1 -> 2) and a scratch directory for the receive paths. */
async function sendVolume(t: ExecutionContext): Promise<{ dir: string; send: string }> {
  const dir = await scratchDir(t);
  const send = await sparseFileIn(dir, 2 * MiB, "node1-send.img");
  await formatFile(send, 1, 2);
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
      await formatFile(path, 2, 1);
      await truncate(path, 64 * 1024);
      return path;
    } },
  { what: "another pair's (written by node 3 for node 4)", code: ErrorCode.WrongPair, make: async (dir) => {
      const path = await sparseFileIn(dir, 2 * MiB, "other-pair.img");
      await formatFile(path, 3, 4);
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
    await formatFile(peer, 2, 1);
    const path = await open(send, peer);
    await path.close();
  });
}

test("a receive volume formatted (mirrored) but not yet written is accepted: the send ring opens in a new epoch", async (t) => {
  const { dir, send } = await sendVolume(t);
  const receive = await sparseFileIn(dir, 2 * MiB, "node2-send.img");
  await formatFile(receive, 2, 1);
  const before = await digest(send);
  const path = await open(send, receive);
  await path.close();
  t.true(path.epoch > 0n, "the writer opened an epoch");
  t.not(await digest(send), before, "the send volume was opened for writing");
});

test("a stale receive volume (the peer wrote records, then stopped; the copy may lag its newest epoch) is accepted", async (t) => {
  const { dir, send } = await sendVolume(t);
  const receive = await sparseFileIn(dir, 2 * MiB, "node2-send.img");
  await formatFile(receive, 2, 1);
  const v = await Volume.open(receive);
  const writer = await RingWriter.open(v, { nodeId: 2, maxDelayMs: 0 });
  for (let i = 0; i < 5; i++) await writer.append(FrameType.Data, Buffer.from(`old ${i}`));
  await writer.flush();
  await writer.close();
  await v.close();
  const path = await open(send, receive);
  await path.close();
  t.true(path.epoch > 0n, "the writer opened an epoch");
});

test("keyed: a receive ring under another key is refused (ERR_LUNLINK_WRONG_KEY) before the send volume is touched; under the right key it is accepted", async (t) => {
  const dir = await scratchDir(t);
  const [sendKey, receiveKey, otherKey] = [randomBytes(32), randomBytes(32), randomBytes(32)];
  const keyed = async (name: string, writerNode: number, peerNode: number, key: Uint8Array): Promise<string> => {
    const path = await sparseFileIn(dir, 2 * MiB, name);
    const v = await Volume.open(path);
    await formatVolume(v, { writerNode, peerNode, ringBlocks: PAIR_RING_BLOCKS, auth: { key } });
    await v.close();
    return path;
  };
  const send = await keyed("node1-send.img", 1, 2, sendKey);
  const forged = await keyed("node2-forged.img", 2, 1, otherKey);
  const receive = await keyed("node2-send.img", 2, 1, receiveKey);
  const openKeyed = (from: string) => StoragePath.open({ nodeId: 1, peerNodeId: 2, send, receive: from, dsync: false, auth: () => ({ send: { key: sendKey }, receive: { key: receiveKey } }), onFrame: () => undefined });
  const before = await digest(send);
  await t.throwsAsync(openKeyed(forged), { code: ErrorCode.WrongKey });
  t.is(await digest(send), before, "the send volume's superblocks, status and epoch are unchanged");
  const path = await openKeyed(receive);
  await path.close();
  t.not(await digest(send), before, "the send volume was opened for writing");
});

test("a cluster node whose peer ring is missing is refused (ERR_LUNLINK_NOT_FOUND) before its own ring is touched", async (t) => {
  const dir = await scratchDir(t);
  const file = await sparseFileIn(dir, 8 * MiB, "cluster.img");
  const v = await Volume.open(file);
  await formatCluster(v, { nodes: [1, 2] });
  await v.close();
  const before = await digest(file);
  // Node 2's ring read from a mirror copy that is not there.
  await t.throwsAsync(ClusterStorage.open({ nodeId: 1, ring: file, peers: [{ node: 2, ring: join(dir, "node2-copy.img") }], peerDownMs: 5000, dsync: false, onFrame: () => undefined }), { code: ErrorCode.NotFound });
  t.is(await digest(file), before, "our region's superblocks, status and epoch are unchanged");
});
