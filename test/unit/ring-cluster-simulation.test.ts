// Deterministic cluster simulation (test/helpers/cluster-sim.ts): N real writers, one per region of an
// in-memory cluster volume, and N x (N - 1) real readers, acks travelling through the status blocks,
// under seeded faults (torn writes, writer restarts, whole nodes crashing and rejoining). Checked: one
// seed gives one run (identical traces and bytes); without crashes every node gets every frame
// addressed to it (or broadcast) exactly once and in order per sender and class, and nothing else;
// with crashes nothing is delivered twice, corrupt or to the wrong node, the surviving nodes still get
// everything between them, and no crashed peer holds a ring back for good (released after peerDownMs,
// reported). A failing seed replays: LUNLINK_SEED=<seed> npx ava test/unit/ring-cluster-simulation.test.ts
import test from "ava";

import { BROADCAST, FrameType } from "../../lib/format/layout.ts";
import { clusterImage, simulateCluster, type Frame } from "../helpers/cluster-sim.ts";
import { logSeed, simulationSeeds } from "../helpers/random.ts";

const SEEDS = simulationSeeds();
const STEPS = 1500;

/** Frames of `from` that `to` must get: addressed to it or broadcast. */
const owed = (appended: Frame[], from: number, to: number) => appended.filter((f) => f.from === from && (f.to === to || f.to === BROADCAST)).map((f) => f.id);

function checkDeliveries(t: import("ava").ExecutionContext, what: string, nodes: number, result: Awaited<ReturnType<typeof simulateCluster>>): void {
  const { delivered, problems, appended, everCrashed } = result;
  t.deepEqual(problems, [], what);
  for (let to = 1; to <= nodes; to++) {
    const got = delivered.get(to)!;
    const ids = got.map((f) => f.id);
    t.is(new Set(ids).size, ids.length, `${what}: node ${to} got a frame twice`);
    t.true(got.every((f) => f.to === to || f.to === BROADCAST), `${what}: node ${to} got another node's frame`);
    for (let from = 1; from <= nodes; from++) {
      if (from === to) continue;
      for (const type of [FrameType.Control, FrameType.Data]) {
        const order = got.filter((f) => f.from === from && f.type === type).map((f) => f.id);
        t.deepEqual(order, [...order].sort((a, b) => a - b), `${what}: ${from} -> ${to}, class ${type} out of order`);
      }
      // Between two nodes that never crashed, nothing is lost.
      if (!everCrashed.has(from) && !everCrashed.has(to)) {
        t.deepEqual(got.filter((f) => f.from === from).map((f) => f.id).sort((a, b) => a - b), owed(appended, from, to), `${what}: ${from} -> ${to} lost or gained frames`);
      }
    }
  }
}

test("cluster determinism: one seed run twice gives the identical trace and identical volume bytes (4 nodes, crashes)", async (t) => {
  const seed = SEEDS[0]!;
  logSeed(t, "simulation", seed);
  const image = await clusterImage(4);
  const first = await simulateCluster(seed, { nodes: 4, steps: 800, crashes: true }, image);
  const second = await simulateCluster(seed, { nodes: 4, steps: 800, crashes: true }, image);
  t.true(first.trace.length > 1000 && first.trace.some((e) => / record /.test(e)), "a trace of a real run");
  t.deepEqual(second.trace, first.trace, `seed ${seed}: the two runs diverged`);
  t.is(second.imageHash, first.imageHash, `seed ${seed}: the volumes differ`);
  t.log(`seed ${seed}: ${first.trace.length} events, ${first.appended.length} frames, volume sha256 ${first.imageHash.slice(0, 16)} both times`);
});

for (const nodes of [2, 3, 5]) {
  test(`cluster simulation, ${nodes} nodes, benign faults (torn writes, writer restarts): every frame to its destination exactly once`, async (t) => {
    for (const seed of SEEDS) {
      logSeed(t, "simulation", seed);
      const result = await simulateCluster(seed, { nodes, steps: STEPS, crashes: false });
      const what = `seed ${seed}, ${nodes} nodes`;
      t.true(result.drained, `${what}: the writers did not drain within ${result.drainSteps} steps`);
      checkDeliveries(t, what, nodes, result);
      t.is(result.lost, 0n, what);
      t.is(result.released.peersReleased, 0, `${what}: a live peer was released`);
      t.true(result.appended.some((f) => f.to === BROADCAST) && result.appended.some((f) => f.to !== BROADCAST), `${what}: both kinds of destination sent`);
      t.log(`${what}: ${result.appended.length} frames, delivered ${[...result.delivered.values()].reduce((s, d) => s + d.length, 0)}, faults ${JSON.stringify(result.faults)}`);
    }
  });
}

test("cluster simulation, 4 nodes, nodes crash and rejoin: no ring held back for good, survivors lose nothing", async (t) => {
  let crashes = 0;
  for (const seed of SEEDS) {
    logSeed(t, "simulation", seed);
    const result = await simulateCluster(seed, { nodes: 4, steps: STEPS, crashes: true });
    const what = `seed ${seed}, 4 nodes, crashes`;
    t.true(result.drained, `${what}: a writer stayed blocked (a crashed peer held its ring back?) after ${result.drainSteps} drain steps`);
    checkDeliveries(t, what, 4, result);
    if (result.faults.crashes > 0) t.true(result.released.peersReleased > 0, `${what}: ${result.faults.crashes} crash(es) but no peer released`);
    crashes += result.faults.crashes;
    t.log(`${what}: ${result.appended.length} frames, faults ${JSON.stringify(result.faults)}, ${JSON.stringify(result.released)}, lost records ${result.lost}`);
  }
  t.true(crashes > 0, "the seeds produced at least one crash");
});
