// `npm run bench -- <suite> [options]`: benchmarks side by side with reference tools, printed as
// tables with ratios. Suites: raw (addon O_DIRECT vs fio psync), codec (checksums, record encode/decode), ring (RingWriter vs fio), latency (writer -> poller vs a C probe), mirror (resync vs dd), tun (packets/s
// per core through a TunDevice, in a network namespace it creates), link (failover over N cuts; RTT and TCP through lunlink0 vs veth and wireguard-go), seal (sealed UDP cost), pressure (false
// transitions of an uncut pair with and without a CPU hog on every core), layout (buffer-layout vs
// DataView for the cold structures), idle (CPU of an idle node and mirror), cluster (failover, idle CPU,
// storage reads and TCP over storage per cluster size N, --nodes 2,3,5 by default); `all` runs every suite
// with its defaults, one after another, in one run (the README's tables come from one such run).
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";

import { clusterBench } from "./cluster.ts";
import { codecBench } from "./codec.ts";
import { idleBench } from "./idle.ts";
import { latencyBench } from "./latency.ts";
import { layoutBench } from "./layout.ts";
import { linkBench } from "./link.ts";
import { mirrorBench } from "./mirror.ts";
import { pressureBench } from "./pressure.ts";
import { rawBench } from "./raw.ts";
import { ringBench } from "./ring.ts";
import { sealBench } from "./seal.ts";
import { tunBench } from "./tun.ts";

const SUITES: Record<string, (args: string[]) => Promise<void>> = {
  raw: rawBench,
  codec: codecBench,
  ring: ringBench,
  latency: latencyBench,
  mirror: mirrorBench,
  tun: tunBench,
  link: linkBench,
  seal: sealBench,
  pressure: pressureBench,
  layout: layoutBench,
  idle: idleBench,
  cluster: clusterBench,
};

async function allBench(args: string[]): Promise<void> {
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  console.log(`# bench all: commit ${commit}, started ${new Date().toISOString()}`);
  for (const [name, bench] of Object.entries(SUITES)) {
    console.log(`\n## ${name} (started ${new Date().toISOString()}, load ${loadavg().map((l) => l.toFixed(2)).join(" ")})\n`);
    // raw measures the built dist/ (bench/built-lib.ts), the other suites lib/: one process may load
    // only one copy of the library (each would init the addon's one completion dispatcher).
    if (name === "raw") execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "raw", ...args], { stdio: "inherit" });
    else await bench(args);
  }
  console.log(`\n# bench all: ended ${new Date().toISOString()}`);
}

const [suite = "raw", ...rest] = process.argv.slice(2);
const run = suite === "all" ? allBench : SUITES[suite];
if (run === undefined) {
  console.error(`unknown bench suite ${JSON.stringify(suite)}; suites: ${Object.keys(SUITES).join(", ")}, all`);
  process.exit(2);
}
await run(rest);
