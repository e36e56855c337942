// A two-host lab on one machine, for the demo, the end-to-end tests and `bench link`: two network
// namespaces joined by a veth (the primary network, 198.18.1.0/24 inside the namespaces only), four
// volumes (each node's send volume and receive volume; loop devices with direct I/O, or files), two
// local mirrors in the root namespace standing in for the array (so cutting the veth never touches
// storage), and `lunlink up` running in each namespace. Each mirror is a `lunlink mirror copy
// --follow` process in a session of its own, as an array stands apart from the hosts: it shares no
// process or scheduling group (autogroup) with the caller, so a test or a bench measures the nodes,
// not how the test runner's own load (or a hog started beside it) slows a mirror inside it.
// Every resource is named with the lab's prefix and removed by destroy(), which is safe to call
// twice and after a partial create(). The host plumbing it shares with cluster-lab.ts: lab-plumbing.ts.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

import { newUuid } from "../format/uuid.ts";
import { generateKeys, ringKey, sharedSecret } from "../link/keys.ts";
import { Volume } from "../io/volume.ts";
import type { LinkStatus } from "../link/link.ts";
import { formatVolume, openSuperblock } from "../ring/superblocks.ts";
import { callControl } from "./control.ts";
import { attachDirectLoop, builtOrDestroyed, deleteNamespace, detachLoop, execIn, ip, pingEach, spawnIn as spawnInNs, spawnUp, startLabStream, stopUp, untilAnswers, waitForCopy, writeOut, type LabHost, type StreamReport } from "./lab-plumbing.ts";

export interface LabOptions {
  /** Namespace/interface name prefix ("llt-" tests, "lld-" demo, "llb-" bench). */
  prefix: string;
  /** Parent of the lab's scratch directory (a disk file system: O_DIRECT). */
  scratchParent?: string;
  volumeBytes?: number;
  /** Loop devices with --direct-io=on and 4096-byte sectors (default), or plain files. */
  loopDevices?: boolean;
  /** Extra config for both nodes (timers, tun mtu...), merged over the lab's. */
  config?: Record<string, unknown>;
  /** Every line a node logs (JSON) with its node number. */
  onLog?: (node: 1 | 2, line: string) => void;
  /** TUN MTU (default 1400); the veth (underlay) MTU is set to carry it with every header and the seal. */
  tunMtu?: number;
  /** Generate an X25519 key pair per node and configure keys (sealed UDP, keyed rings). */
  keys?: boolean;
  /** Extra Node.js options for the `lunlink up` processes (e.g. --cpu-prof for profiling). */
  nodeArgs?: string[];
}

export interface LabNode extends LabHost {
  id: 1 | 2;
  send: string;
  receive: string;
}

const SUBNET = "198.18.1";
const TUN_SUBNET = "198.18.100";

export class Lab {
  readonly dir: string;
  readonly nodes: [LabNode, LabNode];
  readonly mirrors: MirrorProcess[] = [];
  private readonly options: LabOptions;
  private readonly loops: string[] = [];
  private readonly namespaces: string[] = [];
  private destroyed = false;

  private constructor(options: LabOptions, dir: string, nodes: [LabNode, LabNode]) {
    this.options = options;
    this.dir = dir;
    this.nodes = nodes;
  }

  static async create(options: LabOptions): Promise<Lab> {
    const dir = await mkdtemp(join(options.scratchParent ?? "/var/tmp", `${options.prefix.replace(/-$/, "")}-lab-`));
    const tag = randomBytes(2).toString("hex");
    const node = (id: 1 | 2): LabNode => ({
      id,
      ns: `${options.prefix}${tag}-node${id}`,
      veth: `${options.prefix.replace(/-$/, "")}${tag}n${id}`.slice(0, 15),
      underlayAddress: `${SUBNET}.${id}`,
      tunAddress: `${TUN_SUBNET}.${id}`,
      configPath: join(dir, `node${id}.json`),
      socketPath: join(dir, `node${id}.sock`),
      send: "",
      receive: "",
    });
    const lab = new Lab(options, dir, [node(1), node(2)]);
    return builtOrDestroyed(lab, () => lab.build(), () => lab.destroy());
  }

  private async build(): Promise<void> {
    const [a, b] = this.nodes;
    for (const n of this.nodes) {
      await ip(["netns", "add", n.ns]);
      this.namespaces.push(n.ns);
      await ip(["-n", n.ns, "link", "set", "lo", "up"]);
    }
    await ip(["link", "add", a.veth, "netns", a.ns, "type", "veth", "peer", "name", b.veth, "netns", b.ns]);
    const tunMtu = this.options.tunMtu ?? 1400;
    const underlayMtu = Math.max(1500, tunMtu + 28 + 28 + 24);
    for (const n of this.nodes) {
      if (underlayMtu !== 1500) await ip(["-n", n.ns, "link", "set", n.veth, "mtu", String(underlayMtu)]);
      await ip(["-n", n.ns, "addr", "add", `${n.underlayAddress}/24`, "dev", n.veth]);
      await ip(["-n", n.ns, "link", "set", n.veth, "up"]);
    }
    const keys = this.options.keys === true ? [generateKeys(), generateKeys()] : undefined;
    // Volumes: node N's send volume is mirrored onto the other node's receive volume.
    const size = this.options.volumeBytes ?? 64 * 1024 * 1024;
    const pairUuid = newUuid();
    const paths: string[] = [];
    for (const name of ["node1-send", "node2-receive", "node2-send", "node1-receive"]) {
      const file = await writeOut(join(this.dir, `${name}.img`), size);
      if (this.options.loopDevices ?? true) {
        const device = await attachDirectLoop(file);
        this.loops.push(device);
        paths.push(device);
      } else paths.push(file);
    }
    [a.send, b.receive, b.send, a.receive] = paths as [string, string, string, string];
    for (const [sendPath, receivePath, writer, peer] of [
      [a.send, b.receive, 1, 2],
      [b.send, a.receive, 2, 1],
    ] as const) {
      const send = await Volume.open(sendPath, { dsync: true });
      const auth = keys === undefined ? undefined : { key: ringKey(sharedSecret(keys[writer - 1]!.privateKey, keys[peer - 1]!.publicKey), pairUuid, writer, peer) };
      const { superblock } = await formatVolume(send, { writerNode: writer, peerNode: peer, pairUuid, ...(auth === undefined ? {} : { auth }) });
      await send.close();
      const mirror = new MirrorProcess(sendPath, receivePath);
      this.mirrors.push(mirror);
      await mirror.resynced(superblock.volumeUuid);
    }
    for (const n of this.nodes) {
      const peer = this.nodes[2 - n.id]!;
      let keyConfig = {};
      if (keys !== undefined) {
        const file = join(this.dir, `node${n.id}.key`);
        await writeFile(file, `${keys[n.id - 1]!.privateKey}\n`, { mode: 0o600 });
        keyConfig = { keys: { private: file, peerPublic: keys[peer.id - 1]!.publicKey } };
      }
      const config = {
        ...keyConfig,
        node: n.id,
        peer: peer.id,
        tun: { name: "lunlink0", address: `${n.tunAddress}/24`, mtu: tunMtu },
        primary: { bind: `${n.underlayAddress}:7410`, peer: `${peer.underlayAddress}:7410`, underlayMtu },
        storage: { send: n.send, receive: n.receive },
        control: { socket: n.socketPath },
        ...this.options.config,
      };
      await writeFile(n.configPath, `${JSON.stringify(config, null, 2)}\n`);
    }
  }

  /** Starts `lunlink up` for a node inside its namespace and waits until its control socket answers. */
  async startNode(id: 1 | 2, timeoutMs = 15_000): Promise<void> {
    const n = this.nodes[id - 1]!;
    n.process = spawnUp(n.ns, n.configPath, this.options.nodeArgs ?? [], lunlinkBin(), (line) => this.options.onLog?.(id, line));
    await untilAnswers(n.process, `node ${id}`, () => this.status(id), timeoutMs);
  }

  /** Stops a node: "down" through its control socket, or SIGKILL (a crash). */
  async stopNode(id: 1 | 2, how: "down" | "kill" = "down"): Promise<void> {
    await stopUp(this.nodes[id - 1]!.process, () => callControl(this.nodes[id - 1]!.socketPath, "down"), how);
  }

  status(id: 1 | 2): Promise<LinkStatus> {
    return callControl(this.nodes[id - 1]!.socketPath, "status") as Promise<LinkStatus>;
  }

  /** Polls a node's status until `check` holds; throws with the last status after timeoutMs. */
  async waitFor(id: 1 | 2, what: string, check: (s: LinkStatus) => boolean, timeoutMs = 10_000): Promise<LinkStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: LinkStatus | undefined;
    while (Date.now() < deadline) {
      last = await this.status(id);
      if (check(last)) return last;
      await sleep(25);
    }
    throw new Error(`node ${id}: not ${what} within ${timeoutMs} ms; last status: active ${last?.active}, primary ${last?.paths.primary.state}, storage ${last?.paths.storage.state}`);
  }

  /** Starts node 1, then node 2, and waits until each is up on both paths with the primary active. */
  async startPair(timeoutMs = 10_000): Promise<void> {
    await this.startNode(1);
    await this.startNode(2);
    for (const id of [1, 2] as const) await this.waitFor(id, "up on both paths", (s) => s.active === "primary" && s.paths.storage.state === "up", timeoutMs);
  }

  /** Cuts (or restores) the primary network: both veth ends go down (up). Storage is untouched. */
  async setPrimary(up: boolean): Promise<void> {
    for (const n of this.nodes) await ip(["-n", n.ns, "link", "set", n.veth, up ? "up" : "down"]);
  }

  /** A one-way cut: node `from`'s packets to the peer's underlay address are blackholed. */
  async setOneWay(from: 1 | 2, cut: boolean): Promise<void> {
    const n = this.nodes[from - 1]!;
    const peer = this.nodes[2 - from]!;
    await ip(["-n", n.ns, "route", cut ? "add" : "del", "blackhole", `${peer.underlayAddress}/32`]);
  }

  /** Runs a command in a node's namespace. */
  exec(id: 1 | 2, command: string, args: string[], timeoutMs = 30_000): Promise<string> {
    return execIn(this.nodes[id - 1]!.ns, command, args, timeoutMs);
  }

  /** Ping replies from node `from` to the other node's TUN address, each ping waiting up to replyWaitS for its own (pingEach). */
  ping(from: 1 | 2, count: number, replyWaitS = 10): Promise<number> {
    return pingEach(this.nodes[from - 1]!.ns, this.nodes[2 - from]!.tunAddress, count, replyWaitS);
  }

  /** Starts a long-running command in a node's namespace (killed by destroy() if still running). */
  spawnIn(id: 1 | 2, command: string, args: string[]): ChildProcess {
    const child = spawnInNs(this.nodes[id - 1]!.ns, command, args);
    this.extra.push(child);
    return child;
  }

  private readonly extra: ChildProcess[] = [];

  /**
   * Starts a checksummed TCP stream (`lunlink stream`) from node `from` to node `to` across their
   * TUN addresses; resolves once the receiver listens. `finished` resolves with both sides' reports
   * (equal sha256 and bytes = the stream arrived intact).
   */
  async startStream(from: 1 | 2, bytes: number, rateMBps: number, onProgress?: (bytes: number) => void, port = 5001): Promise<{ finished: Promise<{ sent: StreamReport; received: StreamReport }> }> {
    const to = this.nodes[2 - from]!;
    return startLabStream({ spawn: (id, command, args) => this.spawnIn(id, command, args), lunlinkBin: lunlinkBin(), from, to: to.id, toAddress: to.tunAddress }, bytes, rateMBps, port, onProgress);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const n of this.nodes) await this.stopNode(n.id, "kill").catch(() => undefined);
    for (const child of this.extra) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const m of this.mirrors) await m.stop();
    for (const ns of this.namespaces) await deleteNamespace(ns);
    for (const loop of this.loops) await detachLoop(loop).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Bound on a mirror's first full copy (64 MiB volumes take well under a second when idle). */
const MIRROR_RESYNC_TIMEOUT_MS = 30_000;
/** A mirror that does not stop on SIGTERM within this is killed. */
const MIRROR_STOP_TIMEOUT_MS = 5_000;

/** `lunlink mirror copy --follow SOURCE DESTINATION [--region NODE]` in its own session (setsid), until stop(). */
export class MirrorProcess {
  private child!: ChildProcess;
  private exited!: Promise<void>;
  private stderr = "";

  constructor(
    readonly source: string,
    readonly destination: string,
    /** Mirror only this node's region of a cluster volume (onto a node volume copy or the same region). */
    readonly region?: number,
  ) {
    this.start();
  }

  /** Starts following (again, after stop()): a mirror restarted by its operator. */
  start(): void {
    if (this.child !== undefined && this.running) return;
    // Real-time like the nodes (chrt, SCHED_RR 1): the mirror stands in for the array, which has CPUs
    // of its own; at normal priority a CPU hog on this machine starved it and took the storage path down.
    const mirror = [process.execPath, lunlinkBin(), "mirror", "copy", "--follow", this.source, this.destination, ...(this.region === undefined ? [] : ["--region", String(this.region)])];
    this.child = spawn("chrt", ["--rr", "1", ...mirror], { detached: true, stdio: ["ignore", "ignore", "pipe"] });
    this.child.stderr!.on("data", (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString("utf8")).slice(-2000)));
    const child = this.child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once the destination carries the source's superblock, i.e. the first resync is done (it is copied last). */
  async resynced(volumeUuid: string): Promise<void> {
    const gone = () => (this.running ? undefined : `mirror ${this.source} -> ${this.destination} exited: ${this.stderr.trim()}`);
    try {
      await waitForCopy(this.destination, volumeUuid, MIRROR_RESYNC_TIMEOUT_MS, gone);
    } catch (error) {
      throw gone() === undefined ? new Error(`mirror ${this.source} -> ${this.destination}: ${(error as Error).message}: ${this.stderr.trim()}`, { cause: error }) : error;
    }
  }

  /** Stops following (SIGTERM: the mirror flushes and exits), SIGKILL past MIRROR_STOP_TIMEOUT_MS. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), MIRROR_STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

/** bin/lunlink.js of this package, found from this module (source or dist). */
export function lunlinkBin(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("package.json not found above lib/node");
    dir = up;
  }
  return join(dir, "bin", "lunlink.js");
}
