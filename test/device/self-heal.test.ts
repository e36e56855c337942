// The storage path heals itself, end to end: two `lunlink up` nodes in network namespaces, the
// primary cut so every packet rides storage, pings running. Either node 1's send volume is node 2's
// receive volume (one shared LUN: a loop device over nbdfuse/nbdkit, or a sparse file on a small
// ext4), or only node 2's receive volume is the faulty device (fed by a local mirror the test
// restarts when it fails: mirror supervision is the mirror's own business). The test stalls the
// device (SIGSTOP) past ioTimeoutMs, fails it with an EIO burst, or fills the file system under it
// (ENOSPC). Each time: the faults show in `lunlink status` (the stalled writer
// with its parked requests, the retrying component and its code), and once the device answers again
// the storage path comes back by itself (no restart): both components up, the storage path up on
// both nodes, pings answered, faults = recoveries. Recovery times are logged (outcomes asserted, with
// a generous bound, never durations).
import { execFile } from "node:child_process";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import test, { type ExecutionContext } from "ava";

import { Volume } from "../../lib/io/volume.ts";
import type { LinkStatus } from "../../lib/link/link.ts";
import { Lab, lunlinkBin } from "../../lib/node/lab.ts";
import { LocalMirror } from "../../lib/mirror/local.ts";
import { formatVolume, openSuperblock } from "../../lib/ring/superblocks.ts";
import { fillFileSystem, mountExt4 } from "../helpers/ext4.ts";
import { sleep } from "../helpers/exec.ts";
import { upLab } from "../helpers/lab.ts";
import { finishPeers, startPeers } from "../helpers/link-peers.ts";
import { faultDevice } from "../helpers/nbd.ts";
import { NETNS_PREFIX } from "../helpers/netns.ts";

const execFileAsync = promisify(execFile);
const IO_TIMEOUT_MS = 500;
/** Generous bound (CPU pressure, two cores shared) for "the storage path is back" after the device heals. */
const RECOVERY_BOUND_MS = 15_000;
const RING_BLOCKS = 1024n;

/**
 * A lab whose node 1 -> node 2 storage direction is one shared volume at `shared` (formatted here as
 * node 1's send volume), or (`receiveOnly`) whose node 2 receive volume is `shared`, a mirror of
 * node 1's send volume; with the primary cut and pings from node 1 to node 2 running.
 */
async function healLab(t: ExecutionContext, shared: string, receiveOnly = false, upNodes = true): Promise<Lab> {
  const logs: string[] = [];
  const lab = await Lab.create({ prefix: NETNS_PREFIX, loopDevices: false, volumeBytes: 16 * 1024 * 1024, onLog: (node, line) => logs.length < 4000 && logs.push(`${node} ${line}`) });
  t.teardown(async () => {
    if (!t.passed) t.log(logs.filter((l) => /storage|transition|error/.test(l)).slice(-40).join("\n"));
    await lab.destroy();
  });
  const [n1, n2] = lab.nodes;
  // The lab's mirror of node 1's file stops: the shared volume replaces both ends of that direction.
  await lab.mirrors[0]!.stop();
  if (receiveOnly) await keepMirroring(t, n1.send, shared);
  else {
    const existing = await Volume.open(n1.send, { readOnly: true });
    const { pairUuid } = (await openSuperblock(existing)).superblock;
    await existing.close();
    const volume = await Volume.open(shared, { dsync: true });
    await formatVolume(volume, { writerNode: 1, peerNode: 2, pairUuid, ringBlocks: RING_BLOCKS });
    await volume.close();
  }
  const storage = { ioTimeoutMs: IO_TIMEOUT_MS, recovery: { backoffMinMs: 50, backoffMaxMs: 500 } };
  for (const [node, key] of [
    [n1, "send"],
    [n2, "receive"],
  ] as const) {
    if (receiveOnly && key === "send") continue;
    const { readFile, writeFile } = await import("node:fs/promises");
    const config = JSON.parse(await readFile(node.configPath, "utf8")) as { storage: Record<string, unknown> };
    config.storage = { ...config.storage, ...storage, [key]: shared };
    await writeFile(node.configPath, `${JSON.stringify(config, null, 2)}\n`);
  }
  if (!upNodes) return lab;
  await lab.startPair(15_000);
  await lab.setPrimary(false);
  for (const id of [1, 2] as const) await lab.waitFor(id, "on storage", (s) => s.active === "storage", 10_000);
  // Traffic through the TUN, over storage, for the whole test (bounded by ping's own deadline).
  lab.spawnIn(1, "ping", ["-q", "-i", "0.05", "-s", "1000", "-w", "55", n2.tunAddress]);
  return lab;
}

/**
 * A local mirror source -> destination that is started again whenever it fails (after the
 * destination answers again): a stand-in for the mirror's own supervision, so the faults below
 * test the node's receive side alone. Stopped in teardown.
 */
async function keepMirroring(t: ExecutionContext, sourcePath: string, destinationPath: string): Promise<void> {
  const source = await Volume.open(sourcePath, { readOnly: true });
  const destination = await Volume.open(destinationPath, { ioTimeoutMs: IO_TIMEOUT_MS });
  const mirror = await LocalMirror.open(source, destination, { statusCopyMs: 5, pollMinUs: 50, pollMaxMs: 2, force: true });
  let stopped = false;
  mirror.on("error", () => {
    void (async () => {
      for (let i = 0; i < 600 && !stopped && destination.stalled; i++) await sleep(50);
      await sleep(100);
      if (!stopped) mirror.start();
    })();
  });
  const resynced = new Promise<void>((resolve) => mirror.once("resync", () => resolve()));
  mirror.start();
  await resynced;
  t.teardown(async () => {
    stopped = true;
    await mirror.stop().catch(() => undefined);
    await source.close().catch(() => undefined);
    await destination.close().catch(() => undefined);
  });
}

const healthy = (s: LinkStatus): boolean => s.storage.state === "up" && s.paths.storage.state === "up" && s.active === "storage";

/** Waits until both nodes' storage paths are up again; returns the time it took per node. */
async function recovered(lab: Lab, sinceMs: number): Promise<[number, number]> {
  const at: (number | undefined)[] = [undefined, undefined];
  const deadline = Date.now() + RECOVERY_BOUND_MS;
  let last: LinkStatus[] = [];
  while (at.some((x) => x === undefined)) {
    if (Date.now() > deadline) throw new Error(`storage path not back within ${RECOVERY_BOUND_MS} ms: ${last.map((s) => `node ${s.node}: ${s.active}, path ${s.paths.storage.state}, local ${s.storage.state} (send ${s.storage.send.state}, receive ${s.storage.receive.state})`).join("; ")}`);
    last = await Promise.all([lab.status(1), lab.status(2)]);
    last.forEach((s, i) => {
      if (at[i] === undefined && healthy(s)) at[i] = Date.now() - sinceMs;
    });
    await sleep(25);
  }
  return at as [number, number];
}

async function statusText(lab: Lab, id: 1 | 2): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [lunlinkBin(), "status", "--socket", lab.nodes[id - 1]!.socketPath], { encoding: "utf8", timeout: 10_000 });
  return stdout;
}

/** Pings answered over storage (after a recovery). */
async function pingsAnswered(t: ExecutionContext, lab: Lab): Promise<void> {
  const out = await lab.exec(1, "ping", ["-c", "5", "-i", "0.2", "-W", "2", lab.nodes[1].tunAddress]);
  t.regex(out, /[1-5] received/, "pings answered over the healed storage path");
}

test("the shared volume stalls past ioTimeoutMs, then fails with an EIO burst: the writer on node 1 and the reader on node 2 come back each time", async (t) => {
  const fault = await faultDevice(t, 32);
  const lab = await healLab(t, fault.device);

  // 1. Stall (a multipath failover queueing I/O): both components report it, nothing is retried blindly.
  fault.stop();
  const stalled1 = await lab.waitFor(1, "send volume stalled", (s) => s.storage.send.state === "stalled", 10_000);
  const stalled2 = await lab.waitFor(2, "receive volume stalled", (s) => s.storage.receive.state === "stalled", 10_000);
  t.true(stalled1.storage.send.parked >= 1, `node 1: ${stalled1.storage.send.parked} request(s) parked`);
  t.is(stalled1.storage.send.fault?.code, "ERR_LUNLINK_IO_STALLED");
  t.is(stalled2.storage.receive.fault?.code, "ERR_LUNLINK_IO_STALLED");
  const text = await statusText(lab, 1);
  t.regex(text, /storage {2}recovering {2}send volume stalled \d+\.\d s \(\d+ requests? parked\)/, text);
  await sleep(1500); // the stall outlives ioTimeoutMs three times over
  const during = await lab.status(1);
  t.is(during.storage.send.state, "stalled", "still waiting for the device, not retrying");
  t.is(during.storage.send.counters.failedAttempts, 0, "no reopen attempt while requests are parked");
  const resumedAt = Date.now();
  fault.resume();
  const stallRecovery = await recovered(lab, resumedAt);
  t.log(`stall released: storage path back on node 1 after ${stallRecovery[0]} ms, node 2 after ${stallRecovery[1]} ms`);

  // 2. An EIO burst: retried with backoff until the device answers.
  await fault.setFailing(true);
  const eio1 = await lab.waitFor(1, "send volume retrying", (s) => s.storage.send.state === "retrying", 10_000);
  const eio2 = await lab.waitFor(2, "receive volume retrying", (s) => s.storage.receive.state === "retrying", 10_000);
  t.is(eio1.storage.send.fault?.code, "ERR_LUNLINK_IO_ERROR");
  t.is(eio2.storage.receive.fault?.code, "ERR_LUNLINK_IO_ERROR");
  const eioText = await statusText(lab, 1);
  t.regex(eioText, /storage {2}recovering {2}send volume IO_ERROR \d+\.\d s ago, attempt \d+/, eioText);
  await sleep(1500);
  const healedAt = Date.now();
  await fault.setFailing(false);
  const eioRecovery = await recovered(lab, healedAt);
  t.log(`EIO burst over: storage path back on node 1 after ${eioRecovery[0]} ms, node 2 after ${eioRecovery[1]} ms`);

  await pingsAnswered(t, lab);
  const [s1, s2] = await Promise.all([lab.status(1), lab.status(2)]);
  t.true(s1.storage.send.counters.faults >= 2, `node 1 writer faults: ${s1.storage.send.counters.faults}`);
  t.is(s1.storage.send.counters.recoveries, s1.storage.send.counters.faults, "node 1: every writer fault healed");
  t.true(s2.storage.receive.counters.faults >= 2, `node 2 reader faults: ${s2.storage.receive.counters.faults}`);
  t.is(s2.storage.receive.counters.recoveries, s2.storage.receive.counters.faults, "node 2: every reader fault healed");
  t.true(s1.storage.send.counters.failedAttempts >= 1, "node 1 retried during the EIO burst");
  t.is(s1.storage.receive.counters.faults, 0, "node 1's own receive volume was never touched");
  t.is(s2.storage.send.counters.faults, 0, "node 2's own send volume was never touched");
  t.true(BigInt(s1.ring.headSeq) > 0n);
});

test("node 2's receive volume alone stalls, then fails with an EIO burst: its reader comes back, node 1's writer never notices", async (t) => {
  const fault = await faultDevice(t, 16);
  const lab = await healLab(t, fault.device, true);

  fault.stop();
  const stalled = await lab.waitFor(2, "receive volume stalled", (s) => s.storage.receive.state === "stalled", 10_000);
  t.is(stalled.storage.receive.fault?.code, "ERR_LUNLINK_IO_STALLED");
  const text = await statusText(lab, 2);
  t.regex(text, /storage {2}recovering {2}receive volume stalled \d+\.\d s \(\d+ requests? parked\)/, text);
  await sleep(1500);
  const resumedAt = Date.now();
  fault.resume();
  const stallRecovery = await recovered(lab, resumedAt);
  t.log(`receive stall released: storage path back on node 1 after ${stallRecovery[0]} ms, node 2 after ${stallRecovery[1]} ms`);

  await fault.setFailing(true);
  const eio = await lab.waitFor(2, "receive volume retrying", (s) => s.storage.receive.state === "retrying", 10_000);
  t.is(eio.storage.receive.fault?.code, "ERR_LUNLINK_IO_ERROR");
  await sleep(1500);
  const healedAt = Date.now();
  await fault.setFailing(false);
  const eioRecovery = await recovered(lab, healedAt);
  t.log(`receive EIO burst over: storage path back on node 1 after ${eioRecovery[0]} ms, node 2 after ${eioRecovery[1]} ms`);

  await pingsAnswered(t, lab);
  const [s1, s2] = await Promise.all([lab.status(1), lab.status(2)]);
  t.true(s2.storage.receive.counters.faults >= 2, `node 2 reader faults: ${s2.storage.receive.counters.faults}`);
  t.is(s2.storage.receive.counters.recoveries, s2.storage.receive.counters.faults, "node 2: every reader fault healed");
  t.is(s1.storage.send.counters.faults, 0, "node 1's writer (on its own volume) never failed");
  t.is(s2.storage.send.counters.faults, 0, "node 2's writer never failed");
});

test("ENOSPC on a sparse file volume: the writer reports NO_SPACE, and is back once the file system has space", async (t) => {
  const mountpoint = await mountExt4(t, 24);
  const shared = join(mountpoint, "node1-send.img");
  const handle = await open(shared, "w");
  await handle.truncate(16 * 1024 * 1024); // sparse: ring blocks are allocated on first write
  await handle.close();
  const lab = await healLab(t, shared);

  // Fill the file system: the writer's next record lands in a hole that cannot be allocated.
  const filler = await fillFileSystem(mountpoint, 32);
  const full = await lab.waitFor(1, "send volume out of space", (s) => s.storage.send.fault?.code === "ERR_LUNLINK_NO_SPACE", 15_000);
  t.true(full.storage.send.counters.faults >= 1);

  await sleep(1000);
  const freedAt = Date.now();
  await rm(filler);
  const recovery = await recovered(lab, freedAt);
  t.log(`space freed: storage path back on node 1 after ${recovery[0]} ms, node 2 after ${recovery[1]} ms`);
  // The path carries traffic again, and keeps its head moving into newly allocated blocks.
  const before = BigInt((await lab.status(1)).ring.headSeq);
  await pingsAnswered(t, lab);
  const after = await lab.status(1);
  t.true(BigInt(after.ring.headSeq) > before, "records written after the recovery");
  t.is(after.storage.state, "up");
  t.true(after.storage.send.counters.recoveries >= 1, `recoveries ${after.storage.send.counters.recoveries}`);
});

test("the mirror stops, then starts again: the storage path is down with both nodes' volumes fine, and comes back without a restart", async (t) => {
  const lab = await upLab(t, { loopDevices: false, volumeBytes: 16 * 1024 * 1024 });
  await lab.mirrors[1]!.stop(); // node 2 -> node 1
  const s1 = await lab.waitFor(1, "storage down", (s) => s.paths.storage.state === "down", 10_000);
  t.is(s1.paths.storage.reason, "rx", "node 1 hears nothing over storage");
  t.is(s1.storage.state, "up", "node 1's own volumes are fine: the mirror's fault, not the node's");
  const text = await statusText(lab, 1);
  t.regex(text, /storage {2}down +last heard \d+ ms ago \(rx\) \(local volumes fine: the mirror or the peer\)/, text);
  const restartedAt = Date.now();
  lab.mirrors[1]!.start();
  const back = await Promise.all([1, 2].map((id) => lab.waitFor(id as 1 | 2, "storage up", (s) => s.paths.storage.state === "up", RECOVERY_BOUND_MS)));
  t.log(`mirror restarted: storage path up again after ${Date.now() - restartedAt} ms`);
  for (const s of back) t.is(s.storage.send.counters.faults + s.storage.receive.counters.faults, 0, `node ${s.node}: no local storage fault`);
});

test("control exactly once and in order, data never twice, across a stall and an EIO burst of the shared volume (Link peers, primary cut)", async (t) => {
  const fault = await faultDevice(t, 32);
  const lab = await healLab(t, fault.device, false, false);
  // test/helpers/link-peer.ts: numbered control (every 5 ms) and data (4 per 5 ms) both ways, through Link.
  const peers = await startPeers(lab, 2000, 8000);
  await sleep(1000);
  await lab.setPrimary(false);
  await sleep(1500);
  fault.stop();
  await sleep(2000); // past ioTimeoutMs (500): stalled on both nodes
  fault.resume();
  await sleep(1500);
  await fault.setFailing(true);
  await sleep(1500);
  await fault.setFailing(false);
  await sleep(1500);
  const [a, b] = await finishPeers(peers);
  for (const [r, who] of [
    [a!, "node 1"],
    [b!, "node 2"],
  ] as const) {
    t.deepEqual(r.control, Array.from({ length: 2000 }, (_, i) => i), `${who}: every control message once, in order`);
    t.is(r.dataDuplicatesDelivered, 0, `${who}: no data message delivered twice`);
    t.is(r.status.storage.state, "up", `${who}: storage healed`);
    t.true(r.status.counters.received.storage > 0, `${who}: received over storage`);
  }
  const w = a!.status.storage.send.counters;
  const rd = b!.status.storage.receive.counters;
  t.true(w.faults >= 2 && w.recoveries === w.faults, `node 1 writer: ${w.faults} faults, ${w.recoveries} recoveries`);
  t.true(rd.faults >= 2 && rd.recoveries === rd.faults, `node 2 reader: ${rd.faults} faults, ${rd.recoveries} recoveries`);
  t.log(`data dropped on the storage path while it recovered: node 1 ${a!.status.counters.dataDroppedStorage}; control retransmits node 1 ${a!.status.counters.controlRetransmits}, node 2 ${b!.status.counters.controlRetransmits}`);
});
