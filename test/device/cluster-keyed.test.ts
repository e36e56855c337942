// A keyed cluster of 3 end to end (issue #14, docs/format.md "Keyed clusters"): the cluster lab with
// keyed on (a cluster secret formats every region of one shared loop volume keyed; each node has X25519
// keys, sealed UDP per pair). Node 3's network is cut: pings 1 -> 3 and 3 -> 2 are answered over
// storage while 1 -> 2 stays on the primary; restored, node 3 is back on the primary. The pings carry
// a known pattern (`ping -p`) and the volume never holds it in clear: storage records are encrypted.
// Needs the build in dist/.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";

import { ClusterLab } from "../../lib/node/cluster-lab.ts";
import { NETNS_PREFIX } from "../helpers/netns.ts";

/** 12 bytes ("lunlinkkeyed") `ping -p` repeats through each echo's payload. */
const PATTERN_HEX = "6c756e6c696e6b6b65796564";
const PINGS = 5;

type Status = Awaited<ReturnType<ClusterLab["status"]>>;
const peer = (s: Status, node: number) => s.peers.find((p) => p.node === node)!;

/** Echo replies from `from` to `to`'s TUN address, each echo carrying PATTERN_HEX. */
const ping = (lab: ClusterLab, from: number, to: number): Promise<number> => lab.ping(from, to, PINGS, 10, ["-p", PATTERN_HEX]);

test("keyed 3 nodes on one shared volume: cut node 3's network; pings 1 -> 3 and 3 -> 2 answered over storage, 1 -> 2 on the primary; restored; no ping payload in clear on the volume", async (t) => {
  const lab = await ClusterLab.create({ count: 3, prefix: NETNS_PREFIX, dirPrefix: "/var/tmp/lunlink-test-", keyed: true });
  t.teardown(async () => {
    await lab.destroy();
    if (!t.passed) t.log(lab.logs.filter((l) => /transition|error|"level":[45]0/.test(l)).slice(-60).join("\n"));
  });
  const config = JSON.parse(await readFile(lab.node(1).configPath, "utf8")) as { keys: { private: string; clusterSecret: string }; cluster: { members: { publicKey?: string }[] } };
  t.is(config.keys.clusterSecret, lab.clusterSecretPath, "every node's config names the cluster secret");
  t.true(config.cluster.members.every((m) => typeof m.publicKey === "string"), "and every member's public key");

  await lab.startAll();
  t.false(lab.logs.some((l) => l.includes("ring-unkeyed")), "no node runs its rings unkeyed");
  const before = await lab.status(1);
  const failovers12 = peer(before, 2).failovers;
  const storageFrom3 = peer(before, 3).counters.received.storage;

  await lab.cutToStorage(3, [[1, 3], [2, 3], [3, 1], [3, 2]]);
  t.true((await ping(lab, 1, 3)) >= PINGS - 1, "ping 1 -> 3 answered over storage during the cut");
  t.true((await ping(lab, 3, 2)) >= PINGS - 1, "ping 3 -> 2 answered over storage during the cut");
  t.is(await ping(lab, 1, 2), PINGS, "ping 1 -> 2 on the primary");
  const during = await lab.status(1);
  t.is(peer(during, 2).active, "primary", "node 1 -> 2 stayed on the primary");
  t.is(peer(during, 2).failovers, failovers12, "and never failed over");
  t.true(peer(during, 3).counters.received.storage > storageFrom3, "node 1 received node 3's replies over storage");

  await lab.setNetwork(3, true);
  for (const [id, other] of [[1, 3], [3, 1], [2, 3], [3, 2]] as const) await lab.waitFor(id, `back on the primary to node ${other}`, (s) => peer(s, other).active === "primary", 15_000);
  t.is(await ping(lab, 3, 1), PINGS, "ping 3 -> 1 on the primary again");

  // During the cut node 3's only path was storage, so those echoes (pattern and all) crossed the
  // volume as records. The loop device's backing file (direct I/O: no stale page cache) as written:
  const volume = await readFile(join(lab.dir, "cluster.img"));
  const pattern = Buffer.from(PATTERN_HEX, "hex");
  t.is(volume.indexOf(pattern), -1, "no ping payload in clear on the keyed volume");
});
