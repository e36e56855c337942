// Keyed clusters (issue #14, docs/format.md "Keyed clusters"): one cluster secret keys every ring of a
// cluster volume, one key per writer. Format keys every region; three ClusterNodes keyed by the secret
// deliver over storage; a member with another secret, none, or a secret against an unkeyed volume is
// refused at open with a code naming the region; a record forged into a peer's region by a process
// without the key is counted (authFailures) and never delivered; after a restart, a node's own status
// rows give each peer ring's replay floor, so an old status copied back into a peer's region does not
// make it deliver the same records again.
import { randomBytes } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import test, { type ExecutionContext } from "ava";

import { crc32c } from "../../lib/format/checksum.ts";
import { AuthMode, FrameType, RING_START_BLOCK, STATUS_SLOT_BLOCKS } from "../../lib/format/layout.ts";
import { peerRow } from "../../lib/format/status.ts";
import { Volume } from "../../lib/io/volume.ts";
import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import { main } from "../../lib/cli/main.ts";
import { clusterRingAuth, formatCluster, openCluster, openRegion } from "../../lib/ring/cluster.ts";
import { RingKeys, clusterRingKey } from "../../lib/ring/keys.ts";
import { readStatusSlots } from "../../lib/ring/status.ts";
import { ClusterNode } from "../../lib/node/cluster-node.ts";
import { ClusterStorage, openRing } from "../../lib/node/cluster-storage.ts";
import { readClusterSecretFile, writeClusterSecretFile } from "../../lib/node/cluster-secret.ts";
import { checkClusterConfig } from "../../lib/node/config.ts";
import { loadClusterKey } from "../../lib/node/cluster-secret.ts";
import { generateKeys } from "../../lib/link/keys.ts";
import { scratchDir, sparseFile } from "../helpers/scratch.ts";
import { ipv4Packet as ipv4 } from "../helpers/ipv4.ts";
import { pollUntil } from "../helpers/until.ts";

const B = 4096;
const secret = (): Buffer => randomBytes(32);

async function clusterFile(t: ExecutionContext, nodes: number[], clusterSecret: Uint8Array | undefined): Promise<string> {
  const file = await sparseFile(t, 12 * 1024 * 1024, "cluster.img");
  const volume = await Volume.open(file);
  await formatCluster(volume, { nodes, regionBlocks: 512n, ...(clusterSecret === undefined ? {} : { clusterSecret }) });
  await volume.close();
  return file;
}

const waitUntil = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> => pollUntil(what, check, timeoutMs, 20);

async function rejection(t: ExecutionContext, promise: Promise<unknown>): Promise<LunlinkError> {
  const error = await t.throwsAsync(promise);
  if (!(error instanceof LunlinkError)) throw new Error(`expected a LunlinkError, got ${String(error)}`);
  return error;
}

test("format --cluster with a secret keys every region under its writer's key (distinct key ids); the secret file is 0600, 32 bytes, never overwritten", async (t) => {
  const dir = await scratchDir(t);
  const secretFile = `${dir}/cluster.secret`;
  await writeClusterSecretFile(secretFile, false);
  const clusterSecret = await readClusterSecretFile(secretFile);
  t.is(clusterSecret.length, 32);
  await t.throwsAsync(writeClusterSecretFile(secretFile, false), { code: ErrorCode.Exists });
  await chmod(secretFile, 0o640);
  await t.throwsAsync(readClusterSecretFile(secretFile), { code: ErrorCode.BadKey, message: /mode 0640\): chmod 600/ });
  await chmod(secretFile, 0o600);
  await writeFile(secretFile, "c2hvcnQ=\n");
  await t.throwsAsync(readClusterSecretFile(secretFile), { code: ErrorCode.BadKey, message: /expected 32 bytes in base64.*found 8 characters/ });

  const file = await clusterFile(t, [1, 2, 3], clusterSecret);
  const volume = await Volume.open(file, { readOnly: true });
  t.teardown(() => volume.close());
  const header = await openCluster(volume);
  const keyIds = new Set<number>();
  for (const entry of header.regions) {
    const { superblock } = await openRegion(volume, header, entry.node);
    t.is(superblock.authMode, AuthMode.Keyed, `region of node ${entry.node} keyed`);
    t.is(superblock.keyId, new RingKeys({ key: clusterRingKey(clusterSecret, header.clusterUuid, entry.node) }).keyId);
    keyIds.add(superblock.keyId);
  }
  t.is(keyIds.size, 3, "one key per writer");
});

test("lunlink keys cluster-secret and format --cluster --cluster-secret; --key with --cluster and --cluster-secret without it are refused", async (t) => {
  const dir = await scratchDir(t);
  const out = { text: "", err: "" };
  const io = { stdout: { write: (s: string) => (out.text += s) }, stderr: { write: (s: string) => (out.err += s) } };
  t.is(await main(["keys", "cluster-secret", `${dir}/s`], io), 0);
  t.regex((await readFile(`${dir}/s`, "utf8")).trim(), /^[A-Za-z0-9+/]{43}=$/);
  t.is(await main(["keys", "cluster-secret", `${dir}/s`], io), 1, "an existing secret is kept");
  t.regex(out.err, /ERR_LUNLINK_EXISTS/);
  const file = await sparseFile(t, 8 * 1024 * 1024, "c.img");
  t.is(await main(["format", file, "--cluster", "--nodes", "3", "--key", `${dir}/s`, "--peer-public", "x"], io), 2);
  t.regex(out.err, /--key must be not with --cluster \(a keyed cluster volume takes --cluster-secret FILE\)/);
  t.is(await main(["format", file, "--node", "1", "--peer", "2", "--cluster-secret", `${dir}/s`], io), 2);
  t.regex(out.err, /--cluster-secret must be given only with --cluster/);
  out.text = "";
  t.is(await main(["format", file, "--cluster", "--nodes", "3", "--cluster-secret", `${dir}/s`], io), 0, out.err);
  t.regex(out.text, /every region keyed under the cluster secret/);
  t.regex(out.text, /node 3: region 2 .* key id 0x[0-9a-f]{8}/);
});

test("cluster config: keys.clusterSecret is read as up reads it (mode 0600, 32 bytes); absent, the rings are unkeyed", async (t) => {
  const dir = await scratchDir(t);
  const keyFile = `${dir}/node1.key`;
  await writeFile(keyFile, `${generateKeys().privateKey}\n`, { mode: 0o600 });
  const secretFile = `${dir}/cluster.secret`;
  await writeClusterSecretFile(secretFile, false);
  const members = [1, 2, 3].map((node) => ({ node, address: `198.18.100.${node}`, primary: `198.18.1.${node}:7410`, ring: "/dev/disk/by-id/lun", publicKey: generateKeys().publicKey }));
  const config = (keys: Record<string, string>) => {
    const r = checkClusterConfig({ node: 1, tun: { address: "198.18.100.1/24" }, cluster: { members }, keys });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.config;
  };
  const keyed = await loadClusterKey(config({ private: keyFile, clusterSecret: secretFile }));
  t.is(keyed?.clusterSecret?.length, 32);
  t.is((await loadClusterKey(config({ private: keyFile })))?.clusterSecret, undefined);
  await chmod(secretFile, 0o644);
  await t.throwsAsync(loadClusterKey(config({ private: keyFile, clusterSecret: secretFile })), { code: ErrorCode.BadKey, message: /cluster secret .* \(mode 0644\)/ });
  // check-config names the key that failed: the secret, not the private key beside it.
  const configFile = `${dir}/node1.json`;
  await writeFile(configFile, JSON.stringify({ node: 1, tun: { address: "198.18.100.1/24" }, cluster: { members }, keys: { private: keyFile, clusterSecret: secretFile } }));
  const out = { text: "", err: "" };
  const io = { stdout: { write: (x: string) => (out.text += x) }, stderr: { write: (x: string) => (out.err += x) } };
  t.is(await main(["check-config", configFile], io), 1);
  t.regex(out.err, /keys\.clusterSecret/);
  t.notRegex(out.err, /keys\.private/);
});

const TIMERS = {
  primary: { heartbeatMs: 20, suspectMs: 80, downMs: 160 },
  storage: { heartbeatMs: 20, suspectMs: 150, downMs: 400 },
  holdDownMs: 200,
  selfPauseMs: 2000,
  failbackDrainMs: 200,
};
const STORAGE = { dsync: false, pollMaxMs: 2, peerDownMs: 5000, damageTimeoutMs: 200 };

test("a keyed 3-member cluster on one cluster volume delivers over storage; records are encrypted on disk", async (t) => {
  const clusterSecret = secret();
  const file = await clusterFile(t, [1, 2, 3], clusterSecret);
  const base = 30_000 + Math.floor(Math.random() * 5_000) * 4;
  // Every primary points at a port nobody binds: all traffic goes over the keyed rings.
  const members = [1, 2, 3].map((node) => ({ node, address: `198.18.100.${node}`, primary: { host: "127.0.0.1", port: base + 2 * node }, ring: file }));
  const nodes: ClusterNode[] = [];
  const received = new Map<number, string[]>();
  for (const id of [1, 2, 3]) {
    const node = await ClusterNode.open({ nodeId: id, subnet: `198.18.100.${id}/24`, members: members.map((m) => (m.node === id ? m : { ...m, primary: { host: "127.0.0.1", port: base + 100 + m.node } })), storage: STORAGE, timers: TIMERS, clusterSecret });
    t.teardown(() => node.close());
    const got: string[] = [];
    received.set(id, got);
    node.onDataBatch((payloads, lengths, count) => {
      let at = 0;
      for (let i = 0; i < count; i++) {
        got.push(Buffer.from(payloads.subarray(at + 20, at + lengths[i]!)).toString("utf8"));
        at += lengths[i]!;
      }
    });
    nodes.push(node);
  }
  await waitUntil("every pair on storage", () => nodes.every((n) => n.peers.every((p) => p.core.paths.active === "storage")));
  const tag = randomBytes(4).toString("hex");
  for (let i = 0; i < 10; i++) {
    for (const [from, to] of [[1, 2], [2, 3], [3, 1]] as const) {
      const packet = ipv4(`198.18.100.${from}`, `198.18.100.${to}`, Buffer.from(`${tag} ${from}->${to} ${i}`));
      t.is(nodes[from - 1]!.sendBatch(packet, Uint32Array.of(packet.length), 1), 1);
    }
  }
  await waitUntil("every packet delivered", () => [1, 2, 3].every((id) => received.get(id)!.length >= 10));
  for (const [from, to] of [[1, 2], [2, 3], [3, 1]] as const) {
    t.deepEqual(received.get(to), Array.from({ length: 10 }, (_, i) => `${tag} ${from}->${to} ${i}`), `${from} -> ${to} over keyed storage, in order, once`);
  }
  for (const node of nodes) {
    for (const p of node.status().peers) {
      t.true(p.ring.keyed, `node ${node.options.nodeId} reads node ${p.node}'s ring keyed`);
      t.is(p.ring.reader.authFailures + p.ring.reader.downgrades + p.ring.reader.replays, 0);
    }
  }
  t.false((await readFile(file)).includes(Buffer.from(`${tag} 1->2`)), "no payload in the clear on the volume");
});

test("a member with another cluster secret, with none, or with one against an unkeyed volume is refused at open with a code naming the region", async (t) => {
  const clusterSecret = secret();
  const file = await clusterFile(t, [1, 2, 3], clusterSecret);
  const open = (node: number, key: Uint8Array | undefined, ring = file) =>
    ClusterStorage.open({ nodeId: node, ring, peers: [1, 2, 3].filter((n) => n !== node).map((n) => ({ node: n, ring })), ...STORAGE, ...(key === undefined ? {} : { clusterSecret: key }), onFrame: () => undefined });
  const wrong = await rejection(t, open(2, secret()));
  t.is(wrong.code, ErrorCode.WrongKey);
  t.regex(wrong.message, /cluster\.img#node2: the superblock MAC does not verify/, "names the region (node 2's own, verified first: its status holds the restart marks)");
  const none = await rejection(t, open(2, undefined));
  t.is(none.code, ErrorCode.KeyRequired);
  t.regex(none.message, /#node1 is a keyed volume/);
  const unkeyed = await clusterFile(t, [1, 2, 3], undefined);
  const downgrade = await rejection(t, open(2, clusterSecret, unkeyed));
  t.is(downgrade.code, ErrorCode.Downgrade);
  // The right secret opens (and the refused attempts left nothing behind that blocks it).
  const ok = await open(2, clusterSecret);
  await ok.close();
  t.pass();
});

/** Node `node`'s region of `file`, read-write, as an attacker with the LUN but no key has it. */
async function regionOf(t: ExecutionContext, file: string, node: number): Promise<Volume> {
  const view = await openRing(file, node, { dsync: true });
  t.teardown(() => view.close());
  return view;
}

/** Opens node `node` of a keyed 3-member cluster on `file` (peers in node order: node 1's peer 0 is node 2); node 2's delivered frames go to `got` as text. */
/** Node 1's peer index of node 2 (ClusterStorage.append takes a peer index). */
const TO_NODE_2 = 0;

function keyedStorage(file: string, clusterSecret: Buffer, got: string[]): (node: number) => Promise<ClusterStorage> {
  return (node) =>
    ClusterStorage.open({
      nodeId: node,
      ring: file,
      peers: [1, 2, 3].filter((n) => n !== node).map((n) => ({ node: n, ring: file })),
      ...STORAGE,
      clusterSecret,
      onFrame: (_peer, _type, bytes, offset, length) => void (node === 2 && got.push(Buffer.from(bytes.subarray(offset, offset + length)).toString("utf8"))),
    });
}

test("a record forged into a peer's region by a process without the key is refused and counted (authFailures), never delivered; the stream goes on", async (t) => {
  const clusterSecret = secret();
  const file = await clusterFile(t, [1, 2, 3], clusterSecret);
  const got: string[] = [];
  const open = keyedStorage(file, clusterSecret, got);
  const s1 = await open(1);
  t.teardown(() => s1.close());
  const s2 = await open(2);
  t.teardown(() => s2.close());
  const sent: string[] = [];
  const send = (text: string) => {
    sent.push(text);
    t.is(s1.append(TO_NODE_2, FrameType.Data, Buffer.from(text)), "queued");
  };
  for (let i = 0; i < 3; i++) send(`legit ${i}`);
  await waitUntil("the first frames delivered", () => got.length === 3);
  // The attacker: a copy of node 1's first record, re-stamped (seq and header CRC fixed) for the slot node 2 waits at.
  const region = await regionOf(t, file, 1);
  // The head as node 1's status says it, once the status caught up with the writer (it is rewritten after a flush).
  let status = (await readStatusSlots(region, B, "unverified")).status;
  await waitUntil("node 1's status at its head", async () => {
    status = (await readStatusSlots(region, B, "unverified")).status;
    return status?.headSeq === s1.headSeq;
  });
  if (status === undefined) return t.fail("no status");
  const captured = await region.read(RING_START_BLOCK * B, B);
  const forged = region.alloc(B);
  forged.set(captured);
  const v = new DataView(forged.buffer, forged.byteOffset, forged.byteLength);
  v.setBigUint64(8, status.headSeq, true);
  v.setBigUint64(48, status.headSeq, true);
  v.setUint32(92, crc32c(forged, 0, 92), true);
  await region.write((BigInt(RING_START_BLOCK) + status.headBlock) * BigInt(B), forged);
  const reader = () => s2.peerRing(0).reader;
  await waitUntil("the forgery counted", () => reader().authFailures > 0);
  t.deepEqual(got, sent, "the forged record delivered nothing");
  send("legit after the forgery");
  await waitUntil("the next legitimate frame delivered", () => got.length === 4);
  t.deepEqual(got, sent, "exactly the legitimate frames, in order");
  t.is(reader().authFailures, 1, "counted once, however often it was re-read");
});

test("restart marks per peer: after a restart, records replayed by copying an old status back into a peer's region are refused (replays), not delivered again", async (t) => {
  const clusterSecret = secret();
  const file = await clusterFile(t, [1, 2, 3], clusterSecret);
  const got: string[] = [];
  const open = keyedStorage(file, clusterSecret, got);
  const s1 = await open(1);
  let s2 = await open(2);
  t.teardown(() => s2.close());
  // The attacker keeps node 1's status slots (MACed, authentic) from before the records below.
  const region1 = await regionOf(t, file, 1);
  const oldStatus = region1.alloc(2 * B);
  await region1.read(STATUS_SLOT_BLOCKS[0] * B, oldStatus);
  const firstSeq = s1.headSeq;
  const sent = Array.from({ length: 5 }, (_, i) => `once ${i}`);
  for (const text of sent) t.is(s1.append(TO_NODE_2, FrameType.Data, Buffer.from(text)), "queued");
  await waitUntil("delivered once", () => got.length === 5);
  t.deepEqual(got, sent);
  // Node 2 persists its delivered mark of node 1's ring in its own status row about node 1.
  const region2 = await regionOf(t, file, 2);
  const probe = await Volume.open(file, { readOnly: true });
  const clusterUuid = (await openCluster(probe)).clusterUuid;
  await probe.close();
  const statusKey = new RingKeys(clusterRingAuth(clusterSecret, clusterUuid, 2)!).statusMac;
  const headOf1 = s1.headSeq;
  await waitUntil("node 2's delivered mark of node 1 persisted", async () => {
    const { status } = await readStatusSlots(region2, B, statusKey);
    const row = status === undefined ? undefined : peerRow(status, 1);
    return row !== undefined && row.deliveredSeq + 1n >= headOf1;
  });
  // Node 1 stops (so nothing rewrites its status: the test does not race it); node 2 restarts; the
  // attacker copies the old status back: node 1's ring now says the five records are new.
  await s1.close();
  await s2.close();
  await region1.write(STATUS_SLOT_BLOCKS[0] * B, oldStatus);
  got.length = 0;
  s2 = await open(2);
  const records = Number(headOf1 - firstSeq); // the five frames went into this many records
  await waitUntil("the replayed records read again", () => s2.peerRing(0).reader.replays + got.length >= records);
  await new Promise((resolve) => setTimeout(resolve, 200)); // a late delivery would show up here
  t.deepEqual(got, [], "nothing delivered twice");
  t.is(s2.peerRing(0).reader.replays, records, "each replayed record refused and counted");
  t.is(s2.peerRing(0).reader.records, 0);
});
