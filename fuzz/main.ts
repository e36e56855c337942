// `npm run fuzz [-- --runs N] [target...]`: every fuzz target (fuzz/targets.ts) for N cases
// (default 100,000), with the seed printed; LUNLINK_SEED=<seed> replays a failure.
import { SEED as seed } from "../test/helpers/random.ts";
import { prepare, TARGETS } from "./targets.ts";

const args = process.argv.slice(2);
const runsAt = args.indexOf("--runs");
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 100_000;
const names = args.filter((a, i) => !a.startsWith("--") && (runsAt < 0 || i !== runsAt + 1));
await prepare();
let failed = 0;
for (const target of TARGETS.filter((t) => names.length === 0 || names.includes(t.name))) {
  const started = performance.now();
  const result = target.run(runs, seed);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (result.failed) {
    failed++;
    console.log(`FAIL ${target.name}: ${result.report ?? "failed"}`);
  } else console.log(`ok   ${target.name}: ${result.numRuns} cases in ${seconds} s (seed ${seed})`);
}
console.log(`${failed === 0 ? "all targets passed" : `${failed} target(s) failed`} (replay: LUNLINK_SEED=${seed} npm run fuzz)`);
process.exitCode = failed === 0 ? 0 : 1;
