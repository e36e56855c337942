// `lunlink doctor` against real conditions made here: file volumes, a key file with a bad mode, a UDP
// port another socket holds, and (where a real one cannot exist on this machine: no device-mapper,
// no corosync running) the text of a multipath table, an nftables ruleset and a corosync.conf.
import dgram from "node:dgram";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";

import test from "ava";

import { generateKeys } from "../../lib/link/keys.ts";
import { corosyncToken, doctor, droppingRules, multipathFinding, type Finding } from "../../lib/node/doctor.ts";
import { scratchDir } from "../helpers/scratch.ts";

async function nodeConfig(dir: string, port: number, extra: Record<string, unknown> = {}): Promise<string> {
  for (const name of ["send.img", "receive.img"]) await writeFile(join(dir, name), Buffer.alloc(1024 * 1024));
  const keys = [generateKeys(), generateKeys()] as const;
  const privateFile = join(dir, "node1.key");
  await writeFile(privateFile, `${keys[0].privateKey}\n`, { mode: 0o600 });
  const config = {
    node: 1,
    peer: 2,
    tun: { address: "198.18.100.1/24" },
    primary: { bind: `127.0.0.1:${port}`, peer: `127.0.0.2:${port}` },
    storage: { send: join(dir, "send.img"), receive: join(dir, "receive.img") },
    keys: { private: privateFile, peerPublic: keys[1].publicKey },
    ...extra,
  };
  const file = join(dir, "node1.json");
  await writeFile(file, JSON.stringify(config));
  return file;
}

const byCheck = (findings: Finding[], check: string) => findings.find((f) => f.check === check);

async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const ok = await Promise.all([port, port + 1].map((p) => new Promise<boolean>((resolve) => {
      const s = dgram.createSocket("udp4");
      s.once("error", () => resolve(false));
      s.bind(p, "127.0.0.1", () => s.close(() => resolve(true)));
    })));
    if (ok.every(Boolean)) return port;
  }
  throw new Error("no free UDP port pair on loopback");
}

test("a healthy node's config on file volumes: nothing fails, and each finding names its check", async (t) => {
  const dir = await scratchDir(t);
  const port = await freePortPair();
  const findings = await doctor(await nodeConfig(dir, port), { corosyncConf: join(dir, "absent.conf") });
  t.deepEqual(findings.filter((f) => f.severity === "fail"), [], "no failed check");
  t.is(byCheck(findings, "volume.send")?.severity, "ok");
  t.regex(byCheck(findings, "volume.send")?.what ?? "", /O_DIRECT/);
  t.is(byCheck(findings, "volume.sectors")?.severity, "ok");
  t.is(byCheck(findings, "volume.send.in-use")?.severity, "ok");
  t.is(byCheck(findings, "keys")?.severity, "ok");
  t.is(byCheck(findings, `udp.${port}`)?.severity, "ok");
  t.is(byCheck(findings, `udp.${port + 1}`)?.severity, "ok");
  t.is(byCheck(findings, "mtu")?.severity, "ok", "lo carries the default MTU");
});

test("a private key readable by others and a UDP port held by another socket are failures with a fix", async (t) => {
  const dir = await scratchDir(t);
  const port = await freePortPair();
  const file = await nodeConfig(dir, port);
  await chmod(join(dir, "node1.key"), 0o644);
  const holder = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => holder.bind(port + 1, "127.0.0.1", resolve));
  t.teardown(() => holder.close());
  const findings = await doctor(file, { corosyncConf: join(dir, "absent.conf") });
  const keys = byCheck(findings, "keys");
  t.is(keys?.severity, "fail");
  t.regex(keys?.fix ?? "", /chmod 600/);
  const busy = byCheck(findings, `udp.${port + 1}`);
  t.is(busy?.severity, "fail");
  t.regex(busy?.what ?? "", /EADDRINUSE/);
  t.regex(busy?.why ?? "", /heartbeats and control/);
  t.is(byCheck(findings, `udp.${port}`)?.severity, "ok", "the data port is still free");
});

test("a missing volume and a bad config are failures, never a crash", async (t) => {
  const dir = await scratchDir(t);
  const port = await freePortPair();
  const file = await nodeConfig(dir, port, { storage: { send: join(dir, "missing.img"), receive: join(dir, "receive.img") } });
  const findings = await doctor(file, { corosyncConf: join(dir, "absent.conf") });
  t.is(byCheck(findings, "volume.send")?.severity, "fail");
  t.regex(byCheck(findings, "volume.send")?.what ?? "", /missing\.img/);
  await writeFile(join(dir, "bad.json"), JSON.stringify({ node: 1 }));
  const bad = await doctor(join(dir, "bad.json"));
  t.is(bad.length, 1);
  t.is(bad[0]?.check, "config");
  t.is(bad[0]?.severity, "fail");
});

test("corosync.conf: a token shorter than lunlink's failover bound fails; the default token with 3 nodes passes", async (t) => {
  const dir = await scratchDir(t);
  const port = await freePortPair();
  const file = await nodeConfig(dir, port);
  const conf = join(dir, "corosync.conf");
  await writeFile(conf, "totem {\n  version: 2\n  token: 150\n}\nnodelist {\n  node {\n    ring0_addr: 198.18.100.1\n  }\n  node {\n    ring0_addr: 198.18.100.2\n  }\n}\n");
  const short = byCheck(await doctor(file, { corosyncConf: conf }), "corosync");
  t.is(short?.severity, "fail");
  t.regex(short?.what ?? "", /token 150 ms is not longer than lunlink's failover bound 175 ms/);
  const three = "totem {\n  version: 2\n}\nnodelist {\n node {\n ring0_addr: 198.18.100.1\n }\n node {\n ring0_addr: 198.18.100.2\n }\n node {\n ring0_addr: 198.18.100.3\n }\n}\n";
  t.deepEqual(corosyncToken(three), { tokenMs: 3650, nodes: 3, explicit: false, ringAddresses: ["198.18.100.1", "198.18.100.2", "198.18.100.3"] });
  await writeFile(conf, three);
  t.is(byCheck(await doctor(file, { corosyncConf: conf }), "corosync")?.severity, "ok");
});

/** A cluster node's config (node 1 of 3, on loopback): every ring in `ring` (one cluster volume) or one file per node. */
async function clusterConfig(dir: string, port: number, rings: "shared" | "per-node"): Promise<string> {
  const keys = [generateKeys(), generateKeys(), generateKeys()] as const;
  const privateFile = join(dir, "node1.key");
  await writeFile(privateFile, `${keys[0].privateKey}\n`, { mode: 0o600 });
  const members = [1, 2, 3].map((node) => ({ node, address: `198.18.100.${node}`, primary: `127.0.0.${node}:${port}`, ring: join(dir, rings === "shared" ? "cluster.img" : `ring${node}.img`), publicKey: keys[node - 1]!.publicKey }));
  for (const m of members) await writeFile(m.ring, Buffer.alloc(1024 * 1024));
  const file = join(dir, "cluster1.json");
  await writeFile(file, JSON.stringify({ node: 1, tun: { address: "198.18.100.1/24" }, cluster: { members }, keys: { private: privateFile } }));
  return file;
}

const corosyncNodes = (addresses: string[], totem = "") => `totem {\n  version: 2\n${totem}}\nnodelist {\n${addresses.map((a, i) => `  node {\n    ring0_addr: ${a}\n    nodeid: ${i + 1}\n  }\n`).join("")}}\n`;

test("a cluster node's config gets the same checks: its ring volumes (a shared cluster volume once), keys, ports, MTU", async (t) => {
  for (const rings of ["shared", "per-node"] as const) {
    const dir = await scratchDir(t);
    const port = await freePortPair();
    const findings = await doctor(await clusterConfig(dir, port, rings), { corosyncConf: join(dir, "absent.conf") });
    t.deepEqual(findings.filter((f) => f.severity === "fail"), [], `${rings}: no failed check`);
    t.regex(byCheck(findings, "config")?.what ?? "", /valid \(cluster of 3\)/);
    t.is(byCheck(findings, "volume.send")?.severity, "ok");
    t.is(byCheck(findings, "volume.send.in-use")?.severity, "ok");
    t.is(byCheck(findings, "keys")?.severity, "ok");
    t.is(byCheck(findings, `udp.${port}`)?.severity, "ok");
    t.is(byCheck(findings, "mtu")?.severity, "ok");
    if (rings === "shared") {
      t.is(findings.filter((f) => f.check.startsWith("volume.receive")).length, 0, "one cluster volume is probed once");
      t.is(byCheck(findings, "volume.sectors"), undefined);
    } else {
      t.is(byCheck(findings, "volume.receive.node2")?.severity, "ok");
      t.is(byCheck(findings, "volume.receive.node3")?.severity, "ok");
      t.regex(byCheck(findings, "volume.sectors")?.what ?? "", /all 3 volumes address/);
    }
  }
});

test("corosync.conf against a cluster node's config: the failover bound holds for 3 nodes; a short token fails; a ring address that is no member's fails", async (t) => {
  const dir = await scratchDir(t);
  const port = await freePortPair();
  const file = await clusterConfig(dir, port, "shared");
  const conf = join(dir, "corosync.conf");
  const members = ["198.18.100.1", "198.18.100.2", "198.18.100.3"];
  await writeFile(conf, corosyncNodes(members));
  const ok = (await doctor(file, { corosyncConf: conf })).filter((f) => f.check === "corosync");
  t.deepEqual(ok.map((f) => f.severity), ["ok"]);
  t.regex(ok[0]?.what ?? "", /totem token 3650 ms \(default\) is 20\.9x lunlink's failover bound \(175 ms\)/);
  await writeFile(conf, corosyncNodes(members, "  token: 150\n  token_coefficient: 0\n"));
  const short = byCheck(await doctor(file, { corosyncConf: conf }), "corosync");
  t.is(short?.severity, "fail");
  t.regex(short?.what ?? "", /token 150 ms is not longer than lunlink's failover bound 175 ms/);
  await writeFile(conf, corosyncNodes(["198.18.100.1", "198.18.100.2", "198.18.100.9"]));
  const stray = (await doctor(file, { corosyncConf: conf })).filter((f) => f.check === "corosync");
  t.is(stray.find((f) => f.severity === "fail")?.what.includes("198.18.100.9 on lunlink0's subnet is no cluster member's address"), true);
  t.regex(stray.find((f) => f.severity === "info")?.what ?? "", /member 198\.18\.100\.3 is in no corosync node's ring address/);
});

test("multipath: queueing forever fails, queueing past the storage timers warns, a bounded queue passes", (t) => {
  const queueing = "0 2097152 multipath 1 queue_if_no_path 1 alua 1 1 service-time 0 1 1 8:16 1";
  const forever = multipathFinding("/dev/mapper/mpatha", queueing, undefined, 5000, 1500);
  t.is(forever.severity, "fail");
  t.regex(forever.what, /queues I\/O forever/);
  t.regex(forever.fix ?? "", /no_path_retry 2 with polling_interval 5/);
  t.is(multipathFinding("/dev/mapper/mpatha", queueing, "defaults {\n  no_path_retry queue\n}\n", 5000, 1500).severity, "fail");
  const long = multipathFinding("/dev/mapper/mpatha", queueing, "defaults {\n  polling_interval 5\n  no_path_retry 12\n}\n", 5000, 1500);
  t.is(long.severity, "warn");
  t.regex(long.what, /up to 60 s/);
  t.is(multipathFinding("/dev/mapper/mpatha", queueing, "defaults {\n  polling_interval 1\n  no_path_retry 5\n}\n", 10000, 1500).severity, "ok");
  t.is(multipathFinding("/dev/mapper/mpatha", "0 2097152 multipath 0 1 alua 1 1 service-time 0 1 1 8:16 1", undefined, 5000, 1500).severity, "ok");
});

test("nftables: a rule dropping the link's port is found, by single port, set and range; others are not", (t) => {
  const rule = (right: unknown, verdict: string) => ({ rule: { family: "inet", table: "filter", chain: "input", handle: 4, expr: [{ match: { op: "==", left: { payload: { protocol: "udp", field: "dport" } }, right } }, { [verdict]: null }] } });
  const ruleset = (r: unknown) => JSON.stringify({ nftables: [{ metainfo: { version: "1.0.6" } }, r] });
  t.deepEqual(droppingRules(ruleset(rule(7410, "drop")), 7410), ["table filter chain input (drop)"]);
  t.deepEqual(droppingRules(ruleset(rule({ set: [53, 7411] }, "reject")), 7411), ["table filter chain input (reject)"]);
  t.deepEqual(droppingRules(ruleset(rule({ range: [7000, 7999] }, "drop")), 7410), ["table filter chain input (drop)"]);
  t.deepEqual(droppingRules(ruleset(rule(7410, "accept")), 7410), [], "accept is no drop");
  t.deepEqual(droppingRules(ruleset(rule(74100, "drop")), 7410), [], "another port");
});
