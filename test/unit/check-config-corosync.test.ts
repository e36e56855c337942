// `lunlink check-config --corosync-conf PATH` (issue #14: check-config warns when a corosync.conf on the
// machine contradicts the config), on real text: the 3-node corosync.conf of docs/operations.md, as
// shipped and edited into contradictions. The findings are doctor's (one implementation): a WARN is
// printed and exits 0, a FAIL is printed and exits 1; a missing corosync.conf is not checked.
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import test from "ava";

import { scratchDir } from "../helpers/scratch.ts";

const CLI = new URL("../helpers/lunlink-cli.ts", import.meta.url).pathname;
const OPERATIONS = new URL("../../docs/operations.md", import.meta.url).pathname;

function lunlink(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import=tsx", CLI, ...args], { encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
    });
  });
}

/** The 3-node corosync.conf example of docs/operations.md (the code block that starts with its totem section). */
async function documentedConf(): Promise<string> {
  const text = await readFile(OPERATIONS, "utf8");
  const m = /```\n(totem \{\n {2}version: 2\n {2}cluster_name: san1[\s\S]*?)```/.exec(text);
  if (m === null) throw new Error("docs/operations.md: the 3-node corosync.conf example was not found");
  return m[1]!;
}

test("check-config holds a cluster config against corosync.conf: the documented example passes quietly; a short token warns (exit 0) or fails (exit 1); a ring address that is no member's fails; no file, no check", async (t) => {
  const dir = await scratchDir(t);
  const members = [1, 2, 3].map((node) => ({ node, address: `198.18.100.${node}`, primary: `198.18.1.${node}:7410`, ring: "/dev/disk/by-id/wwn-0x600a-cluster" }));
  const config = join(dir, "node1.json");
  await writeFile(config, JSON.stringify({ node: 1, tun: { address: "198.18.100.1/24" }, cluster: { members } }));
  const conf = join(dir, "corosync.conf");
  const documented = await documentedConf();
  t.regex(documented, /node \{ ring0_addr: 198\.18\.100\.3 {2}nodeid: 3 {2}name: n3 \}/, "the example as documented");

  await writeFile(conf, documented);
  const quiet = await lunlink("check-config", config, "--corosync-conf", conf);
  t.is(quiet.code, 0, quiet.stderr);
  t.regex(quiet.stdout, /: ok \(node 1 in a cluster of 3, lunlink0 198\.18\.100\.1\/24 mtu 1400\)/);
  t.is(quiet.stderr, "", "the default token (3650 ms for 3 nodes) agrees with lunlink's failover bound: nothing to say");

  // token 400 ms, no per-node growth: longer than the failover bound (175 ms), but under 3x.
  await writeFile(conf, documented.replace("  transport: knet\n", "  transport: knet\n  token: 400\n  token_coefficient: 0\n"));
  const warned = await lunlink("check-config", config, "--corosync-conf", conf);
  t.is(warned.code, 0, "a warning leaves the exit status alone");
  t.regex(warned.stderr, /^WARN corosync: .*corosync\.conf: totem token 400 ms leaves less than 3x lunlink's failover bound \(175 ms\)\n {2}why: .*\n {2}fix: token 525 ms or more\n$/);

  await writeFile(conf, documented.replace("  transport: knet\n", "  transport: knet\n  token: 150\n  token_coefficient: 0\n"));
  const failed = await lunlink("check-config", config, "--corosync-conf", conf, "--json");
  t.is(failed.code, 1, "a token shorter than the failover bound fails, as doctor fails it");
  t.is((JSON.parse(failed.stdout) as { node: number }).node, 1, "stdout is still the config (JSON)");
  t.regex(failed.stderr, /FAIL corosync: .*totem token 150 ms is not longer than lunlink's failover bound 175 ms/);

  await writeFile(conf, documented.replace("ring0_addr: 198.18.100.3", "ring0_addr: 198.18.100.9"));
  const stray = await lunlink("check-config", config, "--corosync-conf", conf);
  t.is(stray.code, 1);
  t.regex(stray.stderr, /FAIL corosync: .*ring address 198\.18\.100\.9 on lunlink0's subnet is no cluster member's address/);

  const none = await lunlink("check-config", config, "--corosync-conf", join(dir, "absent.conf"));
  t.is(none.code, 0, none.stderr);
  t.is(none.stderr, "");
});
