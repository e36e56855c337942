// `lunlink doctor` (the built CLI) against conditions made for real: a send volume that is a mounted
// ext4 loop device, and, in a network namespace the test creates, an nftables rule that drops the
// link's heartbeat port. Both must be reported as failures with exit status 1.
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import test from "ava";

import { lunlinkBin } from "../../lib/node/lab.ts";
import { run } from "../helpers/exec.ts";
import { attachLoop } from "../helpers/loop.ts";
import { createNamespace } from "../helpers/netns.ts";
import { scratchDir, sparseFile } from "../helpers/scratch.ts";

interface Report {
  ok: boolean;
  findings: { check: string; severity: string; what: string; why?: string; fix?: string }[];
}

function doctorIn(ns: string | undefined, config: string): Promise<{ code: number; report: Report }> {
  const [cmd, args] = ns === undefined ? [process.execPath, [lunlinkBin(), "doctor", "--config", config, "--json"]] : ["ip", ["netns", "exec", ns, process.execPath, lunlinkBin(), "doctor", "--config", config, "--json"]];
  return new Promise((resolve, reject) => {
    execFile(cmd as string, args as string[], { encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      try {
        resolve({ code, report: JSON.parse(stdout) as Report });
      } catch {
        reject(new Error(`doctor printed no JSON (exit ${code}): ${stdout} ${stderr}`));
      }
    });
  });
}

async function configFile(dir: string, send: string, bind: string): Promise<string> {
  const receive = join(dir, "receive.img");
  await writeFile(receive, Buffer.alloc(1024 * 1024));
  const file = join(dir, "node1.json");
  await writeFile(file, JSON.stringify({ node: 1, peer: 2, tun: { address: "198.18.100.1/24" }, primary: { bind, peer: "198.18.2.2:7410" }, storage: { send, receive } }));
  return file;
}

test("a send volume with a mounted file system on it fails the in-use check", async (t) => {
  const image = await sparseFile(t, 16 * 1024 * 1024, "send.img");
  await run("mkfs.ext4", ["-q", "-F", image]);
  const device = await attachLoop(t, image);
  const mountpoint = join(image, "..", "mnt");
  await run("mkdir", [mountpoint]);
  await run("mount", ["-t", "ext4", device, mountpoint]);
  t.teardown(() => run("umount", [mountpoint]).then(() => undefined));
  const config = await configFile(await scratchDir(t), device, "127.0.0.1:7410");
  const { code, report } = await doctorIn(undefined, config);
  t.is(code, 1, "exit status 1");
  t.false(report.ok);
  const inUse = report.findings.find((f) => f.check === "volume.send.in-use");
  t.is(inUse?.severity, "fail");
  t.true(inUse?.what.includes(mountpoint), `names the mount point: ${inUse?.what}`);
  t.regex(inUse?.fix ?? "", /unmount/);
});

test("an nftables rule dropping the heartbeat port (in a test namespace) fails that port's check", async (t) => {
  const ns = await createNamespace(t, "doctor");
  await run("ip", ["-n", ns, "link", "add", "llt0", "type", "veth", "peer", "name", "llt1"]);
  await run("ip", ["-n", ns, "addr", "add", "198.18.2.1/24", "dev", "llt0"]);
  for (const dev of ["llt0", "llt1"]) await run("ip", ["-n", ns, "link", "set", dev, "up"]);
  // /usr/sbin/nft: under npm, PATH's node_modules/.bin has an unrelated `nft` (@vercel/nft).
  await run("ip", ["netns", "exec", ns, "/usr/sbin/nft", "add table inet llt; add chain inet llt input { type filter hook input priority 0; }; add rule inet llt input udp dport 7411 drop"]);
  const dir = await scratchDir(t);
  const config = await configFile(dir, join(dir, "send.img"), "198.18.2.1:7410");
  await writeFile(join(dir, "send.img"), Buffer.alloc(1024 * 1024));
  const { code, report } = await doctorIn(ns, config);
  t.is(code, 1);
  const heartbeat = report.findings.find((f) => f.check === "udp.7411");
  t.is(heartbeat?.severity, "fail");
  t.regex(heartbeat?.what ?? "", /nftables drops or rejects UDP port 7411: table llt chain input \(drop\)/);
  t.is(report.findings.find((f) => f.check === "udp.7410")?.severity, "ok", "the data port has no such rule");
  t.is(report.findings.find((f) => f.check === "mtu")?.severity, "ok", "the veth carries the MTU");
});
