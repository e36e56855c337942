// `npm run mutation [-- NAME...]`: mutation testing with StrykerJS 9 over lib/format, lib/link, the ring's
// decision table and the pure parts of the ring and link shells.
// Stryker has no ava runner: by default mutants run through scripts/mutation/ava-runner.mjs, which
// loads a module's unit files once in one process (ava's API from a shim) with per-test coverage,
// so a run takes seconds to minutes. MUTATION_RUNNER=command uses Stryker's command runner instead
// (one real ava run per mutant, no coverage: slow, the cross-check of the in-process runner).
// One Stryker run per module, one after another. Prints module | mutants | killed | survived |
// timeout | no coverage | errors | score | time, and writes each module's survivors to
// reports/mutation/<module>.survivors.txt (the JSON report beside it). NAME selects modules by prefix
// ("link", "format/record"). MUTATION_CONCURRENCY (default 2) is Stryker's concurrency; `npm run
// mutation` runs under `nice -n 19`. Exit 1 when a module scores below 80%.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { Stryker } from "@stryker-mutator/core";

const unit = (...names) => names.map((name) => `test/unit/${name}.test.ts`);
const FORMAT_TESTS = unit("format-record", "format-blocks", "format-auth", "format-boundaries");

/** Each module: the files Stryker mutates and the unit files that test them (a file that does not exist yet is skipped). */
const MODULES = [
  ...["checksum", "kdf", "layout", "record", "record-cipher", "sealed", "status", "superblock", "uuid"].map((file) => ({
    name: `format/${file}`,
    mutate: [`lib/format/${file}.ts`],
    tests: FORMAT_TESTS,
  })),
  { name: "link/paths", mutate: ["lib/link/paths.ts"], tests: unit("link-core", "link-paths-boundaries", "link-core-counters") },
  { name: "link/window", mutate: ["lib/link/window.ts"], tests: unit("link-core", "link-window") },
  { name: "link/control", mutate: ["lib/link/control.ts"], tests: unit("link-core", "link-control") },
  { name: "link/seal", mutate: ["lib/link/seal.ts"], tests: unit("link-seal", "link-seal-boundaries") },
  // decide.ts memoizes tableRow per combination of facts in a module-level array: in one process the
  // rows cached before a mutant of the table's machinery (the table, rowMatches ... findRow, lines
  // 1-198) was switched on would hide it, and rows cached under such a mutant would fail the runs
  // after it. So those mutants run in a fresh process each (test files loaded anew); the rest of the
  // file cannot change what is cached, and shares one process as usual. One row, both parts summed.
  {
    name: "ring/decide",
    parts: [
      { mutate: ["lib/ring/decide.ts:1-198"], freshProcess: true },
      { mutate: ["lib/ring/decide.ts:199-401"] },
    ],
    tests: unit("ring-table", "ring-table-reader"),
  },
  // The pure parts split out of the reader, writer and link shells (issue 12).
  { name: "ring/reader-cursor", mutate: ["lib/ring/reader-cursor.ts"], tests: unit("reader-cursor") },
  { name: "ring/fault-memory", mutate: ["lib/ring/fault-memory.ts"], tests: unit("fault-memory", "ring-bounds") },
  { name: "ring/writer-open", mutate: ["lib/ring/writer-open.ts"], tests: unit("writer-pure") },
  { name: "ring/writer-waiters", mutate: ["lib/ring/writer-waiters.ts"], tests: unit("writer-pure") },
  { name: "ring/peer-holds", mutate: ["lib/ring/peer-holds.ts"], tests: unit("writer-pure", "writer-core", "ring-bounds") },
  { name: "link/delivery-batch", mutate: ["lib/link/delivery-batch.ts"], tests: unit("link-shell-parts") },
  { name: "link/control-waiting", mutate: ["lib/link/control-waiting.ts"], tests: unit("link-shell-parts") },
  { name: "link/link-status", mutate: ["lib/link/link-status.ts"], tests: unit("link-shell-parts") },
];

const REPORT_DIR = "reports/mutation";
/** A mutant whose run takes longer than (its tests' dry-run time x factor + this) is a timeout (counted as killed). */
const TIMEOUT_SLACK_MS = 15_000;
const TIMEOUT_FACTOR = 2;
/** A fixed seed: property and simulation tests draw the same cases for every mutant. */
const SEED = process.env.LUNLINK_SEED ?? "1";
const RUNNER = process.env.MUTATION_RUNNER ?? "ava-inprocess";

const filters = process.argv.slice(2);
const selected = MODULES.filter((m) => filters.length === 0 || filters.some((f) => m.name.startsWith(f)));
if (selected.length === 0) {
  console.error(`no module matches ${filters.join(" ")}; modules: ${MODULES.map((m) => m.name).join(", ")}`);
  process.exit(2);
}
const concurrency = Number(process.env.MUTATION_CONCURRENCY ?? 2);
mkdirSync(REPORT_DIR, { recursive: true });
process.env.LUNLINK_SEED = SEED;

function count(results) {
  const c = { mutants: 0, killed: 0, survived: 0, timeout: 0, noCoverage: 0, errors: 0 };
  for (const r of results) {
    c.mutants++;
    if (r.status === "Killed") c.killed++;
    else if (r.status === "Survived") c.survived++;
    else if (r.status === "Timeout") c.timeout++;
    else if (r.status === "NoCoverage") c.noCoverage++;
    else c.errors++; // RuntimeError, CompileError, Ignored: not valid mutants, outside the score
  }
  const valid = c.killed + c.survived + c.timeout + c.noCoverage;
  c.score = valid === 0 ? Number.NaN : (100 * (c.killed + c.timeout)) / valid;
  return c;
}

function survivorsText(module, results) {
  const lines = results
    .filter((r) => r.status === "Survived" || r.status === "NoCoverage")
    .sort((a, b) => a.location.start.line - b.location.start.line || a.location.start.column - b.location.start.column)
    .map((r) => `${r.fileName.replace(`${process.cwd()}/`, "")}:${r.location.start.line}:${r.location.start.column} ${r.status} ${r.mutatorName}: ${JSON.stringify(r.replacement)}`);
  return `# ${module.name}: ${lines.length} survivors\n${lines.join("\n")}\n`;
}

const HEADER = ["module", "mutants", "killed", "survived", "timeout", "no coverage", "errors", "score", "time"];
const cells = (r) => [r.name, r.mutants, r.killed, r.survived, r.timeout, r.noCoverage, r.errors, `${r.score.toFixed(1)}%`, `${Math.round(r.seconds)} s`].map(String);

function table(rows) {
  const all = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  const line = (row) => `| ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(all[0]), rule, ...all.slice(1).map(line)].join("\n");
}

const stem = (module) => module.name.replace("/", "-");

/** One Stryker run over `part.mutate` with the module's tests; its JSON report at `reportFile`. */
async function strykerRun(part, tests, reportFile) {
  const runner =
    RUNNER === "command"
      ? { testRunner: "command", coverageAnalysis: "off", commandRunner: { command: `node node_modules/ava/entrypoints/cli.mjs --config ava.config.js --fail-fast ${tests.join(" ")}` } }
      : { testRunner: "ava-inprocess", coverageAnalysis: "perTest", appendPlugins: [resolve("scripts/mutation/ava-runner.mjs")] };
  process.env.LUNLINK_MUTATION_TESTS = JSON.stringify(tests);
  const stryker = new Stryker({
    ...runner,
    mutate: part.mutate,
    concurrency,
    ...(part.freshProcess === true ? { maxTestRunnerReuse: 1 } : {}),
    timeoutMS: TIMEOUT_SLACK_MS,
    timeoutFactor: TIMEOUT_FACTOR,
    // /build: the sandbox (.stryker-tmp/sandbox-*/) finds build/Release/lunlink.node by walking up.
    // docs/format.md stays: ring-table checks that the spec's decision table and the code agree.
    ignorePatterns: ["/addon", "/bench", "/build", "/dist", "/docs/*", "!/docs/format.md", "/reports", "/test/device", "/test/native"],
    reporters: ["json", "progress"],
    jsonReporter: { fileName: reportFile },
    tempDirName: ".stryker-tmp",
    cleanTempDir: "always",
    logLevel: "warn",
    fileLogLevel: "off",
  });
  return stryker.runMutationTest();
}

const rows = [];
for (const module of selected) {
  const tests = module.tests.filter((file) => existsSync(file));
  const parts = module.parts ?? [{ mutate: module.mutate }];
  const startedMs = performance.now();
  const results = [];
  try {
    for (const [i, part] of parts.entries()) results.push(...(await strykerRun(part, tests, `${REPORT_DIR}/${stem(module)}${i === 0 ? "" : `.part${i + 1}`}.json`)));
  } catch (error) {
    // A failed dry run (a test that fails unmutated) ends this module, not the others.
    console.error(`${module.name}: Stryker failed: ${error instanceof Error ? error.message : String(error)}`);
    rows.push({ name: `${module.name} (failed)`, ...count([]), seconds: (performance.now() - startedMs) / 1000 });
    continue;
  }
  writeFileSync(`${REPORT_DIR}/${stem(module)}.survivors.txt`, survivorsText(module, results));
  rows.push({ name: module.name, ...count(results), seconds: (performance.now() - startedMs) / 1000 });
  console.log(`\n${table(rows.slice(-1))}\n`);
}

const text = table(rows);
console.log(`\n${text}`);
writeFileSync(`${REPORT_DIR}/summary.md`, `${text}\n`);
const below = rows.filter((r) => !(r.score >= 80));
if (below.length > 0) {
  console.log(`below the 80% target: ${below.map((r) => r.name).join(", ")}`);
  process.exitCode = 1;
}
