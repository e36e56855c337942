// corosync over lunlink (issue #14, "Running under a real cluster stack"): 3 nodes in namespaces with
// every ring on one shared loop cluster volume, corosync 3 in each namespace with knet over the
// lunlink0 addresses, default totem timers, votequorum without two_node. A 20 s cut of node 3's
// network (its veth down) does not change the membership: lunlink carries knet over storage within
// its failover bound, far inside the token timeout. Negative control: node 3 loses network and
// storage at once (its lunlink is killed, lunlink0 goes with it) and the membership does change.
// `lunlink doctor` on node 1 (a cluster config) passes against the corosync.conf in use.
// Outcomes only: no timing is asserted. Needs the build in dist/ and corosync (scripts/deps.sh test).
import { join } from "node:path";

import test from "ava";

import { lunlinkBin } from "../../lib/node/lab.ts";
import { ClusterLab } from "../helpers/cluster-lab.ts";
import { CorosyncCluster, type Membership } from "../helpers/corosync.ts";
import { run, sleep } from "../helpers/exec.ts";
import { scratchDir } from "../helpers/scratch.ts";

const CUT_MS = 20_000;
/** After the cut ends: twice corosync's token timeout for 3 nodes (3650 ms), for a late membership change to show. */
const SETTLE_MS = 8_000;
const ALL = [1, 2, 3] as const;

const peer = (s: { peers: { node: number; active: string; counters: { dataDelivered: number } }[] }, node: number) => s.peers.find((p) => p.node === node)!;
const same = (a: number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

test("corosync 3 over lunlink0 (3 nodes, knet, default token, two_node off): a 20 s cut of node 3's network keeps the membership; node 3 losing network and storage leaves it", async (t) => {
  const lab = await ClusterLab.create(t, 3);
  await lab.startAll();

  const dir = await scratchDir(t);
  const corosync = await CorosyncCluster.start(t, dir, lab.nodes.map((n) => ({ id: n.id, ns: n.ns, address: n.tunAddress })));
  const joined = new Map<number, Membership>();
  for (const id of ALL) joined.set(id, await corosync.waitFor(id, "in a membership of all 3", (m) => same(m.members, ALL), 60_000));
  const ringId = joined.get(1)!.ringId;
  for (const id of ALL) t.is(joined.get(id)!.ringId, ringId, `node ${id}: the one membership every node is in`);
  for (const id of ALL) t.deepEqual(await corosync.quorumMembers(id), [...ALL], `node ${id}: corosync-quorumtool lists all 3`);
  // `lunlink doctor` on a running cluster node, against the corosync.conf corosync runs with.
  const doctorOut = await run("ip", ["netns", "exec", lab.node(1).ns, process.execPath, lunlinkBin(), "doctor", "--config", lab.node(1).configPath, "--json", "--corosync-conf", join(dir, "corosync1.conf")], 60_000);
  const doctor = JSON.parse(doctorOut) as { ok: boolean; findings: { check: string; severity: string; what: string }[] };
  t.deepEqual(doctor.findings.filter((f) => f.severity === "fail"), [], "lunlink doctor on node 1 (a cluster config): nothing fails");
  t.deepEqual(doctor.findings.filter((f) => f.check === "corosync").map((f) => f.severity), ["ok"], "and corosync's default token passes against the failover bound");
  const formedBefore = new Map(ALL.map((id) => [id, corosync.memberships(id).length]));

  // The cut: node 3's veth into the switch goes down for 20 s; storage is untouched.
  const deliveredBefore = peer(await lab.status(1), 3).counters.dataDelivered;
  await lab.setNetwork(3, false);
  const cutEndsAt = Date.now() + CUT_MS;
  try {
    for (const [id, other] of [[1, 3], [3, 1]] as const) await lab.waitFor(id, `on storage to node ${other}`, (s) => peer(s, other).active === "storage", 10_000);
    while (Date.now() < cutEndsAt) {
      for (const id of ALL) t.deepEqual(corosync.current(id), joined.get(id), `node ${id}: membership unchanged during the cut`);
      await sleep(1000);
    }
    // lunlink0 carries nothing but corosync here: what node 1 got from node 3 meanwhile came over storage.
    t.true(peer(await lab.status(1), 3).counters.dataDelivered > deliveredBefore, "node 3's corosync traffic reached node 1 over storage during the cut");
  } finally {
    await lab.setNetwork(3, true);
  }
  for (const [id, other] of [[1, 3], [3, 1]] as const) await lab.waitFor(id, `back on the primary to node ${other}`, (s) => peer(s, other).active === "primary", 20_000);
  await sleep(SETTLE_MS);
  for (const id of ALL) {
    t.is(corosync.memberships(id).length, formedBefore.get(id) ?? -1, `node ${id}: no membership formed across the cut`);
    t.deepEqual(corosync.current(id), joined.get(id), `node ${id}: still in membership ${ringId} of all 3`);
    t.deepEqual(await corosync.quorumMembers(id), [...ALL], `node ${id}: corosync-quorumtool still lists all 3`);
  }
  const knetDown = ALL.map((id) => `${id}: ${corosync.log(id).filter((l) => /link: \d+ is down/.test(l)).length}`).join(", ");
  t.log(`knet "link is down" lines during the cut (not asserted; knet's own pings may time out while membership holds): ${knetDown}`);

  // Negative control: node 3 loses network and storage at once (its lunlink killed, lunlink0 gone).
  lab.node(3).process!.kill("SIGKILL");
  const killedAtMs = Date.now();
  for (const id of [1, 2] as const) {
    const left = await corosync.waitFor(id, "in a membership without node 3", (m) => same(m.members, [1, 2]), 60_000);
    t.log(`node ${id}: membership without node 3 seen ${Date.now() - killedAtMs} ms after the kill (polled every 100 ms; not asserted)`);
    t.not(left.ringId, ringId, `node ${id}: a new membership formed`);
    t.deepEqual(await corosync.quorumMembers(id), [1, 2], `node ${id}: corosync-quorumtool lists 1 and 2`);
  }
  const s1 = await lab.status(1);
  t.is(peer(s1, 3).active, "isolated", "lunlink reports node 3 isolated, as corosync sees it gone");
});
