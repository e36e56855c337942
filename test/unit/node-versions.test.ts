// Every supported Node.js major (20.19+, 22, 24) must load the addon and exit cleanly after handing
// out native-owned blocks: each version runs node-versions.child.ts in a child process, which keeps
// blocks alive until exit, and must exit 0 with no FATAL ERROR (Node 24 once aborted in
// Environment::RunCleanup, see addon/buffer.h). Binaries: test/helpers/node-matrix.ts.
import test from "ava";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { NODE_MAJORS, nodeBinaryOrReport } from "../helpers/node-matrix.ts";
import { sparseFile } from "../helpers/scratch.ts";

const CHILD_TIMEOUT_MS = 120_000; // generous: two cores shared with other test processes
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHILD = join(ROOT, "test/unit/node-versions.child.ts");

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runChild(binary: string, scratchFile: string): Promise<ChildRun> {
  return new Promise((resolve) => {
    execFile(
      binary,
      ["--import=tsx", CHILD, scratchFile],
      { cwd: ROOT, timeout: CHILD_TIMEOUT_MS, killSignal: "SIGKILL", maxBuffer: 4 << 20 },
      (error, stdout, stderr) => {
        const failure = error as (Error & { code?: number | string; signal?: NodeJS.Signals | null }) | null;
        const code = failure === null ? 0 : typeof failure.code === "number" ? failure.code : null;
        resolve({ code, signal: failure?.signal ?? null, stdout, stderr });
      },
    );
  });
}

for (const major of NODE_MAJORS) {
  test.serial(`Node ${major}: native-owned blocks alive at exit, volume I/O on a file, clean exit`, async (t) => {
    const binary = nodeBinaryOrReport(t, major);
    if (binary === undefined) return;
    const run = await runChild(binary, await sparseFile(t, 1 << 20));
    const lines = run.stdout.trim().split("\n");
    t.log(`Node ${major} (${binary}): ${lines.at(-1) ?? ""}`);
    t.false(run.stderr.includes("FATAL ERROR"), run.stderr);
    t.is(run.signal, null, run.stderr);
    t.is(run.code, 0, run.stderr);
    const report = JSON.parse(lines.at(-1) ?? "{}") as { node?: string; sameRead?: boolean; received?: number };
    t.true(report.node?.startsWith(`v${major}.`), `ran under ${report.node}`);
    t.true(report.sameRead, "the data read back equals the data written");
    t.true((report.received ?? 0) >= 1, "the loopback datagram arrived");
  });
}
