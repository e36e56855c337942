// A cluster of N hosts on one machine, for the cluster device tests and `bench cluster`: N network
// namespaces plugged into a bridge in a "switch" namespace (the primary network, 198.18.1.0/24 inside
// the namespaces only), the rings, and `lunlink up` with a cluster config in each node's namespace.
// Rings, by layout: "shared", one loop device (direct I/O, 4096-byte sectors) formatted as a cluster
// volume whose regions every node reads directly (the SAN case); "mirrors", a volume per node (a
// cluster volume of which it writes its own region) and on every node a copy of each peer's region
// (a node volume) kept by `lunlink mirror copy --follow --region` in the root namespace, standing in
// for the arrays (so a cut of a node's network never touches them), or for one pair by `mirror push`
// in an "array" namespace to `mirror serve` in the reader's namespace over a storage veth of their own.
// Keyed: a cluster secret (mode 0600) formats every region keyed and each node gets X25519 keys
// (sealed UDP per pair), its private key file, the secret and every member's public key in its config.
// Every resource is named with the lab's prefix and recorded as it is created; destroy() removes
// exactly those (safe twice and after a partial create()). Host plumbing shared with lab.ts: lab-plumbing.ts.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

import { Volume } from "../io/volume.ts";
import { MAX_CLUSTER_NODES } from "../format/layout.ts";
import { generateKeys } from "../link/keys.ts";
import { formatCluster } from "../ring/cluster.ts";
import type { ClusterNodeStatus } from "./cluster-status.ts";
import { readClusterSecretFile, writeClusterSecretFile } from "./cluster-secret.ts";
import { callControl } from "./control.ts";
import { MirrorProcess, lunlinkBin } from "./lab.ts";
import { attachDirectLoop, builtOrDestroyed, deleteNamespace, detachLoop, execIn, ip, pingEach, spawnIn as spawnInNs, spawnUp, startLabStream, stopUp, untilAnswers, waitForCopy, writeOut, type LabHost, type StreamReport } from "./lab-plumbing.ts";

const UNDERLAY = "198.18.1";
const TUN_SUBNET = "198.18.100";
/** The storage veth of a remote mirror (array namespace .1, reader's namespace .2), apart from the primary. */
const STORAGE_SUBNET = "198.18.2";
const REMOTE_MIRROR_PORT = 7420;
/** Bound on a mirror's first full copy reaching its destination. */
const MIRROR_RESYNC_TIMEOUT_MS = 30_000;
/** Lines of node logs kept (a bound: a chatty node must not grow the lab without limit). */
const MAX_LOG_LINES = 5000;
/** Shared volume size: 16 MiB per node, at least 48 MiB (each region needs room for its ring). */
const VOLUME_BYTES_PER_NODE = 16 * 1024 * 1024;
const MIN_VOLUME_BYTES = 48 * 1024 * 1024;

export interface ClusterLabOptions {
  /** Nodes, ids 1..count (2..MAX_CLUSTER_NODES). */
  count: number;
  /** Namespace and interface name prefix ("llt-" tests, "llb-" bench). */
  prefix: string;
  /** Prefix of the scratch directory's path (a disk file system: O_DIRECT); "/var/tmp/lunlink-test-" for tests. */
  dirPrefix?: string;
  /** Extra config for every node (timers, storage...), merged over the lab's. */
  config?: Record<string, unknown>;
  /** "shared" (default): one cluster volume read directly by all; "mirrors": a volume per node, peers read mirror copies. */
  layout?: "shared" | "mirrors";
  /** With "mirrors": the copy of node `from`'s region on node `to` is kept by `mirror push/serve` over a storage veth, not a local copy. */
  remoteMirror?: { from: number; to: number };
  /** A keyed cluster: every region keyed by a cluster secret, the UDP sealed per pair (X25519 keys per node). */
  keyed?: boolean;
}

export interface ClusterLabNode extends LabHost {
  id: number;
}

export class ClusterLab {
  readonly nodes: ClusterLabNode[] = [];
  /** The shared cluster volume (a loop device); "" until create() attached it, and with layout "mirrors". */
  volume = "";
  /** Layout "mirrors": each node's own volume (a loop device), by node id - 1. */
  readonly nodeVolumes: string[] = [];
  /** Layout "mirrors": the local mirrors `lunlink mirror copy --follow --region` (root namespace). */
  readonly mirrors: MirrorProcess[] = [];
  readonly logs: string[] = [];
  readonly dir: string;
  /** Keyed: the cluster secret file (mode 0600) every node's config names; "" when unkeyed. */
  clusterSecretPath = "";
  /** Keyed: the cluster secret, which formats every volume of the lab. */
  private clusterSecret: Buffer | undefined;
  private readonly options: ClusterLabOptions;
  private readonly tag = randomBytes(2).toString("hex");
  private readonly namespaces: string[] = [];
  private readonly extra: ChildProcess[] = [];
  private readonly loops: string[] = [];
  private destroyed = false;

  private constructor(options: ClusterLabOptions, dir: string) {
    this.options = options;
    this.dir = dir;
  }

  /** Builds the namespaces, the switch, the shared cluster volume and every node's config (nodes not started). */
  static async create(options: ClusterLabOptions): Promise<ClusterLab> {
    if (!Number.isInteger(options.count) || options.count < 2 || options.count > MAX_CLUSTER_NODES) throw new Error(`a cluster lab has 2..${MAX_CLUSTER_NODES} nodes, got ${options.count}`);
    const dir = await mkdtemp(options.dirPrefix ?? `/var/tmp/lunlink-${options.prefix.replace(/-$/, "")}-cluster-`);
    const lab = new ClusterLab(options, dir);
    return builtOrDestroyed(lab, () => lab.build(), () => lab.destroy());
  }

  private async build(): Promise<void> {
    const { prefix, count } = this.options;
    const short = prefix.replace(/-$/, "");
    const sw = await this.addNamespace(`${prefix}${this.tag}-sw`);
    await ip(["-n", sw, "link", "add", "br0", "type", "bridge"]);
    await ip(["-n", sw, "link", "set", "br0", "up"]);
    for (let id = 1; id <= count; id++) {
      const ns = await this.addNamespace(`${prefix}${this.tag}-n${id}`);
      const veth = `${short}${this.tag}n${id}`.slice(0, 15);
      const port = `${short}${this.tag}s${id}`.slice(0, 15);
      // Created inside the namespaces: deleting them removes both ends.
      await ip(["link", "add", veth, "netns", ns, "type", "veth", "peer", "name", port, "netns", sw]);
      await ip(["-n", sw, "link", "set", port, "master", "br0"]);
      await ip(["-n", sw, "link", "set", port, "up"]);
      await ip(["-n", ns, "addr", "add", `${UNDERLAY}.${id}/24`, "dev", veth]);
      await ip(["-n", ns, "link", "set", veth, "up"]);
      this.nodes.push({ id, ns, veth, underlayAddress: `${UNDERLAY}.${id}`, tunAddress: `${TUN_SUBNET}.${id}`, configPath: join(this.dir, `node${id}.json`), socketPath: join(this.dir, `node${id}.sock`) });
    }
    const keys = this.options.keyed === true ? await this.writeKeys() : undefined;
    const rings = this.options.layout === "mirrors" ? await this.mirroredRings() : await this.sharedRings();
    const members = this.nodes.map((n) => ({ node: n.id, address: n.tunAddress, primary: `${n.underlayAddress}:7410`, ring: "", ...(keys === undefined ? {} : { publicKey: keys.get(n.id)!.publicKey }) }));
    for (const n of this.nodes) {
      const own = members.map((m) => ({ ...m, ring: rings(n.id, m.node) }));
      const nodeKeys = keys === undefined ? {} : { keys: { private: keys.get(n.id)!.privateFile, clusterSecret: this.clusterSecretPath } };
      const c = { node: n.id, tun: { name: "lunlink0", address: `${n.tunAddress}/24` }, cluster: { members: own }, control: { socket: n.socketPath }, ...nodeKeys, ...this.options.config };
      await writeFile(n.configPath, `${JSON.stringify(c, null, 2)}\n`);
    }
  }

  /** Keyed: the cluster secret (mode 0600) and each node's X25519 private key file (mode 0600); the public keys by node. */
  private async writeKeys(): Promise<Map<number, { privateFile: string; publicKey: string }>> {
    this.clusterSecretPath = join(this.dir, "cluster.secret");
    await writeClusterSecretFile(this.clusterSecretPath, false);
    this.clusterSecret = await readClusterSecretFile(this.clusterSecretPath);
    const keys = new Map<number, { privateFile: string; publicKey: string }>();
    for (const n of this.nodes) {
      const { privateKey, publicKey } = generateKeys();
      const privateFile = join(this.dir, `node${n.id}.key`);
      await writeFile(privateFile, `${privateKey}\n`, { mode: 0o600, flag: "wx" });
      keys.set(n.id, { privateFile, publicKey });
    }
    return keys;
  }

  /** One cluster volume holding every node's region, read directly by all: where node `reader` finds node `writer`'s ring. */
  private async sharedRings(): Promise<(reader: number, writer: number) => string> {
    const count = this.nodes.length;
    this.volume = await this.attach(await writeOut(join(this.dir, "cluster.img"), Math.max(MIN_VOLUME_BYTES, count * VOLUME_BYTES_PER_NODE)));
    await this.formatCluster(this.volume);
    return () => this.volume;
  }

  /**
   * A volume per node (a cluster volume of which the node writes its own region), and on each node a
   * node-volume copy of every peer's region, kept by a mirror; each mirror has done its first copy
   * before this returns. Where node `reader` finds node `writer`'s ring: its own volume, or its copy.
   */
  private async mirroredRings(): Promise<(reader: number, writer: number) => string> {
    const count = this.nodes.length;
    const uuids: string[] = [];
    let regionBytes = 0;
    for (const n of this.nodes) {
      const device = await this.attach(await writeOut(join(this.dir, `node${n.id}.img`), Math.max(MIN_VOLUME_BYTES, count * VOLUME_BYTES_PER_NODE)));
      this.nodeVolumes.push(device);
      const { header, superblocks } = await this.formatCluster(device);
      uuids.push(superblocks[n.id - 1]!.volumeUuid);
      regionBytes = Number(header.regions[n.id - 1]!.blocks) * header.blockBytes;
    }
    const copy = (reader: number, writer: number): string => join(this.dir, `node${writer}-on-node${reader}.img`);
    const remote = this.options.remoteMirror;
    for (const reader of this.nodes) {
      for (const writer of this.nodes) {
        if (writer.id === reader.id) continue;
        await writeOut(copy(reader.id, writer.id), regionBytes);
        if (remote?.from === writer.id && remote.to === reader.id) await this.remoteMirror(writer.id, reader.id, copy(reader.id, writer.id));
        else this.mirrors.push(new MirrorProcess(this.nodeVolumes[writer.id - 1]!, copy(reader.id, writer.id), writer.id));
      }
    }
    for (const m of this.mirrors) await m.resynced(uuids[m.region! - 1]!);
    if (remote !== undefined) await waitForCopy(copy(remote.to, remote.from), uuids[remote.from - 1]!, MIRROR_RESYNC_TIMEOUT_MS);
    return (reader, writer) => (reader === writer ? this.nodeVolumes[writer - 1]! : copy(reader, writer));
  }

  /**
   * Node `from`'s region pushed by `lunlink mirror push --region` from an "array" namespace to
   * `lunlink mirror serve` in node `to`'s namespace, over a veth of their own (the primary's cut
   * leaves it up): the remote mirror mode, the replication link apart from the hosts' network.
   */
  private async remoteMirror(from: number, to: number, destination: string): Promise<void> {
    const short = this.options.prefix.replace(/-$/, "");
    const array = await this.addNamespace(`${this.options.prefix}${this.tag}-sa`);
    const reader = this.node(to);
    const arrayEnd = `${short}${this.tag}sa`.slice(0, 15);
    const readerEnd = `${short}${this.tag}sr`.slice(0, 15);
    await ip(["link", "add", arrayEnd, "netns", array, "type", "veth", "peer", "name", readerEnd, "netns", reader.ns]);
    for (const [ns, dev, host] of [[array, arrayEnd, 1], [reader.ns, readerEnd, 2]] as const) {
      await ip(["-n", ns, "addr", "add", `${STORAGE_SUBNET}.${host}/24`, "dev", dev]);
      await ip(["-n", ns, "link", "set", dev, "up"]);
    }
    const listen = `${STORAGE_SUBNET}.2:${REMOTE_MIRROR_PORT}`;
    const server = this.spawnNs(reader.ns, process.execPath, [lunlinkBin(), "mirror", "serve", "--listen", listen, "--volume", destination, "--json"]);
    await new Promise<void>((resolve, reject) => {
      let err = "";
      server.stderr!.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-2000)));
      createInterface({ input: server.stdout! }).on("line", (line) => {
        if (line.includes('"listening"')) resolve();
      });
      server.once("exit", () => reject(new Error(`mirror serve on node ${to} exited: ${err}`)));
    });
    const pusher = this.spawnNs(array, process.execPath, [lunlinkBin(), "mirror", "push", this.nodeVolumes[from - 1]!, "--region", String(from), "--to", listen, "--poll-max-ms", "2", "--retry-min-ms", "50"]);
    pusher.stderr!.on("data", (c: Buffer) => {
      if (this.logs.length < MAX_LOG_LINES) this.logs.push(`push ${from}->${to} ${c.toString().trim()}`);
    });
  }

  /** A zero-filled file attached as a loop device (recorded for destroy()). */
  private async attach(file: string): Promise<string> {
    const device = await attachDirectLoop(file);
    this.loops.push(device);
    return device;
  }

  private async formatCluster(device: string): Promise<Awaited<ReturnType<typeof formatCluster>>> {
    const volume = await Volume.open(device, { dsync: true });
    try {
      return await formatCluster(volume, { nodes: this.nodes.map((n) => n.id), ...(this.clusterSecret === undefined ? {} : { clusterSecret: this.clusterSecret }) });
    } finally {
      await volume.close();
    }
  }

  private async addNamespace(name: string): Promise<string> {
    await ip(["netns", "add", name]);
    this.namespaces.push(name);
    await ip(["-n", name, "link", "set", "lo", "up"]);
    return name;
  }

  node(id: number): ClusterLabNode {
    const n = this.nodes[id - 1];
    if (n === undefined) throw new Error(`no node ${id} in a cluster lab of ${this.nodes.length}`);
    return n;
  }

  /** Starts `lunlink up` for a node in its namespace and waits until its control socket answers. */
  async startNode(id: number, timeoutMs = 20_000): Promise<void> {
    const n = this.node(id);
    n.process = spawnUp(n.ns, n.configPath, [], lunlinkBin(), (line) => {
      if (this.logs.length < MAX_LOG_LINES) this.logs.push(`${id} ${line}`);
    });
    await untilAnswers(n.process, `node ${id}`, () => this.status(id), timeoutMs).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${this.logs.filter((l) => l.startsWith(`${id} `)).slice(-10).join("\n")}`, { cause: error });
    });
  }

  /** "down" through the control socket (the node closes cleanly; SIGTERM if the socket fails), SIGKILL after 10 s. */
  async stopNode(id: number): Promise<void> {
    await stopUp(this.node(id).process, () => callControl(this.node(id).socketPath, "down"));
  }

  status(id: number): Promise<ClusterNodeStatus> {
    return callControl(this.node(id).socketPath, "status") as Promise<ClusterNodeStatus>;
  }

  /** Polls a node's status until `check` holds; throws with the last peers' states after timeoutMs. */
  async waitFor(id: number, what: string, check: (s: ClusterNodeStatus) => boolean, timeoutMs = 15_000, pollMs = 50): Promise<ClusterNodeStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: ClusterNodeStatus | undefined;
    while (Date.now() < deadline) {
      last = await this.status(id);
      if (check(last)) return last;
      await sleep(pollMs);
    }
    throw new Error(`node ${id}: not ${what} within ${timeoutMs} ms; peers: ${JSON.stringify(last?.peers.map((p) => [p.node, p.active, p.paths.primary.state, p.paths.storage.state]))}`);
  }

  /** Starts every node, then waits until each is up on both paths to every peer, the primary active. */
  async startAll(timeoutMs = 20_000): Promise<void> {
    for (const n of this.nodes) await this.startNode(n.id);
    for (const n of this.nodes) {
      await this.waitFor(n.id, "up on both paths to every peer", (s) => s.peers.length === this.nodes.length - 1 && s.peers.every((p) => p.active === "primary" && p.paths.storage.state === "up"), timeoutMs);
    }
  }

  /**
   * Cuts node `id`'s network and waits until each [node, other] of `pairs` is on storage, polled every
   * 10 ms; returns what each took ("1->3 240 ms"), as polled: an upper bound, for the log.
   */
  async cutToStorage(id: number, pairs: readonly (readonly [number, number])[], timeoutMs = 10_000): Promise<string[]> {
    const cutAtMs = Date.now();
    await this.setNetwork(id, false);
    return Promise.all(
      pairs.map(async ([node, other]) => {
        await this.waitFor(node, `on storage to node ${other}`, (s) => s.peers.find((p) => p.node === other)?.active === "storage", timeoutMs, 10);
        return `${node}->${other} ${Date.now() - cutAtMs} ms`;
      }),
    );
  }

  /** Cuts (or restores) a node's primary network: its veth into the switch goes down (up). Storage is untouched. */
  async setNetwork(id: number, up: boolean): Promise<void> {
    const n = this.node(id);
    await ip(["-n", n.ns, "link", "set", n.veth, up ? "up" : "down"]);
  }

  /** Ping replies from node `from` to node `to`'s TUN address, each ping waiting up to replyWaitS for its own (pingEach). */
  ping(from: number, to: number, count: number, replyWaitS = 10, args: readonly string[] = []): Promise<number> {
    return pingEach(this.node(from).ns, this.node(to).tunAddress, count, replyWaitS, args);
  }

  /** Runs a command in a node's namespace and returns its stdout. */
  exec(id: number, command: string, args: string[], timeoutMs = 30_000): Promise<string> {
    return execIn(this.node(id).ns, command, args, timeoutMs);
  }

  /** Starts a long-running command in a node's namespace (killed by destroy() if still running). */
  spawnIn(id: number, command: string, args: string[]): ChildProcess {
    return this.spawnNs(this.node(id).ns, command, args);
  }

  private spawnNs(ns: string, command: string, args: string[]): ChildProcess {
    const child = spawnInNs(ns, command, args);
    this.extra.push(child);
    return child;
  }

  /** A checksummed TCP stream (`lunlink stream`) from node `from` to node `to`; resolves once the receiver listens. */
  async startStream(from: number, to: number, bytes: number, rateMBps: number, port = 5001): Promise<{ finished: Promise<{ sent: StreamReport; received: StreamReport }> }> {
    return startLabStream({ spawn: (id, command, args) => this.spawnIn(id, command, args), lunlinkBin: lunlinkBin(), from, to, toAddress: this.node(to).tunAddress }, bytes, rateMBps, port);
  }

  /** Stops every node, kills what spawnIn() started, deletes the namespaces, detaches the loop device, removes the scratch directory. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const n of this.nodes) await this.stopNode(n.id).catch(() => undefined);
    for (const child of this.extra) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const m of this.mirrors) await m.stop();
    for (const ns of this.namespaces) await deleteNamespace(ns);
    for (const device of this.loops) await detachLoop(device).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
