// The npm package installs and runs without a compiler (issue 15): `npm pack` (its prepack builds the
// N-API prebuild, scripts/prebuild.sh; linux-x64 only here to keep the test short), then the tarball
// is installed into fresh directories under /var/tmp with a PATH that holds only node, npm and basic
// tools (no gcc, g++, cc, make, python3): once with no install script run at all (--ignore-scripts:
// what a package gets where npm 11 blocks unapproved install scripts), once with lunlink's install
// script approved and run (`node-gyp-build`, which must find the prebuild and compile nothing). From the installed package, a volume file is written and read back, and a TUN device is
// opened inside a namespace the test creates. Steps are serial tests sharing one packed tarball.
import { execFile } from "node:child_process";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile, truncate } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

import test from "ava";

import { createNamespace, runIn } from "../helpers/netns.ts";

const execFileAsync = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
/** Bounds against a hang, not expectations: packing compiles the addon once (about a minute on 2 idle
 * vCPUs, 180 s measured under stress-ng --cpu 2 --hdd 1 on a slow day, past the old 140 s bound and
 * ava's 150 s inactivity timeout), an install is seconds. Each test that runs one declares its bound to
 * ava (t.timeout), so the inactivity timeout does not end it first. */
const PACK_TIMEOUT_MS = 900_000;
const INSTALL_TIMEOUT_MS = 300_000;
/** What a test spends beside its one bounded command (tar, node -e, the namespace). */
const TEST_SLACK_MS = 120_000;
/** What the no-compiler PATH holds: node, npm and what npm and its scripts call. */
const TOOLS = ["node", "npm", "sh", "bash", "env", "cat", "ls", "mkdir", "rm", "cp", "mv", "ln", "chmod", "uname", "dirname", "basename", "readlink", "grep", "sed", "tar", "gzip"];
const COMPILERS = ["gcc", "g++", "cc", "c++", "make", "python3", "python", "aarch64-linux-gnu-g++"];

interface Shared {
  dir: string;
  tarball: string;
  bin: string;
  apps: string[];
}
let shared: Shared | undefined;
const hadPrebuilds = existsSync(join(ROOT, "prebuilds"));

async function sh(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync(command, args, { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs ?? 30_000, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string; killed?: boolean; signal?: string | null; code?: unknown };
    // execFile's message does not say that its timeout killed the command: say so, and how it ended.
    const how = e.killed === true ? ` (killed by ${e.signal ?? "a signal"} at the ${options.timeoutMs ?? 30_000} ms bound)` : ` (exit ${String(e.code)}${e.signal ? `, signal ${e.signal}` : ""})`;
    throw new Error(`${command} ${args.join(" ")} failed${how}: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`.slice(0, 6000), { cause: error });
  }
}

/** The environment of a machine without a compiler: PATH is a directory of symlinks to TOOLS only. */
function bareEnv(s: Shared): NodeJS.ProcessEnv {
  return { HOME: process.env["HOME"] ?? "/root", PATH: s.bin, LANG: "C" };
}

test.before(async () => {
  const dir = await mkdtemp("/var/tmp/lunlink-pkgtest-");
  const bin = join(dir, "bin");
  await mkdir(bin);
  for (const tool of TOOLS) {
    const found = (await sh("sh", ["-c", `command -v ${tool}`])).stdout.trim();
    await symlink(realpathSync(found), join(bin, tool));
  }
  shared = { dir, tarball: "", bin, apps: [] };
});

test.after.always(async () => {
  if (shared !== undefined) await rm(shared.dir, { recursive: true, force: true });
  if (!hadPrebuilds) await rm(join(ROOT, "prebuilds"), { recursive: true, force: true });
});

test.serial("npm pack ships the linux-x64 N-API prebuild, the addon sources and the systemd unit", async (t) => {
  t.timeout(PACK_TIMEOUT_MS + TEST_SLACK_MS);
  const s = shared!;
  const packStartMs = Date.now();
  const { stdout } = await sh("npm", ["pack", "--pack-destination", s.dir], { cwd: ROOT, env: { ...process.env, LUNLINK_PREBUILD_ARM64: "skip" }, timeoutMs: PACK_TIMEOUT_MS });
  t.log(`npm pack took ${Date.now() - packStartMs} ms (bound ${PACK_TIMEOUT_MS} ms; logged, not asserted)`);
  const name = stdout.trim().split("\n").at(-1)!;
  s.tarball = join(s.dir, name);
  t.true(existsSync(s.tarball), `tarball ${name}`);
  const files = (await sh("tar", ["-tzf", s.tarball])).stdout.split("\n");
  for (const f of ["package/prebuilds/linux-x64/lunlink.glibc.node", "package/binding.gyp", "package/addon/notify.cc", "package/dist/lib/index.js", "package/systemd/lunlink@.service"]) {
    t.true(files.includes(f), `${f} in the tarball`);
  }
  t.false(files.some((f) => f.startsWith("package/build/")), "no local build/ directory in the tarball");
  const pkg = JSON.parse((await sh("tar", ["-xzOf", s.tarball, "package/package.json"])).stdout) as { scripts: Record<string, string> };
  t.is(pkg.scripts["install"], "node-gyp-build", "the install script only builds when no prebuild loads");
});

test.serial("the no-compiler PATH really has no compiler", async (t) => {
  const s = shared!;
  for (const tool of COMPILERS) {
    await t.throwsAsync(sh("sh", ["-c", `command -v ${tool}`], { env: bareEnv(s) }), undefined, `${tool} must not be on the bare PATH`);
  }
  t.regex((await sh("node", ["--version"], { env: bareEnv(s) })).stdout, /^v\d+\./);
});

for (const mode of ["no install script run (--ignore-scripts)", "install script approved (allowScripts)"] as const) {
  test.serial(`installs from the tarball without a compiler: ${mode}`, async (t) => {
    t.timeout(INSTALL_TIMEOUT_MS + TEST_SLACK_MS);
    const s = shared!;
    // Without a tarball, `npm install ""` is "up to date" and the test would fail on a missing module.
    if (s.tarball === "") return t.fail("no tarball: the npm pack test failed");
    const app = join(s.dir, `app${s.apps.length}`);
    await mkdir(app);
    const approved = mode.startsWith("install script approved");
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "lunlink-install-test", private: true, ...(approved ? { allowScripts: { lunlink: true } } : {}) }));
    const flags = ["--prefer-offline", "--no-audit", "--no-fund", "--foreground-scripts", ...(approved ? [] : ["--ignore-scripts"])];
    const { stdout, stderr } = await sh("npm", ["install", ...flags, s.tarball], { cwd: app, env: bareEnv(s), timeoutMs: INSTALL_TIMEOUT_MS });
    t.log(`npm said: ${`${stdout}\n${stderr}`.split("\n").filter((l) => l.trim() !== "").join(" | ")}`);
    if (approved) t.regex(stdout, /> node-gyp-build/, "the approved install script ran");
    else t.notRegex(stdout, /> node-gyp-build/, "no install script ran");
    const pkgDir = join(app, "node_modules", "lunlink");
    t.false(existsSync(join(pkgDir, "build")), "nothing was compiled: no build/ in the installed package");
    const resolved = (await sh("node", ["-e", "process.stdout.write(require('node-gyp-build').path(process.argv[1]))", pkgDir], { cwd: app, env: bareEnv(s) })).stdout;
    t.is(resolved, join(pkgDir, "prebuilds", "linux-x64", "lunlink.glibc.node"), "the addon comes from the prebuild");
    s.apps.push(app);
  });
}

test.serial("from the installed package: a volume file round-trips and a TUN device opens in a fresh namespace", async (t) => {
  const s = shared!;
  t.true(s.apps.length === 2, "both installs succeeded");
  const volume = join(s.dir, "volume.img");
  await writeFile(volume, "");
  await truncate(volume, 8 * 1024 * 1024);
  const ns = await createNamespace(t, "pkg");
  for (const app of s.apps) {
    const script = join(app, "exercise.mjs");
    await writeFile(
      script,
      [
        'import { Volume, TunDevice, alignedBuffer } from "lunlink";',
        "const volume = await Volume.open(process.argv[2], { dsync: true });",
        "const out = alignedBuffer(4096, 4096); out.fill(0x5a);",
        "await volume.write(4096, out);",
        "const back = alignedBuffer(4096, 4096); await volume.read(4096, back);",
        "const roundTrip = back.every((b) => b === 0x5a);",
        "await volume.close();",
        'const tun = await TunDevice.open({ name: "llpkg0", mtu: 1400, address: "198.18.77.1/24" });',
        "console.log(JSON.stringify({ kind: volume.geometry.kind, roundTrip, tun: tun.name, mtu: tun.mtu }));",
        "await tun.close();",
      ].join("\n"),
    );
    const stdout = await runIn(ns, "env", ["-i", `PATH=${s.bin}`, `HOME=${process.env["HOME"] ?? "/root"}`, "node", script, volume]);
    t.deepEqual(JSON.parse(stdout.trim()), { kind: "file", roundTrip: true, tun: "llpkg0", mtu: 1400 }, app);
    const cli = await sh(join(app, "node_modules", ".bin", "lunlink"), ["--help"], { cwd: app, env: bareEnv(s) });
    t.regex(cli.stdout + cli.stderr, /lunlink/, "the CLI runs from the install");
  }
  t.notRegex(readFileSync("/proc/net/dev", "utf8"), /llpkg0/, "the TUN device lived only in the test's namespace");
});
