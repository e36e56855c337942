// The fuzz targets (fuzz/targets.ts), short: 1000 cases each in every test run (npm run fuzz runs
// them for 100,000). Replay a failure: LUNLINK_SEED=<seed> npx ava test/unit/fuzz.test.ts
import test from "ava";

import { prepare, TARGETS } from "../../fuzz/targets.ts";
import { logSeed, SEED } from "../helpers/random.ts";


test.before(async () => {
  await prepare();
});

for (const target of TARGETS) {
  test(`fuzz ${target.name}: never throws uncoded, never accepts a forgery, ranges stay in bounds`, (t) => {
    logSeed(t);
    const result = target.run(1000, SEED);
    t.false(result.failed, result.report ?? "");
    t.is(result.numRuns, 1000);
  });
}
