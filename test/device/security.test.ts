// Keys end to end: two hosts with X25519 keys (lab keys: true) carry a TCP stream over sealed UDP
// while a hostile sender in node 1's namespace floods node 2's port with forged sealed datagrams and
// unsealed (downgrade) ones claiming to be node 1 with a newer session. Asserted: the stream arrives
// intact, every hostile datagram is refused and counted by reason, none changes node 2's view of its
// peer (no "restart"), and a node whose private key file is mode 0644 refuses to start.
import { chmod } from "node:fs/promises";
import { once } from "node:events";
import { join } from "node:path";
import test from "ava";

import { Lab, lunlinkBin } from "../../lib/node/lab.ts";
import { upLab } from "../helpers/lab.ts";
import { NETNS_PREFIX } from "../helpers/netns.ts";

test("keys on both paths: forged and downgraded UDP refused and counted, a cut carries the stream over keyed rings, intact", async (t) => {
  const lab = await upLab(t, { keys: true });
  const bytes = 16 * 1024 * 1024;
  const stream = await lab.startStream(1, bytes, 8);
  const target = `${lab.nodes[1].underlayAddress}:7410`;
  for (const mode of ["forged", "downgrade"]) {
    const flood = lab.spawnIn(1, process.execPath, ["--import=tsx", "test/helpers/udp-flood.ts", target, "2000", mode]);
    const [code] = (await once(flood, "exit")) as [number];
    t.is(code, 0, `${mode} flood ran`);
  }
  // A busy host may leave the primary suspect for a moment; heartbeats starved by the floods fail over.
  const flooded = await lab.waitFor(2, "primary up", (x) => x.paths.primary.state === "up");
  t.is(flooded.failovers, 0, "the floods did not starve heartbeats into a false failover");
  const overPrimary = await stream.finished;
  t.is(overPrimary.received.bytes, bytes);
  t.is(overPrimary.received.sha256, overPrimary.sent.sha256, "the stream beside the floods is intact");
  // A second stream runs across the cut: started once the link is on storage, so it cannot have ended
  // before the cut (the first one may, on a host where the floods take seconds).
  await lab.setPrimary(false);
  await lab.waitFor(2, "on storage", (x) => x.active === "storage");
  const acrossCut = await lab.startStream(1, bytes, 8, undefined, 5002);
  // The cut lasts until the stream has moved over the keyed ring (a loaded host carries it slower).
  await lab.waitFor(2, "receiving over storage", (x) => x.counters.received.storage > 100, 20_000);
  await lab.setPrimary(true);
  const { sent, received } = await acrossCut.finished;
  t.is(received.bytes, bytes);
  t.is(received.sha256, sent.sha256, "the stream across the cut is intact");
  const s = await lab.waitFor(2, "back on the primary", (x) => x.active === "primary");
  t.true(s.counters.received.storage > 100, `node 2 received over the keyed ring (${s.counters.received.storage} messages)`);
  t.true(s.counters.authFailures >= 2000, `forged datagrams refused (${s.counters.authFailures})`);
  t.true(s.counters.downgrades >= 2000, `unsealed datagrams refused as downgrades (${s.counters.downgrades})`);
  t.is(s.counters.peerRestarts, 0, "no hostile datagram made node 2 believe node 1 restarted");
});

test("keyed rings across a restart: node 2 reopens its keyed volumes (replay floor from its own MACed status) and traffic resumes over storage", async (t) => {
  const lab = await upLab(t, { keys: true, volumeBytes: 16 * 1024 * 1024 });
  await lab.stopNode(2, "kill");
  await lab.startNode(2);
  await lab.setPrimary(false);
  const s = await lab.waitFor(2, "on storage after the restart", (x) => x.active === "storage" && x.paths.storage.state === "up", 15_000);
  t.is(s.paths.storage.state, "up", "node 2 hears node 1 over the keyed ring after restarting");
  t.true((await lab.ping(1, 3, 10)) >= 2, "ping over storage works after the restart");
  const after = await lab.status(2);
  t.is(after.ring.readerCounters.authFailures, 0, "nothing of the legitimate ring failed authentication");
  t.is(after.ring.readerCounters.replays, 0, "and nothing legitimate fell under the replay floor");
});

test("a private key file readable by others stops `lunlink up` with a clear error", async (t) => {
  const lab = await Lab.create({ prefix: NETNS_PREFIX, volumeBytes: 16 * 1024 * 1024, keys: true });
  t.teardown(() => lab.destroy());
  await chmod(join(lab.dir, "node1.key"), 0o644);
  const error = await t.throwsAsync(lab.startNode(1, 10_000));
  t.regex(error!.message, /node 1 exited/);
  const logs = await lab.exec(1, process.execPath, [lunlinkBin(), "up", "--config", lab.nodes[0].configPath]).catch((e: { stderr?: string }) => e.stderr ?? "");
  t.regex(logs, /ERR_LUNLINK_BAD_KEY: private key .*node1\.key is accessible by group or others \(mode 0644\): chmod 600 it/);
});
