// ava's command line with a TAP reporter that survives every failure it reports. ava 7's TAP reporter
// dies in two ways, and with it the failing test's name and the run's summary (both seen under a CPU hog):
// - supertap 3 dumps a failed test's error with js-yaml 3's safeDump, which throws on a field whose
//   value is undefined ("unacceptable kind of an object to dump [object Undefined]"): dump with
//   skipInvalid, so such a field is left out of the YAML block;
// - an inactivity timeout (and a worker's process.exit) hands the reporter a raw Error where it expects
//   ava's serialized error record ("Cannot set properties of undefined (setting 'name')", avajs/ava#3461,
//   unfixed in 7.0.0): wrap it into that record, so each pending test is reported as failed.
// Used by scripts/test.mjs; arguments are ava's. test/unit/test-runner.test.ts holds both cases.
import { createRequire } from "node:module";

// js-yaml as supertap resolves it (one module instance: supertap's ESM default import is this object).
const yaml = createRequire(import.meta.resolve("supertap"))("js-yaml");
const safeDump = yaml.safeDump;
yaml.safeDump = (value, options) => safeDump(value, { ...options, skipInvalid: true });

// ava's files next to its main entry point (not in its package exports).
const avaFile = (path) => new URL(path, import.meta.resolve("ava")).href;
const { default: TapReporter } = await import(avaFile("../lib/reporters/tap.js"));
const writeTest = TapReporter.prototype.writeTest;
TapReporter.prototype.writeTest = function writeTestOfAnyError(evt, flags) {
  const { err } = evt;
  if (err instanceof Error) {
    evt = { ...evt, err: { type: "native", name: err.name, message: err.message, stack: err.stack, originalError: err } };
  }
  return writeTest.call(this, evt, flags);
};

await import(avaFile("cli.mjs"));
