// The shipped unit, systemd/lunlink@.service: `systemd-analyze verify` accepts it without a warning
// (in a scratch root holding systemd's own units and a stand-in `lunlink`, as systemd is not PID 1
// here and the unit must not be started), and its CapabilityBoundingSet is exactly what `lunlink up`
// needs: under setpriv with that bounding set (root, no new privileges), a node process opens a loop
// device with O_DIRECT|O_DSYNC|O_EXCL, writes and reads it back, opens a TUN device (in a namespace
// the test creates) and moves to SCHED_RR; with either capability dropped, its function fails.
import { execFile } from "node:child_process";
import { chmod, cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

import test from "ava";

import { attachLoop } from "../helpers/loop.ts";
import { createNamespace } from "../helpers/netns.ts";
import { scratchDir, sparseFile } from "../helpers/scratch.ts";

const execFileAsync = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
const UNIT = join(ROOT, "systemd", "lunlink@.service");

async function verify(root: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync("systemd-analyze", ["verify", `--root=${root}`, "lunlink@lunlink0.service"], { timeout: 30_000, encoding: "utf8" });
    return { code: 0, output: `${stdout}${stderr}`.trim() };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (e.code === "ENOENT") throw new Error("systemd-analyze is missing: apt-get install systemd (the package; it is not started)");
    return { code: typeof e.code === "number" ? e.code : -1, output: `${e.stdout ?? ""}${e.stderr ?? e.message}`.trim() };
  }
}

test("systemd-analyze verify accepts lunlink@.service with no warning (and flags a broken copy)", async (t) => {
  const root = await scratchDir(t);
  await mkdir(join(root, "usr", "lib", "systemd"), { recursive: true });
  await cp("/usr/lib/systemd/system", join(root, "usr", "lib", "systemd", "system"), { recursive: true, verbatimSymlinks: true });
  await mkdir(join(root, "usr", "bin"), { recursive: true });
  await writeFile(join(root, "usr", "bin", "lunlink"), "#!/bin/sh\nexit 0\n");
  await chmod(join(root, "usr", "bin", "lunlink"), 0o755);
  const units = join(root, "etc", "systemd", "system");
  await mkdir(units, { recursive: true });
  const text = await readFile(UNIT, "utf8");
  await writeFile(join(units, "lunlink@.service"), text);
  const good = await verify(root);
  t.log(`systemd-analyze verify: exit ${good.code}, output ${JSON.stringify(good.output)}`);
  t.deepEqual(good, { code: 0, output: "" });
  // Negative control: the same check sees an unknown key and a missing executable.
  await writeFile(join(units, "lunlink@.service"), text.replace("ProtectHome=yes", "ProtectHome=yes\nProtectEverything=yes").replace("ExecStart=lunlink", "ExecStart=lunlink-missing"));
  const bad = await verify(root);
  t.regex(bad.output, /Unknown key 'ProtectEverything'/);
  t.regex(bad.output, /lunlink-missing is not executable/);
  t.not(bad.code, 0);
});

const EXERCISE = `
import { Volume, TunDevice, alignedBuffer } from ${JSON.stringify(join(ROOT, "dist/lib/index.js"))};
import { raiseScheduling } from ${JSON.stringify(join(ROOT, "dist/lib/node/scheduling.js"))};
const out = {};
try {
  const v = await Volume.open(process.argv[2], { dsync: true, exclusive: true });
  const b = alignedBuffer(4096, 4096); b.fill(0x3c); await v.write(8192, b);
  const r = alignedBuffer(4096, 4096); await v.read(8192, r);
  out.volume = v.geometry.kind + (r.every((x) => x === 0x3c) ? " round-trip" : " corrupt");
  await v.close();
} catch (e) { out.volume = e.code; }
try { const t = await TunDevice.open({ name: "llcap0", address: "198.18.78.1/24" }); out.tun = t.name; await t.close(); } catch (e) { out.tun = e.code; }
out.scheduling = (await raiseScheduling("realtime")).policy;
console.log(JSON.stringify(out));
`;

test("the unit's CapabilityBoundingSet is what lunlink needs: O_DIRECT block volume, TUN, SCHED_RR", async (t) => {
  const unit = await readFile(UNIT, "utf8");
  const caps = /^CapabilityBoundingSet=(.*)$/m.exec(unit)?.[1]?.trim().split(/\s+/) ?? [];
  t.deepEqual(caps, ["CAP_NET_ADMIN", "CAP_SYS_NICE"]);
  const dir = await scratchDir(t);
  const script = join(dir, "exercise.mjs");
  await writeFile(script, EXERCISE);
  const device = await attachLoop(t, await sparseFile(t, 16 * 1024 * 1024), { directIo: true });
  const ns = await createNamespace(t, "caps");
  const runWith = async (bounding: string[]) => {
    const set = ["-all", ...bounding.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`)].join(",");
    const { stdout } = await execFileAsync("ip", ["netns", "exec", ns, "setpriv", `--bounding-set=${set}`, "--inh-caps=-all", "--no-new-privs", process.execPath, script, device], { timeout: 30_000, encoding: "utf8" });
    return JSON.parse(stdout.trim()) as { volume: string; tun: string; scheduling: string };
  };
  t.deepEqual(await runWith(caps), { volume: "block round-trip", tun: "llcap0", scheduling: "rr" }, "everything works with the unit's set");
  t.deepEqual(await runWith(["CAP_SYS_NICE"]), { volume: "block round-trip", tun: "ERR_LUNLINK_PERMISSION_DENIED", scheduling: "rr" }, "no TUN without CAP_NET_ADMIN");
  t.deepEqual(await runWith(["CAP_NET_ADMIN"]), { volume: "block round-trip", tun: "llcap0", scheduling: "other" }, "no SCHED_RR without CAP_SYS_NICE");
  t.deepEqual(await runWith([]), { volume: "block round-trip", tun: "ERR_LUNLINK_PERMISSION_DENIED", scheduling: "other" }, "the block volume needs no capability at all");
});
