// End to end, a cluster of 3 with per-node volumes plus mirrors (issue #14): each node writes its own
// volume (a loop device holding a cluster volume, of which it writes its region), and every peer reads
// it from a copy of that region on its side, kept by `lunlink mirror copy --follow --region` in the
// root namespace, and for node 1 -> node 3 by `lunlink mirror push --region` from an "array"
// namespace to `mirror serve` in node 3's namespace over a storage veth the cut leaves up. Node 3's
// network is cut: traffic to it moves to storage (through the mirrors) on both of its peers while
// 1 <-> 2 stay on the primary, pings between every pair are answered, and a TCP stream 3 -> 1
// arrives with the sender's SHA-256; restored, every pair fails back to the primary.
// Needs the build in dist/.
import test from "ava";

import type { ClusterNodeStatus } from "../../lib/node/cluster-status.ts";
import { sleep } from "../helpers/exec.ts";
import { ClusterLab } from "../helpers/cluster-lab.ts";
import { pingExplained } from "../helpers/ping-explained.ts";

const peer = (s: ClusterNodeStatus, node: number) => s.peers.find((p) => p.node === node)!;

test("3 nodes, per-node volumes read through mirror copies (local copy, and push/serve for 1 -> 3): cut node 3's network; 1, 2 <-> 3 move to storage through the mirrors, 1 <-> 2 stay on the primary, a TCP stream 3 -> 1 arrives intact; restored, all fail back", async (t) => {
  const lab = await ClusterLab.create(t, 3, {}, { layout: "mirrors", remoteMirror: { from: 1, to: 3 } });
  t.is(lab.volume, "", "no shared volume");
  t.is(lab.nodeVolumes.length, 3, "a volume per node");
  t.is(lab.mirrors.length, 5, "a local region mirror for every ordered pair but 1 -> 3 (pushed)");
  await lab.startAll();
  const s1 = await lab.status(1);
  t.regex(peer(s1, 3).ring.path, /node3-on-node1\.img$/, "node 1 reads node 3's ring from its copy");
  t.is(peer(await lab.status(3), 1).ring.path.endsWith("node1-on-node3.img"), true, "node 3 reads node 1's ring from the pushed copy");
  for (const [from, to] of [[1, 2], [1, 3], [2, 3]] as const) t.is(await lab.ping(from, to, 3), 3, `ping ${from} -> ${to} over the primary`);
  const failovers12 = peer(s1, 2).failovers;
  const storageFrom1Before = peer(await lab.status(3), 1).counters.received.storage;

  const bytes = 8 * 1024 * 1024;
  const stream = await lab.startStream(3, 1, bytes, 4);
  await sleep(800);
  const seenMs = await lab.cutToStorage(3, [[1, 3], [2, 3], [3, 1], [3, 2]]);
  t.log(`cut -> on storage through the mirrors, as polled every 10 ms (an upper bound, not asserted): ${seenMs.join(", ")}`);
  for (const [from, to] of [[1, 3], [3, 1], [2, 3], [3, 2]] as const) t.true((await lab.ping(from, to, 5)) >= 4, `ping ${from} -> ${to} answered over storage during the cut`);
  t.is(await lab.ping(1, 2, 5), 5, "ping 1 -> 2 still on the primary");
  const { sent, received } = await stream.finished;
  t.is(received.bytes, bytes, "every byte of the stream from the cut node arrived");
  t.is(received.sha256, sent.sha256, "with the sender's SHA-256");

  const during = await Promise.all([1, 2, 3].map((id) => lab.status(id)));
  const [d1, d2, d3] = during as [ClusterNodeStatus, ClusterNodeStatus, ClusterNodeStatus];
  t.is(peer(d1, 2).active, "primary", "node 1 -> 2 stayed on the primary");
  t.is(peer(d2, 1).active, "primary", "node 2 -> 1 stayed on the primary");
  t.is(peer(d1, 2).failovers, failovers12, "and never failed over");
  for (const [s, other] of [[d1, 3], [d2, 3], [d3, 1], [d3, 2]] as const) {
    t.is(peer(s, other).paths.storage.state, "up", `node ${s.node} -> ${other}: the cut took only the primary`);
    t.true(peer(s, other).failovers >= 1, `node ${s.node} -> ${other}: failed over`);
  }
  t.true(peer(d1, 3).counters.received.storage > 100, "node 1 received node 3's stream over storage (its local region mirror)");
  t.true(peer(d3, 1).counters.received.storage > storageFrom1Before, "node 3 received node 1's traffic over storage (the pushed region copy)");

  await lab.setNetwork(3, true);
  for (const [id, other] of [[1, 3], [3, 1], [2, 3], [3, 2]] as const) await lab.waitFor(id, `back on the primary to node ${other}`, (s) => peer(s, other).active === "primary", 15_000);
  t.is(await pingExplained(t, lab, 3, 1, 3), 3, "ping 3 -> 1 on the primary again");
  for (const m of lab.mirrors) t.true(m.running, `mirror ${m.source} --region ${m.region} -> ${m.destination} still running`);
});
