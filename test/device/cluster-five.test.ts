// End to end, a cluster of 5 (issue #14): `lunlink up` with a cluster config in five network namespaces
// on one switch, every node's ring in one shared loop cluster volume read directly by all. Node 5's
// network is cut: the 4 others keep the primary among themselves (no failover between them), node 5
// reaches every peer over storage, and pings from every node to every node are answered; restored,
// node 5 is back on the primary with every peer. One rig, several assertions (each ping bounded in
// count and reply wait). Needs the build in dist/.
import test from "ava";

import type { ClusterNodeStatus } from "../../lib/node/cluster-status.ts";
import { ClusterLab } from "../helpers/cluster-lab.ts";
import { pingExplained } from "../helpers/ping-explained.ts";

const N = 5;
const CUT = 5;
const ids = Array.from({ length: N }, (_, i) => i + 1);
const others = (id: number) => ids.filter((x) => x !== id);
const peer = (s: ClusterNodeStatus, node: number) => s.peers.find((p) => p.node === node)!;
/** Pings per ordered pair, each waited for at most PING_WAIT_S. */
const PINGS = 3;
const PING_WAIT_S = 5;

test("5 nodes on one shared cluster volume: cut node 5's network; 1-4 keep the primary among themselves, 5 reaches every peer over storage, every node pings every node; restored, 5 is back on the primary", async (t) => {
  const lab = await ClusterLab.create(t, N);
  await lab.startAll(30_000);
  const pairs = ids.flatMap((from) => others(from).map((to) => [from, to] as const));
  t.is(pairs.length, N * (N - 1));
  const pingAll = async (): Promise<Map<string, number>> => {
    const replies = new Map<string, number>();
    // One sender at a time, its pings to every peer together: bounded (20 pairs x 3 pings) and quick.
    for (const from of ids) {
      const got = await Promise.all(others(from).map((to) => lab.ping(from, to, PINGS, PING_WAIT_S)));
      others(from).forEach((to, i) => replies.set(`${from}->${to}`, got[i]!));
    }
    return replies;
  };
  const before = await pingAll();
  for (const [from, to] of pairs) t.is(before.get(`${from}->${to}`), PINGS, `ping ${from} -> ${to} over the primary`);
  const failoversBefore = await Promise.all(others(CUT).map(async (id) => (await lab.status(id)).peers.filter((p) => p.node !== CUT).map((p) => p.failovers)));

  await lab.setNetwork(CUT, false);
  await Promise.all([
    ...others(CUT).map((id) => lab.waitFor(id, `on storage to node ${CUT}`, (s) => peer(s, CUT).active === "storage", 15_000)),
    lab.waitFor(CUT, "on storage to every peer", (s) => s.peers.every((p) => p.active === "storage"), 15_000),
  ]);
  const during = await pingAll();
  for (const [from, to] of pairs) {
    const over = from === CUT || to === CUT ? "storage" : "the primary";
    t.true(during.get(`${from}->${to}`)! >= PINGS - 1, `ping ${from} -> ${to} answered over ${over} during the cut (${during.get(`${from}->${to}`)} of ${PINGS})`);
  }
  const cutStatus = await lab.status(CUT);
  for (const p of cutStatus.peers) {
    t.is(p.active, "storage", `node ${CUT} reaches node ${p.node} over storage`);
    // Up, or suspect if a beat was missed under load since the pings: never down.
    t.true(["up", "suspect"].includes(p.paths.storage.state), `node ${CUT} -> ${p.node}: the cut took only the primary (storage ${p.paths.storage.state})`);
    t.true(p.counters.received.storage > 0, `node ${CUT} heard node ${p.node} over storage`);
  }
  for (const [i, id] of others(CUT).entries()) {
    const s = await lab.status(id);
    const among = s.peers.filter((p) => p.node !== CUT);
    t.true(among.every((p) => p.active === "primary"), `node ${id} keeps the primary to ${among.map((p) => p.node).join(", ")}`);
    t.deepEqual(among.map((p) => p.failovers), failoversBefore[i], `node ${id}: no failover among the 4 others`);
    t.true(peer(s, CUT).failovers >= 1, `node ${id} -> ${CUT}: failed over`);
  }

  await lab.setNetwork(CUT, true);
  await lab.waitFor(CUT, "back on the primary to every peer", (s) => s.peers.every((p) => p.active === "primary"), 20_000);
  for (const id of others(CUT)) await lab.waitFor(id, `back on the primary to node ${CUT}`, (s) => peer(s, CUT).active === "primary", 20_000);
  for (const to of others(CUT)) t.is(await pingExplained(t, lab, CUT, to, PINGS, PING_WAIT_S), PINGS, `ping ${CUT} -> ${to} on the primary again`);
});
