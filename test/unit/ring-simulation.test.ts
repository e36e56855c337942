// Deterministic simulation: a seeded generator interleaves the real RingWriter and RingReader over an
// in-memory volume with faults (torn writes completed later, writer restarts, bit flips, a reader
// that falls behind) for thousands of steps, and checks what was delivered. The writer runs on a
// fake clock with seeded entropy, so the same seed gives the same run, every time (the first test
// shows it: one seed run twice gives identical event traces and identical volume bytes). A failing
// seed replays exactly: LUNLINK_SEED=<seed> npx ava test/unit/ring-simulation.test.ts
import test from "ava";

import { FrameType } from "../../lib/index.ts";
import { logSeed, simulationSeeds } from "../helpers/random.ts";
import { formattedImage, simulate } from "../helpers/ring-sim.ts";

const SEEDS = simulationSeeds();

test("determinism: one seed run twice gives the identical event trace and identical volume bytes", async (t) => {
  const seed = SEEDS[0]!;
  logSeed(t, "simulation", seed);
  for (const [hostile, key] of [[false, undefined], [true, new Uint8Array(32).fill(7)]] as const) {
    const image = await formattedImage(key);
    const first = await simulate(seed, hostile, key, image);
    const second = await simulate(seed, hostile, key, image);
    const what = `seed ${seed}, ${hostile ? "hostile, keyed" : "benign"}`;
    t.true(first.trace.length > 1000 && first.trace.some((e) => e.startsWith("record ")) && first.trace.some((e) => e.startsWith("open epoch")), `${what}: a trace of a real run`);
    t.deepEqual(second.trace, first.trace, `${what}: the two runs diverged`);
    t.is(second.imageHash, first.imageHash, `${what}: the volumes differ`);
    t.log(`${what}: ${first.trace.length} events, ${first.appended.length} frames, volume sha256 ${first.imageHash.slice(0, 16)} both times`);
  }
});

test("seeded simulation, benign faults (torn writes that complete, writer restarts): every frame exactly once", async (t) => {
  for (const seed of SEEDS) {
    logSeed(t, "simulation", seed);
    const { appended, delivered, problems, faults, reader } = await simulate(seed, false);
    t.deepEqual(problems, [], `seed ${seed}`);
    t.deepEqual(
      delivered.map((d) => d.id).sort((a, b) => a - b),
      appended.map((a) => a.id),
      `seed ${seed}: delivered frames differ from appended ones`,
    );
    for (const type of [FrameType.Control, FrameType.Data]) {
      const ofType = delivered.filter((d) => d.type === type).map((d) => d.id);
      t.deepEqual(ofType, [...ofType].sort((a, b) => a - b), `seed ${seed}: class ${type} out of order`);
    }
    t.is(reader.counters.lost, 0n, `seed ${seed}`);
    t.log(`seed ${seed}: ${appended.length} frames, epochs ${reader.counters.epochChanges}, torn seen ${reader.counters.tornSeen}, faults ${JSON.stringify(faults)}`);
  }
});

for (const keyed of [false, true]) {
test(`seeded simulation, hostile faults (bit flips, lost torn writes, overwritten slow reader)${keyed ? ", keyed ring" : ""}: nothing twice, nothing corrupt, losses counted`, async (t) => {
  for (const seed of SEEDS) {
    logSeed(t, "simulation", seed);
    const { appended, delivered, problems, faults, reader } = await simulate(seed, true, keyed ? new Uint8Array(32).fill(seed & 0xff) : undefined);
    t.deepEqual(problems, [], `seed ${seed}`);
    const ids = delivered.map((d) => d.id);
    t.is(new Set(ids).size, ids.length, `seed ${seed}: a frame was delivered twice`);
    for (const type of [FrameType.Control, FrameType.Data]) {
      const ofType = delivered.filter((d) => d.type === type).map((d) => d.id);
      t.deepEqual(ofType, [...ofType].sort((a, b) => a - b), `seed ${seed}: class ${type} out of order`);
    }
    const missing = appended.length - delivered.length;
    if (missing > 0) {
      // Whatever did not arrive must be accounted for by a counted loss or damage.
      t.true(reader.counters.lost > 0n || reader.counters.damaged > 0, `seed ${seed}: ${missing} frames missing with no loss counted`);
    }
    t.log(`seed ${seed}: appended ${appended.length}, delivered ${delivered.length}, lost records ${reader.counters.lost}, damaged ${reader.counters.damaged}, overruns ${reader.counters.overruns}, epochs ${reader.counters.epochChanges}, auth failures ${reader.counters.authFailures}, faults ${JSON.stringify(faults)}`);
  }
});
}
