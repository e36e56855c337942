// `npm run mutation [-- NAME...]`: mutation testing with StrykerJS (command test runner: Stryker has
// no ava runner, so each mutant is one ava run of only the unit files that cover the module, with
// --fail-fast). One Stryker run per module, one after another, so a run stays bounded; prints
// module | mutants | killed | survived | timeout | no coverage | errors | score, and writes the
// survivors of each module to reports/mutation/<module>.survivors.txt (JSON report beside it).
// NAME selects modules by prefix ("link", "format/record"). MUTATION_CONCURRENCY (default 2) is
// Stryker's concurrency; `npm run mutation` runs this under `nice -n 19`.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Stryker } from "@stryker-mutator/core";

const unit = (...names) => names.map((name) => `test/unit/${name}.test.ts`);
/** lib/format/<file>.ts -> the format unit files that exercise it (all take format-boundaries). */
const FORMAT_TESTS = {
  checksum: unit("format-record"),
  kdf: unit("format-auth"),
  layout: unit("format-record", "format-blocks", "format-auth"),
  "record-cipher": unit("format-auth"),
  record: unit("format-record", "format-auth"),
  sealed: unit("format-blocks", "format-auth"),
  status: unit("format-blocks", "format-auth"),
  superblock: unit("format-blocks", "format-auth"),
  uuid: unit("format-record", "format-blocks"),
};

/**
 * Each module: the files Stryker mutates and the unit files whose failure kills a mutant (only
 * those, so one mutant costs one short ava run). A test file that does not exist (yet) is skipped.
 * The ring's decision table joins with one entry, e.g.
 *   { name: "ring/decide", mutate: ["lib/ring/decide*.ts"], tests: unit("ring-decide", "ring-auth") },
 */
const MODULES = [
  ...Object.entries(FORMAT_TESTS).map(([file, tests]) => ({
    name: `format/${file}`,
    mutate: [`lib/format/${file}.ts`],
    tests: [...tests, ...unit("format-boundaries")],
  })),
  { name: "link/paths", mutate: ["lib/link/paths.ts"], tests: unit("link-core", "link-paths-boundaries") },
  { name: "link/window", mutate: ["lib/link/window.ts"], tests: unit("link-core", "link-window") },
  { name: "link/control", mutate: ["lib/link/control.ts"], tests: unit("link-core", "link-control") },
  { name: "link/seal", mutate: ["lib/link/seal.ts"], tests: unit("link-seal", "link-seal-boundaries") },
];

const REPORT_DIR = "reports/mutation";
/** A mutant whose run takes longer than (dry run x factor + this) is a timeout (counted as killed). */
const TIMEOUT_SLACK_MS = 15_000;
const TIMEOUT_FACTOR = 2;

const filters = process.argv.slice(2);
const selected = MODULES.filter((m) => filters.length === 0 || filters.some((f) => m.name.startsWith(f)));
if (selected.length === 0) {
  console.error(`no module matches ${filters.join(" ")}; modules: ${MODULES.map((m) => m.name).join(", ")}`);
  process.exit(2);
}
const concurrency = Number(process.env.MUTATION_CONCURRENCY ?? 2);
mkdirSync(REPORT_DIR, { recursive: true });

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
    .map((r) => `${r.fileName}:${r.location.start.line}:${r.location.start.column + 1} ${r.status} ${r.mutatorName}: ${JSON.stringify(r.replacement)}`);
  return `# ${module.name}: ${lines.length} survivors\n${lines.join("\n")}\n`;
}

const rows = [];
for (const module of selected) {
  const tests = module.tests.filter((file) => existsSync(file));
  const startedMs = performance.now();
  const stryker = new Stryker({
    testRunner: "command",
    commandRunner: { command: `node node_modules/ava/entrypoints/cli.mjs --config ava.config.js --fail-fast ${tests.join(" ")}` },
    coverageAnalysis: "off",
    mutate: module.mutate,
    concurrency,
    timeoutMS: TIMEOUT_SLACK_MS,
    timeoutFactor: TIMEOUT_FACTOR,
    // /build: the sandbox (.stryker-tmp/sandbox-*/) finds build/Release/lunlink.node by walking up.
    ignorePatterns: ["/addon", "/bench", "/build", "/dist", "/docs", "/reports", "/test/device", "/test/native"],
    reporters: ["json", "progress"],
    jsonReporter: { fileName: `${REPORT_DIR}/${module.name.replace("/", "-")}.json` },
    tempDirName: ".stryker-tmp",
    cleanTempDir: "always",
    logLevel: "warn",
    fileLogLevel: "off",
  });
  const results = await stryker.runMutationTest();
  const seconds = (performance.now() - startedMs) / 1000;
  writeFileSync(`${REPORT_DIR}/${module.name.replace("/", "-")}.survivors.txt`, survivorsText(module, results));
  rows.push({ name: module.name, ...count(results), seconds });
}

const header = ["module", "mutants", "killed", "survived", "timeout", "no coverage", "errors", "score", "time"];
const table = [
  header,
  ...rows.map((r) => [r.name, r.mutants, r.killed, r.survived, r.timeout, r.noCoverage, r.errors, `${r.score.toFixed(1)}%`, `${Math.round(r.seconds)} s`].map(String)),
];
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
const line = (row) => `| ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(" | ")} |`;
const text = [line(table[0]), `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`, ...table.slice(1).map(line)].join("\n");
console.log(`\n${text}`);
writeFileSync(`${REPORT_DIR}/summary.md`, `${text}\n`);
const below = rows.filter((r) => !(r.score >= 80));
if (below.length > 0) {
  console.log(`below the 80% target: ${below.map((r) => r.name).join(", ")}`);
  process.exitCode = 1;
}
