// `lunlink doctor`: the checks an operator runs before go-live and after every change, for what bites
// users of disk-heartbeat systems: volumes that refuse O_DIRECT or disagree on sector size, a send
// volume mounted or opened by someone else, multipath maps that queue I/O longer than the storage
// timers (a stall instead of an error), TUN support, MTUs, key file modes, UDP ports taken or dropped
// by the host's firewall, an unsynchronised clock, and a corosync token shorter than lunlink's
// failover bound. Every check reads; none writes to a volume or keeps a socket. Each finding says
// what is wrong, why it matters and the fix. A pair's config and a cluster node's get the same checks:
// both are first reduced to a Target (the volumes the node opens, its UDP endpoint, TUN and timers).
import { execFile } from "node:child_process";
import dgram from "node:dgram";
import { constants } from "node:fs";
import { access, open, readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import { promisify } from "node:util";

import { LunlinkError } from "../errors.ts";
import { probe, type ProbeResult } from "../io/probe.ts";
import { loadAnyConfig, loadKeys, parseEndpoint, type AnyConfig, type ClusterConfig, type NodeConfig } from "./config.ts";
import { loadClusterKey } from "./cluster-secret.ts";

const run = promisify(execFile);
const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * Runs a system tool found in the system's own directories, never through PATH: under npm, PATH
 * starts with node_modules/.bin, where `nft` is @vercel/nft (a file tracer), not nftables.
 */
async function execFileAsync(tool: string, args: string[]): Promise<{ stdout: string }> {
  for (const dir of SYSTEM_DIRS) {
    const path = `${dir}/${tool}`;
    if (await access(path, constants.X_OK).then(() => true, () => false)) return run(path, args, { encoding: "utf8", timeout: 10_000 });
  }
  throw new Error(`${tool} not found in ${SYSTEM_DIRS.join(":")}`);
}

export type Severity = "ok" | "info" | "warn" | "fail";

export interface Finding {
  check: string;
  severity: Severity;
  /** What was found. */
  what: string;
  /** Why it matters (absent when all is well). */
  why?: string;
  /** What to do about it. */
  fix?: string;
}

export interface DoctorOptions {
  /** corosync's config to hold the timers against (default /etc/corosync/corosync.conf). */
  corosyncConf?: string;
  /** multipath's config (default /etc/multipath.conf): no_path_retry and polling_interval. */
  multipathConf?: string;
}

/** multipathd's default polling_interval (seconds): the unit of no_path_retry. */
const MULTIPATH_POLLING_INTERVAL_S = 5;
/** corosync 3's default totem token timeout and per-node coefficient (ms). */
const COROSYNC_TOKEN_MS = 3000;
const COROSYNC_TOKEN_COEFFICIENT_MS = 650;

/** What the checks need from a node's config, of either kind. */
interface Target {
  /** "pair" or "cluster of N". */
  kind: string;
  /** The volumes the node opens: its own ring first (role "send"), then each distinct one it reads. */
  volumes: { role: string; path: string }[];
  /** This node's primary UDP endpoint (data; control is port + 1). */
  bind: string;
  underlayMtu: number;
  tun: NodeConfig["tun"];
  timers: NodeConfig["timers"];
  ioTimeoutMs: number;
  /** The TUN addresses of every peer (a pair's is unknown: its config has none). */
  peerAddresses?: string[];
  keyCheck(): Promise<Finding>;
}

function pairTarget(c: NodeConfig): Target {
  return { kind: "pair", volumes: [{ role: "send", path: c.storage.send }, { role: "receive", path: c.storage.receive }], bind: c.primary.bind, underlayMtu: c.primary.underlayMtu, tun: c.tun, timers: c.timers, ioTimeoutMs: c.storage.ioTimeoutMs, keyCheck: () => keyCheck(c) };
}

/** A cluster node writes its own member's ring and reads every peer's; peers' rings on the same volume (a cluster volume) are probed once. */
function clusterTarget(c: ClusterConfig): Target {
  const self = c.cluster.members.find((m) => m.node === c.node)!;
  const volumes = [{ role: "send", path: self.ring }];
  for (const m of c.cluster.members) if (!volumes.some((v) => v.path === m.ring)) volumes.push({ role: `receive.node${m.node}`, path: m.ring });
  const peerAddresses = c.cluster.members.filter((m) => m.node !== c.node).map((m) => m.address);
  return { kind: `cluster of ${c.cluster.members.length}`, volumes, bind: self.primary, underlayMtu: c.primary.underlayMtu, tun: c.tun, timers: c.timers, ioTimeoutMs: c.storage.ioTimeoutMs, peerAddresses, keyCheck: () => clusterKeyCheck(c) };
}

export async function doctor(configPath: string, options: DoctorOptions = {}): Promise<Finding[]> {
  let target: Target;
  try {
    const any = await loadAnyConfig(configPath);
    target = any.kind === "pair" ? pairTarget(any.config) : clusterTarget(any.config);
  } catch (error) {
    return [{ check: "config", severity: "fail", what: (error as Error).message, why: "lunlink up refuses to start with it", fix: "correct the keys named above (lunlink check-config FILE lists them all)" }];
  }
  const findings: Finding[] = [{ check: "config", severity: "ok", what: `${configPath} is valid (${target.kind})` }];
  const volumes = await volumeChecks(target, findings);
  for (const v of volumes) findings.push(...(await multipathCheck(v, target, options.multipathConf ?? "/etc/multipath.conf")));
  findings.push(await inUseCheck(target.volumes[0]!.path));
  findings.push(await tunCheck());
  findings.push(...(await mtuChecks(target)));
  findings.push(await target.keyCheck());
  findings.push(...(await portChecks(target)));
  findings.push(await clockCheck());
  findings.push(...(await corosyncCheck(target, options.corosyncConf ?? "/etc/corosync/corosync.conf")));
  return findings;
}

async function volumeChecks(target: Target, findings: Finding[]): Promise<ProbeResult[]> {
  const found: ProbeResult[] = [];
  for (const { role, path } of target.volumes) {
    const check = `volume.${role}`;
    try {
      const p = await probe(path, { ioTimeoutMs: Math.min(target.ioTimeoutMs, 10_000) });
      found.push(p);
      if (!p.directIo) findings.push({ check, severity: "fail", what: `${path}: the file system${p.fileSystem === undefined ? "" : ` (${p.fileSystem})`} refuses O_DIRECT`, why: "without O_DIRECT the receive side reads stale page cache forever and the send side is not durable before the mirror copies it", fix: "put the volume on a block device or a disk file system (ext4, xfs)" });
      else if (p.memoryBacked) findings.push({ check, severity: "warn", what: `${path} is memory-backed (${p.fileSystem ?? p.kind})`, why: "it is not shared storage: nothing outside this host sees it", fix: "use a LUN (/dev/disk/by-id/...) or a file on a disk" });
      else findings.push({ check, severity: "ok", what: `${path}: ${p.kind}, O_DIRECT, ${p.logicalBlockSize}/${p.physicalBlockSize}-byte sectors` });
    } catch (error) {
      const where = target.kind === "pair" ? (role === "send" ? "storage.send" : "storage.receive") : `cluster.members (node ${role === "send" ? "this" : role.slice("receive.node".length)}).ring`;
      findings.push({ check, severity: "fail", what: `${path}: ${(error as Error).message}`, why: `lunlink up cannot open its ${role} volume`, fix: role === "send" ? `check ${where}, the LUN's presentation to this host and its permissions` : `check ${where} and that the LUN or the mirror's target is presented to this host` });
    }
  }
  // Only once every volume opened: a missing one is failed above, and the sizes of the rest prove nothing.
  const [send, ...others] = found.length === target.volumes.length ? found : [];
  if (send !== undefined && others.length > 0) {
    const blocks = (p: ProbeResult) => Math.max(p.logicalBlockSize, p.physicalBlockSize);
    const odd = others.find((r) => blocks(r) !== blocks(send));
    if (odd !== undefined) findings.push({ check: "volume.sectors", severity: "fail", what: `send volume sectors ${send.logicalBlockSize}/${send.physicalBlockSize} bytes, receive volume ${odd.path} ${odd.logicalBlockSize}/${odd.physicalBlockSize}`, why: "the rings are formatted with one block size (max(4096, sector sizes)) and mirrored block for block; a copy with other sectors tears records differently", fix: "present every LUN with the same logical and physical sector size (and format them from one host's view)" });
    else findings.push({ check: "volume.sectors", severity: "ok", what: `${others.length === 1 ? "both" : `all ${others.length + 1}`} volumes address ${blocks(send)}-byte blocks` });
  }
  return found;
}

/** The block device's sysfs directory for a "major:minor", if the path is a block device. */
function sysBlock(p: ProbeResult): string | undefined {
  return p.kind === "block" ? `/sys/dev/block/${p.device}` : undefined;
}

/**
 * Holds a dm-multipath map's queueing against the storage timers. `table` is `dmsetup table`'s line
 * for the map; `conf` is multipath.conf's text (or undefined). Exported for tests: a real map cannot
 * be made on a machine without device-mapper.
 */
export function multipathFinding(path: string, table: string, conf: string | undefined, ioTimeoutMs: number, storageDownMs: number): Finding {
  const check = "volume.multipath";
  const features = /^\s*\d+\s+\d+\s+multipath\s+(\d+)((?:\s+\S+)*)/.exec(table);
  const count = features === null ? 0 : Number(features[1]);
  const words = features === null ? [] : features[2]!.trim().split(/\s+/).slice(0, count);
  const queues = words.includes("queue_if_no_path");
  const retry = conf === undefined ? undefined : /^\s*no_path_retry\s+("?)(\w+)\1/m.exec(conf)?.[2];
  const interval = Number((conf === undefined ? undefined : /^\s*polling_interval\s+(\d+)/m.exec(conf)?.[1]) ?? MULTIPATH_POLLING_INTERVAL_S);
  const budgetMs = ioTimeoutMs + storageDownMs;
  if (!queues && retry !== "queue") return { check, severity: "ok", what: `${path}: multipath map fails I/O at once when every path is lost (no queue_if_no_path)`, fix: "none; lunlink's supervisor retries the volume by itself" };
  if (retry === undefined || retry === "queue") {
    return { check, severity: "fail", what: `${path}: multipath map queues I/O forever when every path is lost (queue_if_no_path${retry === "queue" ? ", no_path_retry queue" : ", no no_path_retry set"})`, why: "a lost array turns into a silent stall (SBD's classic D-state hang): lunlink sees ERR_LUNLINK_IO_STALLED, never an error, and parked requests pin memory until the paths return", fix: `set no_path_retry to a count in multipath.conf (e.g. no_path_retry ${Math.max(1, Math.ceil(budgetMs / 1000 / interval))} with polling_interval ${interval}: queueing ends within the storage timers)` };
  }
  const queueMs = Number(retry) * interval * 1000;
  if (!Number.isFinite(queueMs)) return { check, severity: "warn", what: `${path}: no_path_retry ${retry} is not a number`, fix: "set no_path_retry to a count" };
  if (queueMs > budgetMs) return { check, severity: "warn", what: `${path}: multipath queues I/O up to ${queueMs / 1000} s after the last path is lost (no_path_retry ${retry} x polling_interval ${interval} s)`, why: `longer than ioTimeoutMs ${ioTimeoutMs} + storage downMs ${storageDownMs} = ${budgetMs} ms: a path failover that long is reported as storage down (the link stays on the primary; the supervisor reopens when I/O resumes)`, fix: `accept it (failovers are ridden out by the supervisor), or raise storage.ioTimeoutMs to at least ${queueMs} ms if the storage path must stay up through a whole path failover` };
  return { check, severity: "ok", what: `${path}: multipath queues at most ${queueMs / 1000} s (no_path_retry ${retry} x ${interval} s), within ioTimeoutMs + storage downMs (${budgetMs} ms): path failovers are absorbed` };
}

async function multipathCheck(p: ProbeResult, target: Target, multipathConf: string): Promise<Finding[]> {
  const sys = sysBlock(p);
  if (sys === undefined) return [];
  const uuid = await readFile(`${sys}/dm/uuid`, "utf8").catch(() => "");
  if (!uuid.startsWith("mpath-")) return [];
  const name = (await readFile(`${sys}/dm/name`, "utf8")).trim();
  const table = await execFileAsync("dmsetup", ["table", name]).then((r) => r.stdout, (error: Error) => `unreadable: ${error.message}`);
  const conf = await readFile(multipathConf, "utf8").catch(() => undefined);
  return [multipathFinding(p.path, table, conf, target.ioTimeoutMs, target.timers.storage.downMs)];
}

/** The send volume must be lunlink's alone: not mounted, no holders (LVM, md, a file system). */
async function inUseCheck(path: string): Promise<Finding> {
  const check = "volume.send.in-use";
  let real: string;
  let rdev: string | undefined;
  try {
    real = await realpath(path);
    const s = await stat(real);
    if (s.isBlockDevice()) rdev = `${Math.floor(s.rdev / 256) & 0xfff}:${(s.rdev & 0xff) | ((s.rdev >> 12) & 0xfff00)}`;
  } catch (error) {
    return { check, severity: "fail", what: `${path}: ${(error as Error).message}` };
  }
  if (rdev !== undefined) {
    const mounts = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").filter((l) => l.split(" ")[2] === rdev);
    if (mounts.length > 0) return { check, severity: "fail", what: `${path} (${rdev}) is mounted on ${mounts.map((l) => l.split(" ")[4]).join(", ")}`, why: "lunlink overwrites the whole volume with its ring: the file system on it would be destroyed, and its writes would destroy records", fix: "unmount it and give lunlink a LUN of its own" };
    const holders = await readdir(`/sys/dev/block/${rdev}/holders`).catch(() => []);
    if (holders.length > 0) return { check, severity: "fail", what: `${path} (${rdev}) is held by ${holders.join(", ")}`, why: "another layer (LVM, md, dm) owns the device and writes to it", fix: "remove the holder or give lunlink another LUN" };
  }
  const users = await openers(real);
  const others = users.filter((u) => !/lunlink/.test(u.command));
  if (others.length > 0) return { check, severity: "warn", what: `${path} is open in ${others.map((u) => `${u.command} (pid ${u.pid})`).join(", ")}`, why: "a second writer corrupts the ring; readers are harmless", fix: "make sure none of them writes to it" };
  const mine = users.length > 0 ? ` (open in ${users.map((u) => `${u.command} pid ${u.pid}`).join(", ")})` : "";
  return { check, severity: "ok", what: `${path} is not mounted and has no holders${mine}` };
}

async function openers(real: string): Promise<{ pid: number; command: string }[]> {
  const found: { pid: number; command: string }[] = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "")) !== real) continue;
      const command = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").filter(Boolean).slice(0, 4).join(" ");
      found.push({ pid, command });
      break;
    }
  }
  return found;
}

async function tunCheck(): Promise<Finding> {
  const check = "tun";
  try {
    const s = await stat("/dev/net/tun");
    if (!s.isCharacterDevice()) throw new Error("/dev/net/tun is not a character device");
    const handle = await open("/dev/net/tun", constants.O_RDWR);
    await handle.close();
    return { check, severity: "ok", what: "/dev/net/tun opens read-write" };
  } catch (error) {
    return { check, severity: "fail", what: `TUN: ${(error as Error).message}`, why: "lunlink up creates its interface through /dev/net/tun", fix: "load the tun module (modprobe tun) or, in a container, pass --device /dev/net/tun and CAP_NET_ADMIN" };
  }
}

interface IpAddress {
  ifname: string;
  mtu: number;
  addr_info?: { local: string }[];
}

async function mtuChecks(config: Target): Promise<Finding[]> {
  const check = "mtu";
  const bind = parseEndpoint(config.bind)!;
  if (bind.host === "0.0.0.0") return [{ check, severity: "info", what: "primary.bind is 0.0.0.0: the underlay interface's MTU cannot be told apart from the others", fix: "bind to the underlay address to have it checked" }];
  const out = await execFileAsync("ip", ["-j", "addr", "show"]).then((r) => r.stdout, () => "[]");
  const iface = (JSON.parse(out) as IpAddress[]).find((i) => i.addr_info?.some((a) => a.local === bind.host));
  if (iface === undefined) return [{ check, severity: "fail", what: `no interface here has the primary bind address ${bind.host}`, why: "lunlink up cannot bind its UDP sockets", fix: "add the address, or correct primary.bind" }];
  if (iface.mtu < config.underlayMtu) return [{ check, severity: "fail", what: `${iface.ifname} has MTU ${iface.mtu}, the config says primary.underlayMtu ${config.underlayMtu}`, why: `datagrams of a full ${config.tun.mtu}-byte TUN packet would be fragmented or dropped`, fix: `set primary.underlayMtu to ${iface.mtu} and lower tun.mtu to what check-config allows, or raise the interface's MTU` }];
  return [{ check, severity: "ok", what: `${iface.ifname} MTU ${iface.mtu} carries tun.mtu ${config.tun.mtu} (primary.underlayMtu ${config.underlayMtu})` }];
}

async function keyCheck(config: NodeConfig): Promise<Finding> {
  const check = "keys";
  if (config.keys === undefined) return { check, severity: "warn", what: "no keys configured", why: "UDP datagrams and ring records are neither authenticated nor encrypted: anyone on the network or the SAN can inject packets", fix: "lunlink keygen on each node, then keys.private / keys.peerPublic (docs/security.md)" };
  try {
    await loadKeys(config);
    return { check, severity: "ok", what: `${config.keys.private}: a private key, mode 0600` };
  } catch (error) {
    return { check, severity: "fail", what: (error as LunlinkError).message, why: "lunlink up refuses to start with it", fix: `chmod 600 ${config.keys.private} and check that peerPublic is the peer's key (lunlink pubkey on the peer)` };
  }
}

async function portChecks(config: Target): Promise<Finding[]> {
  const bind = parseEndpoint(config.bind)!;
  const findings: Finding[] = [];
  const ruleset = await execFileAsync("nft", ["-j", "list", "ruleset"]).then(
    (r) => (r.stdout.trim() === "" || /^\s*\{/.test(r.stdout) ? r.stdout : undefined),
    () => undefined,
  );
  for (const port of [bind.port, bind.port + 1]) {
    const check = `udp.${port}`;
    const free = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const socket = dgram.createSocket("udp4");
      socket.once("error", (error) => {
        socket.close();
        resolve(error);
      });
      socket.bind(port, bind.host, () => socket.close(() => resolve(undefined)));
    });
    if (free !== undefined) {
      const owner = await execFileAsync("ss", ["-H", "-u", "-a", "-n", "-p", `sport = :${port}`]).then((r) => /users:\(\("([^"]+)",pid=(\d+)/.exec(r.stdout), () => null);
      const who = owner === null ? "another process" : `${owner[1]} (pid ${owner[2]})`;
      if (owner !== null && owner[1] === "node" && (await readFile(`/proc/${owner[2]}/cmdline`, "utf8").catch(() => "")).includes("lunlink")) findings.push({ check, severity: "info", what: `${bind.host}:${port} is in use by a running lunlink (pid ${owner[2]})` });
      else findings.push({ check, severity: "fail", what: `${bind.host}:${port} cannot be bound: ${free.code ?? free.message} (${who})`, why: `lunlink carries ${port === bind.port ? "data" : "heartbeats and control"} on this port`, fix: "stop the other program or move primary.bind to a free port pair" });
      continue;
    }
    const dropped = ruleset === undefined ? [] : droppingRules(ruleset, port);
    if (dropped.length > 0) findings.push({ check, severity: "fail", what: `nftables drops or rejects UDP port ${port}: ${dropped.join("; ")}`, why: "the primary path never comes up and every failover is to storage", fix: `allow udp dport { ${bind.port}, ${bind.port + 1} } from the peer` });
    else findings.push({ check, severity: "ok", what: `${bind.host}:${port} is free${ruleset === undefined ? " (nft not found: firewall not checked)" : " and no nftables rule drops it"}` });
  }
  return findings;
}

/** nftables rules (nft -j list ruleset) that match UDP destination `port` and drop or reject. */
export function droppingRules(rulesetJson: string, port: number): string[] {
  if (rulesetJson.trim() === "") return []; // nft prints nothing for an empty ruleset
  const { nftables = [] } = JSON.parse(rulesetJson) as { nftables?: { rule?: { table: string; chain: string; expr: unknown[] } }[] };
  const found: string[] = [];
  for (const item of nftables) {
    const rule = item.rule;
    if (rule === undefined) continue;
    const text = JSON.stringify(rule.expr);
    const verdict = /"(drop|reject)"/.exec(text);
    if (verdict === null || !text.includes('"dport"')) continue;
    const ports = [...text.matchAll(/"dport"\}\},"right":(\d+|\{"set":\[[^\]]*\]\}|\{"range":\[\d+,\d+\]\})/g)].map((m) => m[1]!);
    const hit = ports.some((p) => {
      if (/^\d+$/.test(p)) return Number(p) === port;
      const range = /"range":\[(\d+),(\d+)\]/.exec(p);
      if (range !== null) return port >= Number(range[1]) && port <= Number(range[2]);
      return new RegExp(`[\\[,]${port}[\\],]`).test(p);
    });
    if (hit) found.push(`table ${rule.table} chain ${rule.chain} (${verdict[1]})`);
  }
  return found;
}

async function clusterKeyCheck(config: ClusterConfig): Promise<Finding> {
  const check = "keys";
  if (config.keys === undefined) return { check, severity: "warn", what: "no keys configured", why: "UDP datagrams and ring records are neither authenticated nor encrypted: anyone on the network or the SAN can inject packets", fix: "lunlink keygen on each node, then keys.private and every member's publicKey (docs/security.md)" };
  try {
    await loadClusterKey(config);
    return { check, severity: "ok", what: `${config.keys.private}: a private key, mode 0600` };
  } catch (error) {
    return { check, severity: "fail", what: (error as LunlinkError).message, why: "lunlink up refuses to start with it", fix: `chmod 600 ${config.keys.private} and check that each member's publicKey is that member's key (lunlink pubkey on it)` };
  }
}

async function clockCheck(): Promise<Finding> {
  const check = "clock";
  const synced = await execFileAsync("timedatectl", ["show", "-p", "NTPSynchronized", "--value"]).then(
    (r) => r.stdout.trim(),
    () => access("/run/systemd/timesync/synchronized").then(() => "yes", () => undefined),
  );
  if (synced === "yes") return { check, severity: "ok", what: "the system clock is NTP-synchronised" };
  if (synced === "no") return { check, severity: "warn", what: "the system clock is not NTP-synchronised", why: "lunlink's timers use CLOCK_MONOTONIC and do not care, but log timestamps and the records' display times on the two hosts will not line up when you compare them after an incident", fix: "enable chrony or systemd-timesyncd" };
  return { check, severity: "info", what: "clock synchronisation could not be read (no timedatectl, no timesyncd)", fix: "check chronyc tracking or ntpq -p by hand" };
}

/** corosync's totem token timeout (ms) from corosync.conf's text, and how many nodes it lists. */
export function corosyncToken(conf: string): { tokenMs: number; nodes: number; explicit: boolean; ringAddresses: string[] } {
  const totem = /totem\s*\{([^}]*)\}/s.exec(conf)?.[1] ?? "";
  const token = /^\s*token\s*:\s*(\d+)/m.exec(totem);
  const coefficient = Number(/^\s*token_coefficient\s*:\s*(\d+)/m.exec(totem)?.[1] ?? COROSYNC_TOKEN_COEFFICIENT_MS);
  const ringAddresses = [...conf.matchAll(/ring\d+_addr\s*:\s*(\S+)/g)].map((m) => m[1]!);
  const nodes = [...conf.matchAll(/\bnode\s*\{/g)].length;
  const base = token === null ? COROSYNC_TOKEN_MS : Number(token[1]);
  // corosync 3: the real timeout grows with the node count beyond two (token + (nodes - 2) * coefficient).
  return { tokenMs: base + Math.max(0, nodes - 2) * coefficient, nodes, explicit: token !== null, ringAddresses };
}

/** The corosync check of a checked config of either kind: doctor's, and `check-config --corosync-conf`'s. None if `path` cannot be read. */
export function corosyncFindings(config: AnyConfig, path: string): Promise<Finding[]> {
  return corosyncCheck(config.kind === "pair" ? pairTarget(config.config) : clusterTarget(config.config), path);
}

async function corosyncCheck(config: Target, path: string): Promise<Finding[]> {
  const text = await readFile(path, "utf8").catch(() => undefined);
  if (text === undefined) return [];
  const check = "corosync";
  const c = corosyncToken(text);
  const t = config.timers;
  // Traffic moves to storage once the primary is declared down; until then it is lost.
  const failoverMs = t.primary.downMs + t.primary.heartbeatMs;
  const findings: Finding[] = [];
  const prefix = config.tun.address.split("/")[0]!.split(".").slice(0, 3).join(".");
  const tunHost = config.tun.address.split("/")[0]!;
  if (c.ringAddresses.length > 0 && !c.ringAddresses.some((a) => a.startsWith(`${prefix}.`))) findings.push({ check, severity: "info", what: `${path}: no ring address is on ${config.tun.name}'s subnet (${config.tun.address}): corosync does not run over lunlink`, fix: "use the TUN addresses as ringX_addr (README: cluster integration)" });
  else if (config.peerAddresses !== undefined) {
    // A cluster routes by destination address: a ring address on the subnet that is no member's is never delivered.
    const known = new Set([tunHost, ...config.peerAddresses]);
    const strays = c.ringAddresses.filter((a) => a.startsWith(`${prefix}.`) && !known.has(a));
    if (strays.length > 0) findings.push({ check, severity: "fail", what: `${path}: ring address${strays.length === 1 ? "" : "es"} ${strays.join(", ")} on ${config.tun.name}'s subnet ${strays.length === 1 ? "is" : "are"} no cluster member's address`, why: "lunlink routes a packet to the member whose address it is sent to; corosync's packets to these go nowhere and those nodes never join", fix: "make each node's ringX_addr its cluster.members address (or add the member to the lunlink config)" });
    const missing = config.peerAddresses.filter((a) => !c.ringAddresses.includes(a));
    if (missing.length > 0) findings.push({ check, severity: "info", what: `${path}: cluster member${missing.length === 1 ? "" : "s"} ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} in no corosync node's ring address`, fix: "none if those nodes are not in this corosync cluster" });
  }
  if (c.tokenMs <= failoverMs) findings.push({ check, severity: "fail", what: `${path}: totem token ${c.tokenMs} ms is not longer than lunlink's failover bound ${failoverMs} ms (primary downMs ${t.primary.downMs} + heartbeatMs ${t.primary.heartbeatMs})`, why: "corosync loses the token before lunlink has moved traffic to storage: a network cut still splits the membership", fix: `raise token to at least ${failoverMs * 3} ms, or lower timers.primary.downMs` });
  else if (c.tokenMs < failoverMs * 3) findings.push({ check, severity: "warn", what: `${path}: totem token ${c.tokenMs} ms leaves less than 3x lunlink's failover bound (${failoverMs} ms)`, why: "one retransmit of the token over storage on top of the failover can exceed it", fix: `token ${failoverMs * 3} ms or more` });
  else findings.push({ check, severity: "ok", what: `${path}: totem token ${c.tokenMs} ms${c.explicit ? "" : " (default)"} is ${(c.tokenMs / failoverMs).toFixed(1)}x lunlink's failover bound (${failoverMs} ms)` });
  return findings;
}
