// The `lunlink` command as a user runs it: the built bin/lunlink.js in a child process.
import test from "ava";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { DEFAULT_TIMERS } from "../../lib/link/paths.ts";
import { scratchDir, sparseFile } from "../helpers/scratch.ts";

const BIN = new URL("../../bin/lunlink.js", import.meta.url).pathname;

/**
 * A hang guard, not a timing: a command that never ends is killed and fails by this name. Each run
 * starts a Node process that loads the whole CLI: ~1 s of CPU and 4-9 s of wall time for `--version`
 * alone at load 16-20 on 2 cores, and this file's 11 tests run their 46 commands up to 11 at once.
 * The former 20 s guard killed commands that were only waiting for a core (code -1: 7 of 11 tests
 * failed in a full unit run under stress-ng, 10-11 of 11 in each of 4 runs of the file, 2 at a time).
 * 120 s as node-versions' children have.
 */
const COMMAND_GUARD_MS = 120_000;

function run(input: string | undefined, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: COMMAND_GUARD_MS, killSignal: "SIGKILL" }, (error, stdout, stderr) => {
      const killed = error !== null && error.killed === true;
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr: killed ? `${stderr}[test: lunlink ${args.join(" ")} killed by its ${COMMAND_GUARD_MS} ms hang guard]` : stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function lunlink(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(undefined, args);
}

function lunlinkWithInput(input: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(input, args);
}

test("--version prints the package version", async (t) => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  const { code, stdout, stderr } = await lunlink("--version");
  t.is(code, 0, stderr);
  t.is(stdout.trim(), pkg.version);
});

test("--help lists the commands; no arguments is a usage error", async (t) => {
  const help = await lunlink("--help");
  t.is(help.code, 0);
  t.regex(help.stdout, /probe/);
  const none = await lunlink();
  t.is(none.code, 2);
  const sub = await lunlink("probe", "--help");
  t.is(sub.code, 0);
  t.regex(sub.stdout, /Usage: lunlink probe <path> \[--json\]/);
});

test("probe --json reports a file volume", async (t) => {
  const path = await sparseFile(t, 3 * 1024 * 1024);
  const { code, stdout, stderr } = await lunlink("probe", path, "--json");
  t.is(code, 0, stderr);
  const result = JSON.parse(stdout) as Record<string, unknown>;
  t.is(result.kind, "file");
  t.is(result.sizeBytes, 3 * 1024 * 1024);
  t.is(result.directIo, true);
  t.is(typeof result.logicalBlockSize, "number");
  t.is(typeof result.physicalBlockSize, "number");
  t.is(result.fileSystem, "ext4");
});

test("probe prints a human table", async (t) => {
  const path = await sparseFile(t, 1024 * 1024);
  const { code, stdout } = await lunlink("probe", path);
  t.is(code, 0);
  t.regex(stdout, /^kind\s+file$/m);
  t.regex(stdout, /^size\s+1\.0 MiB \(1048576 bytes\)$/m);
  t.regex(stdout, /^direct I\/O\s+yes$/m);
});

test("bad input: one line on stderr, a coded error, a non-zero exit", async (t) => {
  const dir = await scratchDir(t);
  await mkdir(join(dir, "d"));
  const cases: [string[], number, RegExp][] = [
    [["probe", join(dir, "missing")], 1, /^lunlink: ERR_LUNLINK_NOT_FOUND: .*ENOENT/],
    [["probe", join(dir, "d")], 1, /^lunlink: ERR_LUNLINK_NOT_A_VOLUME: /],
    [["probe"], 2, /^lunlink: expected 1 argument, found 0/],
    [["probe", "a", "b"], 2, /^lunlink: expected 1 argument, found 2/],
    [["probe", "--bogus", "x"], 2, /^lunlink: Unknown option '--bogus'/],
    [["frobnicate"], 2, /^lunlink: unknown command "frobnicate"/],
  ];
  for (const [args, expectedCode, pattern] of cases) {
    const { code, stderr, stdout } = await lunlink(...args);
    t.is(code, expectedCode, args.join(" "));
    t.regex(stderr, pattern, args.join(" "));
    t.is(stderr.trim().split("\n").length, 1, `one line for ${args.join(" ")}: ${stderr}`);
    t.is(stdout, "");
  }
});

test("format, append and tail a volume from the command line", async (t) => {
  const path = await sparseFile(t, 4 * 1024 * 1024);
  t.is((await lunlink("format", path, "--node", "1", "--peer", "2")).code, 0);
  const one = await lunlink("append", path, "--node", "1", "--json", "hello storage");
  t.is(one.code, 0, one.stderr);
  t.like(JSON.parse(one.stdout), { frames: 1, firstSeq: 1, lastSeq: 1 });
  const many = await lunlinkWithInput("alpha\nbeta\n", "append", path, "--node", "1", "--type", "control", "-");
  t.is(many.code, 0, many.stderr);
  const tail = await lunlink("tail", path, "--node", "2", "--json");
  t.is(tail.code, 0, tail.stderr);
  const frames = tail.stdout.trim().split("\n").map((l) => JSON.parse(l) as { seq: number; type: string; text: string });
  t.deepEqual(frames.map((f) => [f.type, f.text]), [["data", "hello storage"], ["control", "alpha"], ["control", "beta"]]);
  const human = await lunlink("tail", path, "--node", "2", "--from", "2");
  t.regex(human.stdout, /^2 control alpha$/m);
  t.notRegex(human.stdout, /hello storage/);
  const inspect = await lunlink("inspect", path, "--json");
  // Two appends; the second one's two frames may share a record or not.
  const ring = (JSON.parse(inspect.stdout) as { ring: { records: number; frames: number; invalid: number } }).ring;
  t.like(ring, { frames: 3, invalid: 0 });
  t.true(ring.records === 2 || ring.records === 3, `${ring.records} records`);
});

test("append as another node is refused; tail as the writer is the wrong pair", async (t) => {
  const path = await sparseFile(t, 4 * 1024 * 1024);
  await lunlink("format", path, "--node", "1", "--peer", "2");
  const notOwner = await lunlink("append", path, "--node", "3", "x");
  t.is(notOwner.code, 1);
  t.regex(notOwner.stderr, /^lunlink: ERR_LUNLINK_NOT_OWNER: .*--take-over/);
  const own = await lunlink("tail", path, "--node", "1");
  t.is(own.code, 1);
  t.regex(own.stderr, /ERR_LUNLINK_WRONG_PAIR/);
  const badType = await lunlink("append", path, "--node", "1", "--type", "urgent", "x");
  t.is(badType.code, 2);
  t.regex(badType.stderr, /--type must be heartbeat, control or data/);
  const taken = await lunlink("append", path, "--node", "3", "--take-over", "mine now");
  t.is(taken.code, 0, taken.stderr);
});

test("mirror copy puts the send volume's frames on the receive volume; a miswired destination is refused", async (t) => {
  const a = await sparseFile(t, 4 * 1024 * 1024, "a.img");
  const b = await sparseFile(t, 4 * 1024 * 1024, "b.img");
  await lunlink("format", a, "--node", "1", "--peer", "2");
  await lunlink("append", a, "--node", "1", "across the mirror");
  const copy = await lunlink("mirror", "copy", a, b, "--json");
  t.is(copy.code, 0, copy.stderr);
  t.like(JSON.parse(copy.stdout), { resyncs: 1 });
  const tail = await lunlink("tail", b, "--node", "2");
  t.regex(tail.stdout, /^1 data across the mirror$/m);
  const c = await sparseFile(t, 4 * 1024 * 1024, "c.img");
  await lunlink("format", c, "--node", "2", "--peer", "1");
  const miswired = await lunlink("mirror", "copy", a, c);
  t.is(miswired.code, 1);
  t.regex(miswired.stderr, /ERR_LUNLINK_WRONG_PAIR: .*use --force/);
  const verb = await lunlink("mirror", "push", a, b);
  t.is(verb.code, 2);
  const status = await lunlink("mirror", "status", a, b, "--json");
  t.is(status.code, 0, status.stderr);
  t.like(JSON.parse(status.stdout), { state: "in-sync", lagRecords: 0, destination: { newestSeq: 1 } });
  await lunlink("append", a, "--node", "1", "not yet mirrored");
  const behind = await lunlink("mirror", "status", a, b);
  t.regex(behind.stdout, /: lagging\n[^]*lag +1 record\(s\)/);
  const other = await lunlink("mirror", "status", a, c, "--json");
  t.like(JSON.parse(other.stdout), { state: "not-a-copy" });
  const help = await lunlink("mirror", "--help");
  t.regex(help.stdout, /lunlink mirror serve --listen HOST:PORT --volume <destination>/);
  const badAddress = await lunlink("mirror", "push", a, "--to", "nowhere");
  t.is(badAddress.code, 2);
  t.regex(badAddress.stderr, /--to must be HOST:PORT/);
});

test("check-config: a valid file prints ok with defaults; every bad key is named with its value and what is allowed", async (t) => {
  const dir = await scratchDir(t);
  const good = { node: 1, peer: 2, tun: { address: "198.18.100.1/24" }, primary: { bind: "198.18.1.1:7410", peer: "198.18.1.2:7410" }, storage: { send: "/dev/a", receive: "/dev/b" } };
  const goodPath = join(dir, "good.json");
  await writeFile(goodPath, JSON.stringify(good));
  const ok = await lunlink("check-config", goodPath, "--json");
  t.is(ok.code, 0, ok.stderr);
  const filled = JSON.parse(ok.stdout) as { tun: { name: string; mtu: number }; timers: { primary: { downMs: number } } };
  t.deepEqual([filled.tun.name, filled.tun.mtu, filled.timers.primary.downMs], ["lunlink0", 1400, DEFAULT_TIMERS.primary.downMs]);

  const badPath = join(dir, "bad.json");
  await writeFile(badPath, JSON.stringify({ ...good, tun: { address: "10.1.1.1", colour: "red" }, primary: { bind: "198.18.1.1", peer: "198.18.1.2:7410" } }));
  const bad = await lunlink("check-config", badPath);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /ERR_LUNLINK_BAD_CONFIG/);
  t.regex(bad.stderr, /tun\.address = "10\.1\.1\.1": expected an IPv4 address with prefix length/);
  t.regex(bad.stderr, /tun\.colour = "\(unknown key\)"/);
  t.regex(bad.stderr, /primary\.bind = "198\.18\.1\.1": expected an IPv4 address and port/);

  const crossPath = join(dir, "cross.json");
  await writeFile(crossPath, JSON.stringify({ ...good, peer: 1, tun: { address: "198.18.100.1/24", mtu: 1490 }, timers: { primary: { suspectMs: 200, downMs: 100 } }, metrics: { listen: "198.18.1.1:9410" } }));
  const cross = await lunlink("check-config", crossPath);
  t.is(cross.code, 1);
  t.regex(cross.stderr, /peer = 1: expected a node id other than node/);
  t.regex(cross.stderr, /tun\.mtu = 1490: expected at most 1444/);
  t.regex(cross.stderr, /timers\.primary\.downMs = 100: expected more than suspectMs \(200\)/);
  t.regex(cross.stderr, /metrics\.listen = "198\.18\.1\.1:9410": expected a loopback address/, "metrics stay local unless allowed");

  const keyFile = join(dir, "node1.key");
  const peerKey = (await lunlink("keygen", join(dir, "peer.key"))).stdout.trim();
  await lunlink("keygen", keyFile);
  const keyedPath = join(dir, "keyed.json");
  await writeFile(keyedPath, JSON.stringify({ ...good, keys: { private: keyFile, peerPublic: peerKey } }));
  t.is((await lunlink("check-config", keyedPath)).code, 0, "keys: a 0600 key file passes");
  await chmod(keyFile, 0o640);
  const loose = await lunlink("check-config", keyedPath);
  t.is(loose.code, 1);
  t.regex(loose.stderr, /keys\.private = ".*node1\.key": expected private key .* is accessible by group or others \(mode 0640\): chmod 600 it/);

  const notJson = join(dir, "broken.json");
  await writeFile(notJson, "{ node: 1");
  const broken = await lunlink("check-config", notJson);
  t.is(broken.code, 1);
  t.regex(broken.stderr, /ERR_LUNLINK_BAD_CONFIG: config .*broken\.json: .*JSON/);
});

test("status and down without a running node say so (ERR_LUNLINK_NOT_FOUND), exit 1", async (t) => {
  const dir = await scratchDir(t);
  for (const command of ["status", "down"]) {
    const r = await lunlink(command, "--socket", join(dir, "nothing.sock"));
    t.is(r.code, 1);
    t.regex(r.stderr, /ERR_LUNLINK_NOT_FOUND: no node is up on .*nothing\.sock \(ENOENT\)/);
  }
  const usage = await lunlink("status");
  t.is(usage.code, 2, "no --config or --socket is a usage error");
});

test("keygen writes a 0600 key and prints its public key; pubkey agrees; an existing key is kept; format --key makes a keyed volume", async (t) => {
  const dir = await scratchDir(t);
  const key = join(dir, "node1.key");
  const made = await lunlink("keygen", key);
  t.is(made.code, 0, made.stderr);
  t.regex(made.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
  t.is((await stat(key)).mode & 0o777, 0o600);
  t.is((await lunlink("pubkey", key)).stdout, made.stdout);
  const again = await lunlink("keygen", key);
  t.is(again.code, 1);
  t.regex(again.stderr, /ERR_LUNLINK_EXISTS: keygen .*node1\.key: the file exists/);
  const peer = await lunlink("keygen", join(dir, "node2.key"));
  const volume = await sparseFile(t, 2 * 1024 * 1024);
  const formatted = await lunlink("format", volume, "--node", "1", "--peer", "2", "--key", key, "--peer-public", peer.stdout.trim(), "--json");
  t.is(formatted.code, 0, formatted.stderr);
  const sb = JSON.parse(formatted.stdout) as { authMode: number; pairUuid: string };
  t.is(sb.authMode, 1, "authMode keyed");
  const half = await lunlink("format", volume, "--node", "1", "--peer", "2", "--key", key, "--force");
  t.is(half.code, 2);
  t.regex(half.stderr, /--key\/--peer-public must be both \(keyed volume\) or neither/);
});
