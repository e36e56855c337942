// A failed open on loop devices holds no device afterwards: ClusterNode.open refused for a peer public
// key the PeerLink refuses, Link.open refused for a receive device that is not a lunlink volume. No
// descriptor of this process names the devices, the send device opens exclusively again (O_EXCL: the
// hold a leaked writer keeps), and the pair's send device reads back unchanged (no new epoch).
import { createHash } from "node:crypto";
import { readdir, readlink } from "node:fs/promises";
import test from "ava";

import { ErrorCode } from "../../lib/errors.ts";
import { Volume } from "../../lib/io/volume.ts";
import { generateKeys } from "../../lib/link/keys.ts";
import { Link } from "../../lib/link/link.ts";
import { DEFAULT_TIMERS } from "../../lib/link/paths.ts";
import { ClusterNode } from "../../lib/node/cluster-node.ts";
import { formatCluster } from "../../lib/ring/cluster.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { attachLoop } from "../helpers/loop.ts";
import { sparseFile } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;
/** Bytes compared before and after a refused start: superblocks, status slots and the start of the ring. */
const COMPARED_BYTES = MiB;

/** The descriptors of this process open on `device`. */
async function heldOn(device: string): Promise<number> {
  let count = 0;
  for (const fd of await readdir("/proc/self/fd")) if ((await readlink(`/proc/self/fd/${fd}`).catch(() => "")) === device) count++;
  return count;
}

async function digest(device: string): Promise<string> {
  const v = await Volume.open(device, { readOnly: true });
  try {
    return createHash("sha256").update(await v.read(0, COMPARED_BYTES)).digest("hex");
  } finally {
    await v.close();
  }
}

function randomBase(): number {
  return 30_000 + Math.floor(Math.random() * 5_000) * 4;
}

test("ClusterNode.open refused for a bad peer public key holds no loop device afterwards", async (t) => {
  const device = await attachLoop(t, await sparseFile(t, 16 * MiB, "cluster.img"), { directIo: true });
  const v = await Volume.open(device);
  await formatCluster(v, { nodes: [1, 2] });
  await v.close();
  const key = generateKeys();
  const base = randomBase();
  const members = [1, 2].map((node) => ({ node, address: `198.18.100.${node}`, primary: { host: "127.0.0.1", port: base + 2 * (node - 1) }, ring: device, publicKey: node === 2 ? "not-a-key" : key.publicKey }));
  await t.throwsAsync(ClusterNode.open({ nodeId: 1, subnet: "198.18.100.1/24", members, storage: { peerDownMs: 5000 }, timers: DEFAULT_TIMERS, privateKey: key.privateKey }), { code: ErrorCode.BadKey });
  t.is(await heldOn(device), 0, "no descriptor on the cluster device");
  const exclusive = await Volume.open(device, { exclusive: true });
  await exclusive.close();
});

test("Link.open refused for a receive device that is not a lunlink volume: the send device unchanged and free", async (t) => {
  const send = await attachLoop(t, await sparseFile(t, 16 * MiB, "node1-send.img"), { directIo: true });
  const receive = await attachLoop(t, await sparseFile(t, 16 * MiB, "blank.img"), { directIo: true });
  const v = await Volume.open(send);
  await formatVolume(v, { writerNode: 1, peerNode: 2 });
  await v.close();
  const before = await digest(send);
  const port = randomBase();
  await t.throwsAsync(Link.open({ nodeId: 1, peerNodeId: 2, primary: { bind: { host: "127.0.0.1", port }, peer: { host: "127.0.0.1", port: port + 2 } }, storage: { send, receive }, timers: DEFAULT_TIMERS }), { code: ErrorCode.NotFormatted });
  t.is(await heldOn(send), 0, "no descriptor on the send device");
  t.is(await heldOn(receive), 0, "no descriptor on the receive device");
  t.is(await digest(send), before, "the send device's superblocks, status and epoch are unchanged");
  const exclusive = await Volume.open(send, { exclusive: true });
  await exclusive.close();
});
