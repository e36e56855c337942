// ava's command line with a TAP reporter that survives every failure it reports. ava 7's TAP reporter
// (supertap 3) dumps a failed test's error with js-yaml 3's safeDump, which throws on a field whose value
// is undefined: the reporter then dies mid-run and the failing test's name is lost (seen under a CPU
// hog: "unacceptable kind of an object to dump [object Undefined]"). With skipInvalid such a field is
// left out of the YAML block and the run goes on. Used by scripts/test.mjs; arguments are ava's.
import { createRequire } from "node:module";

// js-yaml as supertap resolves it (one module instance: supertap's ESM default import is this object).
const requireFromSupertap = createRequire(import.meta.resolve("supertap"));
const yaml = requireFromSupertap("js-yaml");
const safeDump = yaml.safeDump;
yaml.safeDump = (value, options) => safeDump(value, { ...options, skipInvalid: true });

// ava's bin (not in its package exports): next to the main entry point.
await import(new URL("cli.mjs", import.meta.resolve("ava")).href);
