// Issue 15 on a real `lunlink up` pair (lab: two namespaces, loop devices, a local mirror each way):
// a cut of the primary shows up in node 1's timeline with its reasons (status and status --json), in
// `status --watch` (plain frames: stdout is a pipe here) and in the Prometheus endpoint served with
// prom-client: the failover histogram counts it, one-way storage latency has records, the process
// metrics are there. Outcomes only; no timing is asserted.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import test from "ava";

import { lunlinkBin } from "../../lib/node/lab.ts";
import { upLab } from "../helpers/lab.ts";

const execFileAsync = promisify(execFile);
const METRICS = "127.0.0.1:9471";

async function lunlink(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [lunlinkBin(), ...args], { encoding: "utf8", timeout: 30_000 });
  return stdout;
}

test("a primary cut: timeline with reasons in status and --json, status --watch frames, failover in the metrics histogram", async (t) => {
  const lab = await upLab(t, { config: { metrics: { listen: METRICS } } });
  const socket = lab.nodes[0].socketPath;
  await lab.setPrimary(false);
  await lab.waitFor(1, "on storage after the cut", (s) => s.active === "storage", 20_000);

  const json = JSON.parse(await lunlink("status", "--socket", socket, "--json")) as { timeline: { kind: string; subject: string; from: string; to: string; reason: string; at: string }[] };
  t.true(json.timeline.length > 0 && json.timeline.length <= 32, `timeline bounded (${json.timeline.length})`);
  const down = json.timeline.find((e) => e.kind === "path" && e.subject === "primary" && e.to !== "up");
  t.truthy(down, "the primary's fall is on the timeline");
  t.regex(down?.reason ?? "", /nothing heard from the peer \(rx\)|one-way \(tx\)/);
  const failover = json.timeline.find((e) => e.kind === "active" && e.from === "primary" && e.to === "storage");
  t.truthy(failover, "and the failover");
  t.regex(failover?.reason ?? "", /primary (suspect|down)/);
  t.false(Number.isNaN(Date.parse(failover?.at ?? "")), "with a wall-clock time");

  const text = await lunlink("status", "--socket", socket);
  t.regex(text, /active path storage/);
  t.regex(text, /timeline \(last \d+ of \d+.*\):\n(.*\n)*.*primary -> storage/);

  const watched = await lunlink("status", "--socket", socket, "--watch", "--interval", "0.2", "--count", "3");
  t.is(watched.match(/^Every 0\.2s: lunlink status --socket .* --interval 0\.2 --count 3 {2}/gm)?.length, 3, "three plain frames");
  t.is(watched.match(/active path storage/g)?.length, 3);
  t.false(watched.includes("\x1b"), "no escape sequences when stdout is not a terminal");
  // On a terminal (script(1) gives it a pty): redrawn in place, cursor hidden and shown again.
  const command = [process.execPath, lunlinkBin(), "status", "--socket", socket, "--watch", "--interval", "0.2", "--count", "2"].join(" ");
  const { stdout: screen } = await execFileAsync("script", ["-qec", command, "/dev/null"], { encoding: "utf8", timeout: 30_000 });
  t.is(screen.split("\x1b[H").length - 1, 2, "two frames, each from the cursor's home");
  t.true(screen.includes("\x1b[?25l") && screen.includes("\x1b[?25h"), "cursor hidden while watching, shown at the end");
  t.regex(screen, /active path storage\x1b\[K/);
  t.log(`status:\n${text}`);
  t.log(`status --watch (pipe), first frame:\n${watched.split("\n\nEvery")[0]}`);

  const metrics = await lab.exec(1, "curl", ["-sf", `http://${METRICS}/metrics`]);
  t.regex(metrics, /^lunlink_failover_interruption_seconds_count 1$/m);
  t.regex(metrics, /^lunlink_failovers_total 1$/m);
  t.regex(metrics, /^lunlink_active_path\{path="storage"\} 1$/m);
  const records = Number(/^lunlink_storage_one_way_latency_seconds_count (\d+)$/m.exec(metrics)?.[1]);
  t.true(records > 0, `records delivered from the peer's ring measured (${records})`);
  t.regex(metrics, /^process_cpu_user_seconds_total /m);
  t.regex(metrics, /^nodejs_eventloop_lag_seconds /m);
  t.log(metrics.split("\n").filter((l) => l.startsWith("lunlink_failover_interruption_seconds_sum") || l.startsWith("lunlink_storage_one_way_latency_seconds_sum") || l.startsWith("lunlink_storage_one_way_latency_seconds_count")).join("; "));
  await lab.setPrimary(true);
});
