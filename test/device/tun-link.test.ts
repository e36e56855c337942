// End to end through real TUN devices: `lunlink up` on two hosts in network namespaces (the lab in
// lib/node/lab.ts: veth primary, loop devices with direct I/O and local mirrors for storage), ping and
// a checksummed TCP stream across the TUN addresses while the primary is cut, flaps, or the peer
// restarts. Asserted: the stream's SHA-256 and length end to end, replies after the cut, and the
// failovers/failbacks/peer restarts the nodes report. Needs the build in dist/ (npm test builds it).
import test from "ava";

import { Lab, lunlinkBin } from "../../lib/node/lab.ts";
import { sleep } from "../helpers/exec.ts";
import { upLab } from "../helpers/lab.ts";
import { generator, logSeed, SEED } from "../helpers/random.ts";

// Each ping waits up to REPLY_WAIT_S for its reply (Lab.ping): a storage round trip on a loaded
// host can take seconds, and the test is about whether replies come, not how fast.
const REPLY_WAIT_S = 10;
const ping = (lab: Lab, from: 1 | 2, count: number): Promise<number> => lab.ping(from, count, REPLY_WAIT_S);

test("ping and a TCP stream survive a cut of the primary: SHA-256 equal, traffic over storage, failback", async (t) => {
  const lab = await upLab(t);
  t.is(await ping(lab, 1, 3), 3, "ping over the primary");
  const bytes = 24 * 1024 * 1024;
  const stream = await lab.startStream(1, bytes, 8);
  await sleep(800);
  await lab.setPrimary(false);
  await lab.waitFor(1, "on storage", (s) => s.active === "storage");
  const replies = await ping(lab, 1, 5);
  if (replies < 4) t.log(JSON.stringify([(await lab.status(1)).counters, (await lab.status(2)).counters]));
  t.true(replies >= 4, "ping replies while the network is cut (over storage)");
  await sleep(1000);
  await lab.setPrimary(true);
  const { sent, received } = await stream.finished;
  t.is(received.bytes, bytes, "every byte arrived");
  t.is(received.sha256, sent.sha256, "and the stream's SHA-256 is the sender's");
  for (const id of [1, 2] as const) {
    const s = await lab.waitFor(id, "failed back", (x) => x.active === "primary" && x.failbacks >= 1);
    t.true(s.failovers >= 1, `node ${id}: failed over`);
    t.true(s.counters.received.storage > 100, `node ${id}: received over storage (${s.counters.received.storage} messages)`);
  }
});

test("a flapping primary (seeded up/down every 100-500 ms for 4 s): the TCP stream arrives intact", async (t) => {
  logSeed(t, "simulation");
  const random = generator(SEED);
  const lab = await upLab(t);
  const bytes = 24 * 1024 * 1024;
  const stream = await lab.startStream(1, bytes, 5);
  let up = true;
  let flaps = 0;
  for (const end = Date.now() + 4000; Date.now() < end; flaps++) {
    up = !up;
    await lab.setPrimary(up);
    await sleep(100 + Math.floor(random() * 400));
  }
  await lab.setPrimary(true);
  const { sent, received } = await stream.finished;
  t.is(received.bytes, bytes);
  t.is(received.sha256, sent.sha256, `intact through ${flaps} flaps`);
  const s = await lab.waitFor(1, "back on the primary", (x) => x.active === "primary", 15_000);
  t.true(s.failovers >= 1, `failed over at least once (${s.failovers} failovers, ${s.failbacks} failbacks)`);
  t.true(s.failbacks <= s.failovers, "never more failbacks than failovers");
});

test("the peer restarts (SIGKILL, then up again): node 1 notices the new session and traffic resumes", async (t) => {
  const lab = await upLab(t);
  t.is(await ping(lab, 1, 2), 2);
  await lab.stopNode(2, "kill");
  await lab.startNode(2);
  await lab.waitFor(2, "up on both paths", (s) => s.active === "primary" && s.paths.storage.state === "up");
  t.true((await ping(lab, 1, 3)) >= 2, "ping works again after the restart");
  const s = await lab.waitFor(1, "aware of the restart", (x) => x.counters.peerRestarts >= 1);
  t.is(s.counters.peerRestarts, 1);
});

test("both paths cut (veth down, mirror stopped): status says isolated, and recovery when the primary returns", async (t) => {
  const lab = await upLab(t);
  await lab.mirrors[0]!.stop();
  await lab.mirrors[1]!.stop();
  await lab.setPrimary(false);
  for (const id of [1, 2] as const) {
    const s = await lab.waitFor(id, "isolated", (x) => x.active === "isolated");
    t.is(s.paths.primary.state, "down");
    t.is(s.paths.storage.state, "down");
  }
  await lab.setPrimary(true);
  await lab.waitFor(1, "on the primary again", (x) => x.active === "primary");
  t.true((await ping(lab, 1, 3)) >= 2, "ping works again");
});

test("status and metrics of a running node: `lunlink status` (human and --json) and Prometheus text on loopback", async (t) => {
  const lab = await upLab(t, { config: { metrics: { listen: "127.0.0.1:9410" } } });
  const bin = lunlinkBin();
  await lab.waitFor(1, "up on both paths", (s) => s.paths.primary.state === "up" && s.paths.storage.state === "up");
  const human = await lab.exec(1, process.execPath, [bin, "status", "--socket", lab.nodes[0].socketPath]);
  t.regex(human, /node 1 <-> node 2: active path primary/);
  // Both paths were up when the wait ended; each status command takes seconds under CPU load, and a
  // beat missed since reads suspect (data still on the primary): the lines name the state either way.
  t.regex(human, /primary\s+(up|suspect)\s+last heard \d+ ms ago/);
  const json = JSON.parse(await lab.exec(1, process.execPath, [bin, "status", "--socket", lab.nodes[0].socketPath, "--json"])) as { active: string; paths: { storage: { state: string } } };
  t.is(json.active, "primary");
  t.true(["up", "suspect"].includes(json.paths.storage.state), `storage ${json.paths.storage.state}`);
  const metrics = await lab.exec(1, process.execPath, ["-e", "fetch('http://127.0.0.1:9410/metrics').then(async (r) => console.log(r.headers.get('content-type') + '\\n' + (await r.text())))"]);
  t.regex(metrics, /^text\/plain; version=0\.0\.4/);
  t.regex(metrics, /lunlink_path_state\{path="primary"\} 2/);
  t.regex(metrics, /lunlink_active_path\{path="primary"\} 1/);
  t.regex(metrics, /# TYPE lunlink_failovers_total counter\nlunlink_failovers_total 0/);
  const missing = await lab.exec(1, process.execPath, ["-e", "fetch('http://127.0.0.1:9410/other').then((r) => console.log(r.status))"]);
  t.is(missing.trim(), "404");
  // `lunlink down`: the node closes its TUN device and link and exits 0; the interface is gone.
  const node = lab.nodes[0].process!;
  const exited = new Promise<number | null>((resolve) => node.once("exit", (code) => resolve(code)));
  t.regex(await lab.exec(1, process.execPath, [bin, "down", "--socket", lab.nodes[0].socketPath]), /asked the node .* to go down/);
  t.is(await exited, 0, "lunlink up exited 0");
  const links = await lab.exec(1, "ip", ["link", "show"]);
  t.false(links.includes("lunlink0"), "lunlink0 is gone");
});

test("a local data flood through lunlink0 (far beyond the link's capacity) drops data, never the heartbeats: no failover", async (t) => {
  const lab = await upLab(t);
  const flood = lab.spawnIn(1, process.execPath, ["--import=tsx", "test/helpers/udp-flood.ts", `${lab.nodes[1].tunAddress}:9`, "150000", "blast"]);
  let out = "";
  flood.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  await new Promise((resolve) => flood.once("exit", resolve));
  const sent = (JSON.parse(out.trim()) as { sent: number }).sent;
  t.true(sent > 10_000, `the flood sent ${sent} datagrams`);
  for (const id of [1, 2] as const) {
    // A busy host may leave a path suspect for a moment; a heartbeat lost to the flood would fail over.
    const s = await lab.waitFor(id, "up on both paths", (x) => x.paths.primary.state === "up" && x.paths.storage.state === "up");
    t.is(s.failovers, 0, `node ${id}: no false failover under the flood`);
    t.is(s.active, "primary", `node ${id}: traffic still on the primary`);
  }
  t.true((await ping(lab, 1, 3)) >= 2, "the link still carries traffic after the flood");
});
