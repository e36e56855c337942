// loadClusterKey's errors name the config key and the file themselves (ConfigValueError), so every
// caller says which key is wrong with no case of its own: check-config prints the row of that key,
// doctor's keys finding and `up` (which calls loadClusterKey first) carry the message naming it.
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";

import test from "ava";

import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import { main } from "../../lib/cli/main.ts";
import { generateKeys } from "../../lib/link/keys.ts";
import { ConfigValueError, loadClusterKey, writeClusterSecretFile } from "../../lib/node/cluster-secret.ts";
import { checkClusterConfig } from "../../lib/node/config.ts";
import { doctor } from "../../lib/node/doctor.ts";
import { scratchDir } from "../helpers/scratch.ts";

/** Node 1 of 3 with a private key (0600), a cluster secret (0600) and file rings, written to `dir`. */
async function keyedCluster(dir: string) {
  const own = generateKeys();
  const privateFile = join(dir, "node1.key");
  await writeFile(privateFile, `${own.privateKey}\n`, { mode: 0o600 });
  const secretFile = join(dir, "cluster.secret");
  await writeClusterSecretFile(secretFile, false);
  const members = [1, 2, 3].map((node) => ({ node, address: `198.18.100.${node}`, primary: `127.0.0.${node}:7410`, ring: join(dir, `ring${node}.img`), publicKey: node === 1 ? own.publicKey : generateKeys().publicKey }));
  for (const m of members) await writeFile(m.ring, Buffer.alloc(1024 * 1024));
  const raw = { node: 1, tun: { address: "198.18.100.1/24" }, cluster: { members }, keys: { private: privateFile, clusterSecret: secretFile } };
  const configFile = join(dir, "node1.json");
  await writeFile(configFile, JSON.stringify(raw));
  const checked = checkClusterConfig(raw);
  if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
  return { config: checked.config, raw, configFile, privateFile, secretFile, ownPublic: own.publicKey };
}

async function checkConfigErr(configFile: string): Promise<{ status: number; err: string }> {
  const out = { text: "", err: "" };
  const io = { stdout: { write: (x: string) => (out.text += x) }, stderr: { write: (x: string) => (out.err += x) } };
  const status = await main(["check-config", configFile, "--corosync-conf", "/nonexistent/corosync.conf"], io);
  return { status, err: out.err };
}

test("a cluster secret readable by others: the error names keys.clusterSecret and the file, keeps its code and path", async (t) => {
  const dir = await scratchDir(t);
  const c = await keyedCluster(dir);
  t.is((await loadClusterKey(c.config))?.clusterSecret?.length, 32);
  await chmod(c.secretFile, 0o644);
  const error = await t.throwsAsync(loadClusterKey(c.config), { instanceOf: ConfigValueError, code: ErrorCode.BadKey });
  t.true(error instanceof LunlinkError);
  t.true(error!.message.startsWith(`keys.clusterSecret: cluster secret ${c.secretFile} `), error!.message);
  t.regex(error!.message, /\(mode 0644\)/);
  t.is(error!.path, c.secretFile);
  t.deepEqual({ key: error!.problem.key, value: error!.problem.value }, { key: "keys.clusterSecret", value: c.secretFile });
});

test("a missing cluster secret: keys.clusterSecret, ENOENT, its errno and path", async (t) => {
  const dir = await scratchDir(t);
  const c = await keyedCluster(dir);
  const missing = join(dir, "absent.secret");
  const error = await t.throwsAsync(loadClusterKey({ ...c.config, keys: { ...c.config.keys!, clusterSecret: missing } }), { instanceOf: ConfigValueError });
  t.is(error!.message, `keys.clusterSecret: cluster secret ${missing}: ENOENT`);
  t.is(error!.path, missing);
  t.is(error!.errno, 2);
  t.is(error!.syscall, "stat");
});

test("a bad private key names keys.private; this node's key configured as a member's names that member's publicKey", async (t) => {
  const dir = await scratchDir(t);
  const c = await keyedCluster(dir);
  await chmod(c.privateFile, 0o640);
  const loose = await t.throwsAsync(loadClusterKey(c.config), { instanceOf: ConfigValueError, code: ErrorCode.BadKey });
  t.is(loose!.problem.key, "keys.private");
  t.true(loose!.message.startsWith(`keys.private: private key ${c.privateFile} `), loose!.message);
  await chmod(c.privateFile, 0o600);
  const members = c.config.cluster.members.map((m) => (m.node === 3 ? { ...m, publicKey: c.ownPublic } : m));
  const clash = await t.throwsAsync(loadClusterKey({ ...c.config, cluster: { ...c.config.cluster, members } }), { instanceOf: ConfigValueError, code: ErrorCode.BadConfig });
  t.is(clash!.problem.key, "cluster.members[node 3].publicKey");
  t.regex(clash!.message, /^cluster\.members\[node 3\]\.publicKey: this node's own public key/);
});

test("check-config and doctor name keys.clusterSecret for a bad secret, and keys.private for a bad private key", async (t) => {
  const dir = await scratchDir(t);
  const c = await keyedCluster(dir);
  await chmod(c.secretFile, 0o644);
  const secret = await checkConfigErr(c.configFile);
  t.is(secret.status, 1);
  t.true(secret.err.includes(`${c.configFile}: keys.clusterSecret = ${JSON.stringify(c.secretFile)}: expected cluster secret ${c.secretFile} is accessible by group or others (mode 0644)`), secret.err);
  t.notRegex(secret.err, /keys\.private/);
  const findings = await doctor(c.configFile, { corosyncConf: join(dir, "absent.conf") });
  const keys = findings.find((f) => f.check === "keys");
  t.is(keys?.severity, "fail");
  t.regex(keys?.what ?? "", /^keys\.clusterSecret: cluster secret .* \(mode 0644\)/);

  await chmod(c.secretFile, 0o600);
  await chmod(c.privateFile, 0o640);
  const priv = await checkConfigErr(c.configFile);
  t.is(priv.status, 1);
  t.true(priv.err.includes(`${c.configFile}: keys.private = ${JSON.stringify(c.privateFile)}: expected private key ${c.privateFile} is accessible`), priv.err);
  t.notRegex(priv.err, /keys\.clusterSecret/);
});
