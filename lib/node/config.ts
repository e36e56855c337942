// The node's config file (JSON): schema, defaults and cross-field rules, with one error per bad
// value naming the key, the value found and what is allowed (`lunlink check-config` prints them
// all). Two kinds share every tuning key: a pair's node (peer, storage.send/receive) and a cluster's
// (a `cluster` section listing the members; a 2-member cluster is the pair's N = 2 case). zod does the per-field checks; the rules that span fields (timers in order, an MTU every
// path can carry) are below it. Nothing here touches a device or a socket.
import { readFile } from "node:fs/promises";
import { isIPv4 } from "node:net";
import { z } from "zod";

import { DEFAULT_DAMAGE_TIMEOUT_MS, DEFAULT_IO_TIMEOUT_MS, DEFAULT_MAX_DELAY_MS, DEFAULT_MIRROR_LAG_MS, DEFAULT_POLL_MAX_MS, MAX_PAIR_STORAGE_HEARTBEAT_MS } from "../defaults.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import { KEY_BASE64, publicKeyOf, readPrivateKeyFile } from "../link/keys.ts";
import { MESSAGE_HEADER_BYTES } from "../link/message.ts";
import { DEFAULT_TIMERS, type LinkTimers } from "../link/paths.ts";
import { SEAL_OVERHEAD_BYTES } from "../link/seal.ts";
import { MAX_CLUSTER_NODES, MAX_CLUSTER_NODE_ID, MIN_CLUSTER_NODES } from "../format/layout.ts";
import { ClusterRoutes } from "./cluster-route.ts";
import { DEFAULT_RECOVERY } from "../io/supervisor.ts";
import { ENGINE_CHOICES } from "../io/volume.ts";
import type { Endpoint, LinkOptions } from "../link/link.ts";

/** A cluster's default peerDownMs: far above any mirror lag, far below an operator's patience. */
export const DEFAULT_PEER_DOWN_MS = 10_000;

const IP_UDP_HEADER_BYTES = 28;
/** The largest frame a storage record carries (the ring's u16 frame length). */
const STORAGE_MAX_PAYLOAD_BYTES = 65535 - MESSAGE_HEADER_BYTES;

const endpoint = z.string().refine((s) => parseEndpoint(s) !== undefined, { message: "an IPv4 address and port, like 198.18.1.1:7410" });
const ms = (min: number, max: number) => z.number().int().min(min).max(max);
const pathTimers = (d: LinkTimers["primary"]) =>
  z
    .object({ heartbeatMs: ms(1, 60_000).default(d.heartbeatMs), suspectMs: ms(2, 600_000).default(d.suspectMs), downMs: ms(3, 600_000).default(d.downMs) })
    .strict()
    .prefault({});

const tunSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-zA-Z0-9_.-]{1,15}$/, "1-15 characters: letters, digits, '_', '.', '-'")
      .default("lunlink0"),
    address: z.string().refine(isCidr, { message: "an IPv4 address with prefix length, like 198.18.100.1/24" }),
    mtu: z.number().int().min(576).max(65535).default(1400),
    /** TUN offload (TCP superpackets, docs/format.md): off for a peer older than superpackets. */
    offload: z.boolean().default(true),
  })
  .strict();

/** Storage settings of a node's rings (where the rings are is the pair's `send`/`receive` or the cluster's members). */
const storageTuning = {
  dsync: z.boolean().default(true),
  maxDelayMs: ms(0, 1000).default(DEFAULT_MAX_DELAY_MS),
  pollMaxMs: ms(1, 1000).default(DEFAULT_POLL_MAX_MS),
  // The receive follower's sleep in standby (primary up, storage idle); absent: DEFAULT_POLL_STANDBY_MAX_MS, or pollMaxMs if that is longer.
  pollStandbyMaxMs: ms(1, 1000).optional(),
  ioTimeoutMs: ms(1, 3_600_000).default(DEFAULT_IO_TIMEOUT_MS),
  // The longest a record of the peer takes from its write to whole on storage.receive (the mirror's worst lag; 0: one shared LUN).
  mirrorLagMs: ms(0, 600_000).default(DEFAULT_MIRROR_LAG_MS),
  // A slot invalid this long while the peer's head is past it is damaged and skipped; at least minDamageTimeoutMs().
  damageTimeoutMs: ms(1, 600_000).default(DEFAULT_DAMAGE_TIMEOUT_MS),
  // After a storage fault: reopen with a doubling, jittered delay (a stall waits for the device instead).
  recovery: z
    .object({
      backoffMinMs: ms(1, 600_000).default(DEFAULT_RECOVERY.backoffMinMs),
      backoffMaxMs: ms(1, 600_000).default(DEFAULT_RECOVERY.backoffMaxMs),
      backoffJitter: z.number().min(0).max(1).default(DEFAULT_RECOVERY.backoffJitter),
      reopenVolumeAfter: z.number().int().min(1).max(1000).default(DEFAULT_RECOVERY.reopenVolumeAfter),
    })
    .strict()
    .prefault({}),
};

const timersSchema = z
  .object({
    primary: pathTimers(DEFAULT_TIMERS.primary),
    storage: pathTimers(DEFAULT_TIMERS.storage),
    holdDownMs: ms(0, 3_600_000).default(DEFAULT_TIMERS.holdDownMs),
    selfPauseMs: ms(1, 600_000).default(DEFAULT_TIMERS.selfPauseMs),
    failbackDrainMs: ms(0, 600_000).default(DEFAULT_TIMERS.failbackDrainMs),
    controlRtoMs: ms(1, 600_000).default(200),
  })
  .strict()
  .prefault({});

/** The parts of a node's config that a pair and a cluster share. */
const commonFields = {
  node: z.number().int().min(1).max(255),
  tun: tunSchema,
  timers: timersSchema,
  control: z.object({ socket: z.string().min(1).optional() }).strict().prefault({}),
  metrics: z.object({ listen: endpoint.optional(), allowRemote: z.boolean().default(false) }).strict().prefault({}),
  /** "realtime": SCHED_RR 1 for every thread, as corosync runs (lib/node/scheduling.ts); "normal": the default scheduler. */
  scheduling: z.enum(["realtime", "normal"]).default("realtime"),
};

export const configSchema = z
  .object({
    ...commonFields,
    peer: z.number().int().min(1).max(255),
    primary: z.object({ bind: endpoint, peer: endpoint, underlayMtu: z.number().int().min(576).max(65535).default(1500) }).strict(),
    storage: z
      .object({
        send: z.string().min(1),
        receive: z.string().min(1),
        // The receive volume's I/O engine (a pair's only: a cluster's peer rings open through cluster-storage with the Volume default).
        receiveEngine: z.enum(ENGINE_CHOICES).optional(),
        ...storageTuning,
      })
      .strict(),
    keys: z
      .object({
        private: z.string().min(1),
        peerPublic: z.string().regex(KEY_BASE64, "the peer's public key: 32 bytes in base64 (44 characters, from lunlink pubkey)"),
      })
      .strict()
      .optional(),
  })
  .strict();

export type NodeConfig = z.infer<typeof configSchema>;

/**
 * A node of a cluster (issue #14): the members (this node among them) each with its node id, its
 * address on the TUN subnet, its primary UDP endpoint (this node binds its own) and where its ring is
 * read from: a volume path, which on a cluster volume (format --cluster) means that node's region, or
 * a mirror copy of its ring. This node writes its own member's ring. Keys: this node's private key and
 * each peer's public key (every pair of nodes derives its own UDP session keys as a pair does), and
 * the cluster secret file that keys every ring (one key per writer, known to every member).
 */
export const clusterConfigSchema = z
  .object({
    ...commonFields,
    primary: z.object({ underlayMtu: z.number().int().min(576).max(65535).default(1500) }).strict().prefault({}),
    storage: z
      .object({
        ...storageTuning,
        // A peer whose status heartbeat has not moved this long stops holding our ring back (reported).
        peerDownMs: ms(1, 3_600_000).default(DEFAULT_PEER_DOWN_MS),
      })
      .strict()
      .prefault({}),
    cluster: z
      .object({
        members: z
          .array(
            z
              .object({
                node: z.number().int().min(1).max(MAX_CLUSTER_NODE_ID),
                address: z.string().refine(isIPv4, { message: "the member's IPv4 address on the TUN subnet, like 198.18.100.2" }),
                primary: endpoint,
                ring: z.string().min(1),
                publicKey: z.string().regex(KEY_BASE64, "the member's public key: 32 bytes in base64 (44 characters, from lunlink pubkey)").optional(),
              })
              .strict(),
          )
          .min(MIN_CLUSTER_NODES)
          .max(MAX_CLUSTER_NODES),
      })
      .strict(),
    keys: z
      .object({
        private: z.string().min(1),
        // The cluster secret file (lunlink keys cluster-secret, the same on every member): keys every ring; absent, the rings are unkeyed.
        clusterSecret: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type ClusterConfig = z.infer<typeof clusterConfigSchema>;
export type ClusterMemberConfig = ClusterConfig["cluster"]["members"][number];

/** Parses and checks a cluster node's config object; returns every problem, or the config with defaults filled. */
export function checkClusterConfig(raw: unknown): { ok: true; config: ClusterConfig } | { ok: false; problems: ConfigProblem[] } {
  const parsed = clusterConfigSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, problems: zodProblems(raw, parsed.error.issues) };
  const c = parsed.data;
  const problems: ConfigProblem[] = [];
  commonProblems(c, c.primary.underlayMtu, c.keys !== undefined, problems);
  const members = c.cluster.members;
  const self = members.find((m) => m.node === c.node);
  if (self === undefined) problems.push({ key: "cluster.members", value: members.map((m) => m.node), allowed: `a member with node ${c.node} (this node)` });
  const [tunHost] = c.tun.address.split("/");
  if (self !== undefined && self.address !== tunHost) problems.push({ key: `cluster.members[node ${self.node}].address`, value: self.address, allowed: `this node's tun.address host (${tunHost})` });
  try {
    new ClusterRoutes(c.tun.address, members, c.node);
  } catch (error) {
    problems.push({ key: "cluster.members", value: members.map((m) => `${m.node} ${m.address}`), allowed: error instanceof Error ? error.message : String(error) });
  }
  const endpoints = new Set<string>();
  members.forEach((m, i) => {
    portProblem(`cluster.members.${i}.primary`, m.primary, problems);
    if (endpoints.has(m.primary)) problems.push({ key: `cluster.members.${i}.primary`, value: m.primary, allowed: "an endpoint no other member has" });
    endpoints.add(m.primary);
    if (c.keys !== undefined && m.node !== c.node && m.publicKey === undefined) problems.push({ key: `cluster.members.${i}.publicKey`, value: undefined, allowed: "the member's public key (keys are configured)" });
  });
  if (c.storage.peerDownMs <= c.timers.storage.downMs) problems.push({ key: "storage.peerDownMs", value: c.storage.peerDownMs, allowed: `more than timers.storage.downMs (${c.timers.storage.downMs}): a peer is released only well after its storage path went down` });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config: c };
}

/** A config file's contents: a pair's node (peer, send, receive) or a cluster's (a `cluster` section). */
export type AnyConfig = { kind: "pair"; config: NodeConfig } | { kind: "cluster"; config: ClusterConfig };

/** Checks a config object of either kind: one with a `cluster` key is a cluster node's. */
export function checkAnyConfig(raw: unknown): { ok: true; config: AnyConfig } | { ok: false; problems: ConfigProblem[] } {
  if (typeof raw === "object" && raw !== null && "cluster" in raw) {
    const r = checkClusterConfig(raw);
    return r.ok ? { ok: true, config: { kind: "cluster", config: r.config } } : r;
  }
  const r = checkConfig(raw);
  return r.ok ? { ok: true, config: { kind: "pair", config: r.config } } : r;
}

export interface ConfigProblem {
  key: string;
  value: unknown;
  allowed: string;
}

/** Parses and checks a pair's config object; returns every problem, or the config with defaults filled. */
export function checkConfig(raw: unknown): { ok: true; config: NodeConfig } | { ok: false; problems: ConfigProblem[] } {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, problems: zodProblems(raw, parsed.error.issues) };
  const c = parsed.data;
  const problems: ConfigProblem[] = [];
  if (c.peer === c.node) problems.push({ key: "peer", value: c.peer, allowed: "a node id other than node" });
  commonProblems(c, c.primary.underlayMtu, c.keys !== undefined, problems);
  for (const key of ["bind", "peer"] as const) portProblem(`primary.${key}`, c.primary[key], problems);
  if (c.storage.send === c.storage.receive) problems.push({ key: "storage.receive", value: c.storage.receive, allowed: "a volume other than storage.send" });
  const storageHeartbeatMs = c.timers.storage.heartbeatMs;
  if (storageHeartbeatMs > MAX_PAIR_STORAGE_HEARTBEAT_MS) problems.push({ key: "timers.storage.heartbeatMs", value: storageHeartbeatMs, allowed: `at most ${MAX_PAIR_STORAGE_HEARTBEAT_MS}: the receiver re-reads the peer's status every 2 storage heartbeats while idle, at most every ${2 * MAX_PAIR_STORAGE_HEARTBEAT_MS} ms` });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config: c };
}

type ZodIssues = z.ZodError["issues"];

function zodProblems(raw: unknown, issues: ZodIssues): ConfigProblem[] {
  return issues.map((issue) => {
    const path = issue.path.map(String);
    const key = issue.code === "unrecognized_keys" ? [...path, issue.keys.join(",")].join(".") : path.join(".");
    return { key: key || "(top level)", value: issue.code === "unrecognized_keys" ? "(unknown key)" : valueAt(raw, path), allowed: issue.message };
  });
}

/** The rules a pair and a cluster share: timers in order, an MTU every path carries, metrics, damage timer, backoff. */
function commonProblems(
  c: { tun: { mtu: number }; timers: z.infer<typeof timersSchema>; metrics: { listen?: string | undefined; allowRemote: boolean }; storage: { mirrorLagMs: number; pollMaxMs: number; pollStandbyMaxMs?: number | undefined; damageTimeoutMs: number; recovery: { backoffMinMs: number; backoffMaxMs: number } } },
  underlayMtu: number,
  sealed: boolean,
  problems: ConfigProblem[],
): void {
  for (const name of ["primary", "storage"] as const) {
    const t = c.timers[name];
    if (t.suspectMs <= t.heartbeatMs) problems.push({ key: `timers.${name}.suspectMs`, value: t.suspectMs, allowed: `more than heartbeatMs (${t.heartbeatMs}): at least one heartbeat must be missed` });
    if (t.downMs <= t.suspectMs) problems.push({ key: `timers.${name}.downMs`, value: t.downMs, allowed: `more than suspectMs (${t.suspectMs})` });
  }
  const sealBytes = sealed ? SEAL_OVERHEAD_BYTES : 0;
  const udpMax = underlayMtu - IP_UDP_HEADER_BYTES - MESSAGE_HEADER_BYTES - sealBytes;
  if (c.tun.mtu > udpMax) problems.push({ key: "tun.mtu", value: c.tun.mtu, allowed: `at most ${udpMax}: the primary path carries underlayMtu ${underlayMtu} - ${IP_UDP_HEADER_BYTES} (IP+UDP) - ${MESSAGE_HEADER_BYTES} (link header)${sealBytes === 0 ? "" : ` - ${sealBytes} (counter + AEAD tag)`}` });
  if (c.tun.mtu > STORAGE_MAX_PAYLOAD_BYTES) problems.push({ key: "tun.mtu", value: c.tun.mtu, allowed: `at most ${STORAGE_MAX_PAYLOAD_BYTES}: the storage path's largest frame` });
  const metricsAt = c.metrics.listen === undefined ? undefined : parseEndpoint(c.metrics.listen);
  if (metricsAt !== undefined && !metricsAt.host.startsWith("127.") && !c.metrics.allowRemote) {
    problems.push({ key: "metrics.listen", value: c.metrics.listen, allowed: "a loopback address (127.0.0.0/8); set metrics.allowRemote to serve metrics beyond this host" });
  }
  const damageFloorMs = minDamageTimeoutMs(c.storage);
  if (c.storage.damageTimeoutMs < damageFloorMs) {
    problems.push({ key: "storage.damageTimeoutMs", value: c.storage.damageTimeoutMs, allowed: `at least ${damageFloorMs} = 2 x mirrorLagMs (${c.storage.mirrorLagMs}) + pollMaxMs (${c.storage.pollMaxMs}): a shorter timer skips records still in transit through the mirror as damaged (README: damageTimeoutMs)` });
  }
  const standbyMs = c.storage.pollStandbyMaxMs;
  if (standbyMs !== undefined && standbyMs < c.storage.pollMaxMs) problems.push({ key: "storage.pollStandbyMaxMs", value: standbyMs, allowed: `at least pollMaxMs (${c.storage.pollMaxMs}): standby only ever lengthens the idle sleep` });
  const r = c.storage.recovery;
  if (r.backoffMaxMs < r.backoffMinMs) problems.push({ key: "storage.recovery.backoffMaxMs", value: r.backoffMaxMs, allowed: `at least backoffMinMs (${r.backoffMinMs})` });
}

function portProblem(key: string, value: string, problems: ConfigProblem[]): void {
  const at = parseEndpoint(value);
  if (at !== undefined && at.port > 65534) problems.push({ key, value, allowed: "a port of at most 65534 (the next port carries heartbeats and control)" });
}

/**
 * The shortest safe damageTimeoutMs. A record still in transit is whole on the receive volume at most
 * mirrorLagMs after the peer began writing it, and the reader's damage timer cannot start before that
 * write began (until then the slot holds an older seq: row E3, no timer); the slot the reader judges
 * may be one poll (pollMaxMs) old. mirrorLagMs counts twice because a lag is a measured percentile that
 * moves with load (README's lag table: p99 6-8 ms at 10 MB/s, 0.7-1.3 s saturated).
 */
export function minDamageTimeoutMs(storage: { mirrorLagMs: number; pollMaxMs: number }): number {
  return 2 * storage.mirrorLagMs + storage.pollMaxMs;
}

export function formatProblems(source: string, problems: ConfigProblem[]): string {
  return problems.map((p) => `${source}: ${p.key} = ${JSON.stringify(p.value) ?? "undefined"}: expected ${p.allowed}`).join("\n");
}

/** Reads and checks a pair's config file; throws ERR_LUNLINK_BAD_CONFIG listing every problem (a cluster's too). */
export async function loadConfig(file: string): Promise<NodeConfig> {
  const any = await loadAnyConfig(file);
  if (any.kind !== "pair") throw new LunlinkError(ErrorCode.BadConfig, `config ${file}: a cluster node's config (it has a cluster section); this needs a pair's`, { path: file });
  return any.config;
}

/** Reads and checks a config file of either kind; throws ERR_LUNLINK_BAD_CONFIG listing every problem. */
export async function loadAnyConfig(file: string): Promise<AnyConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new LunlinkError(ErrorCode.BadConfig, `config ${file}: cannot read it (${e.code ?? e.message})`, { path: file, cause: error });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new LunlinkError(ErrorCode.BadConfig, `config ${file}: not valid JSON (${(error as Error).message})`, { path: file, cause: error });
  }
  const result = checkAnyConfig(raw);
  if (!result.ok) throw new LunlinkError(ErrorCode.BadConfig, formatProblems(file, result.problems), { path: file });
  return result.config;
}

export function parseEndpoint(text: string): Endpoint | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  if (m === null || !isIPv4(m[1]!)) return undefined;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: m[1]!, port } : undefined;
}

function isCidr(text: string): boolean {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text);
  return m !== null && isIPv4(m[1]!) && Number(m[2]) >= 1 && Number(m[2]) <= 32;
}

/** The control socket path: configured, or /run/lunlink/<tun name>.sock. */
export function controlSocketPath(c: Pick<NodeConfig, "control" | "tun">): string {
  return c.control.socket ?? `/run/lunlink/${c.tun.name}.sock`;
}

/** Reads the private key file named by the config (mode checked), if keys are configured. */
export async function loadKeys(c: NodeConfig): Promise<LinkOptions["keys"]> {
  if (c.keys === undefined) return undefined;
  const privateKey = await readPrivateKeyFile(c.keys.private);
  if (publicKeyOf(privateKey) === c.keys.peerPublic) throw new LunlinkError(ErrorCode.BadConfig, `keys.peerPublic is this node's own public key: configure the peer's (lunlink pubkey on the peer)`);
  return { privateKey, peerPublicKey: c.keys.peerPublic };
}

export function linkOptions(c: NodeConfig, log?: LinkOptions["log"], keys?: LinkOptions["keys"]): LinkOptions {
  const { controlRtoMs, ...timers } = c.timers;
  return {
    nodeId: c.node,
    peerNodeId: c.peer,
    primary: { bind: parseEndpoint(c.primary.bind)!, peer: parseEndpoint(c.primary.peer)! },
    storage: { send: c.storage.send, receive: c.storage.receive, ...(c.storage.receiveEngine === undefined ? {} : { receiveEngine: c.storage.receiveEngine }), dsync: c.storage.dsync, maxDelayMs: c.storage.maxDelayMs, pollMaxMs: c.storage.pollMaxMs, ...(c.storage.pollStandbyMaxMs === undefined ? {} : { pollStandbyMaxMs: c.storage.pollStandbyMaxMs }), ioTimeoutMs: c.storage.ioTimeoutMs, damageTimeoutMs: c.storage.damageTimeoutMs, recovery: c.storage.recovery },
    timers,
    controlRtoMs,
    ...(log === undefined ? {} : { log }),
    ...(keys === undefined ? {} : { keys }),
  };
}

function valueAt(raw: unknown, path: string[]): unknown {
  let v: unknown = raw;
  for (const k of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}
