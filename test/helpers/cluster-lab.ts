// A cluster of N hosts on one machine for device tests: N network namespaces plugged into a bridge in
// a "switch" namespace (the primary network, 198.18.1.0/24 inside the namespaces only), one shared
// loop device (direct I/O, 4096-byte sectors) formatted as a cluster volume whose regions every node
// reads directly (the SAN case), and `lunlink up` with a cluster config in each node's namespace.
// Every resource is created through the test's teardown (namespaces with the NETNS_PREFIX, the loop
// device by name, the scratch directory), so a failed test still removes exactly what it created.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { ExecutionContext } from "ava";

import { Volume } from "../../lib/io/volume.ts";
import { lunlinkBin, type StreamReport } from "../../lib/node/lab.ts";
import { callControl } from "../../lib/node/control.ts";
import type { ClusterNodeStatus } from "../../lib/node/cluster-status.ts";
import { formatCluster } from "../../lib/ring/cluster.ts";
import { run, sleep } from "./exec.ts";
import { attachLoop } from "./loop.ts";
import { createNamespace } from "./netns.ts";
import { scratchDir } from "./scratch.ts";

const UNDERLAY = "198.18.1";
const TUN_SUBNET = "198.18.100";

export interface ClusterLabNode {
  id: number;
  ns: string;
  /** The node's end of its veth into the switch. */
  veth: string;
  underlayAddress: string;
  tunAddress: string;
  configPath: string;
  socketPath: string;
  process?: ChildProcess;
}

export class ClusterLab {
  readonly nodes: ClusterLabNode[];
  readonly volume: string;
  readonly logs: string[] = [];
  private readonly t: ExecutionContext;

  private constructor(t: ExecutionContext, nodes: ClusterLabNode[], volume: string) {
    this.t = t;
    this.nodes = nodes;
    this.volume = volume;
  }

  /** Builds the namespaces, the switch, the shared cluster volume and every node's config. */
  static async create(t: ExecutionContext, count: number, config: Record<string, unknown> = {}): Promise<ClusterLab> {
    const dir = await scratchDir(t);
    const tag = randomBytes(2).toString("hex");
    const sw = await createNamespace(t, "sw");
    await run("ip", ["-n", sw, "link", "add", "br0", "type", "bridge"]);
    await run("ip", ["-n", sw, "link", "set", "br0", "up"]);
    const nodes: ClusterLabNode[] = [];
    for (let id = 1; id <= count; id++) {
      const ns = await createNamespace(t, `n${id}`);
      const veth = `llt${tag}n${id}`;
      const port = `llt${tag}s${id}`;
      await run("ip", ["link", "add", veth, "netns", ns, "type", "veth", "peer", "name", port, "netns", sw]);
      await run("ip", ["-n", sw, "link", "set", port, "master", "br0"]);
      await run("ip", ["-n", sw, "link", "set", port, "up"]);
      await run("ip", ["-n", ns, "addr", "add", `${UNDERLAY}.${id}/24`, "dev", veth]);
      await run("ip", ["-n", ns, "link", "set", veth, "up"]);
      nodes.push({ id, ns, veth, underlayAddress: `${UNDERLAY}.${id}`, tunAddress: `${TUN_SUBNET}.${id}`, configPath: join(dir, `node${id}.json`), socketPath: join(dir, `node${id}.sock`) });
    }
    // Written out, not sparse (a LUN has no holes: a first write into one stalls an O_DSYNC write).
    const file = join(dir, "cluster.img");
    const sizeBytes = 48 * 1024 * 1024;
    const handle = await open(file, "w");
    const zeros = Buffer.alloc(1024 * 1024);
    for (let at = 0; at < sizeBytes; at += zeros.length) await handle.write(zeros, 0, zeros.length, at);
    await handle.sync();
    await handle.close();
    const device = await attachLoop(t, file, { sectorSize: 4096, directIo: true });
    const volume = await Volume.open(device, { dsync: true });
    try {
      await formatCluster(volume, { nodes: nodes.map((n) => n.id) });
    } finally {
      await volume.close();
    }
    const members = nodes.map((n) => ({ node: n.id, address: n.tunAddress, primary: `${n.underlayAddress}:7410`, ring: device }));
    for (const n of nodes) {
      const c = { node: n.id, tun: { name: "lunlink0", address: `${n.tunAddress}/24` }, cluster: { members }, control: { socket: n.socketPath }, ...config };
      await writeFile(n.configPath, `${JSON.stringify(c, null, 2)}\n`);
    }
    const lab = new ClusterLab(t, nodes, device);
    t.teardown(async () => {
      for (const n of nodes) await lab.stopNode(n.id).catch(() => undefined);
      if (!t.passed) t.log(lab.logs.filter((l) => /transition|error|"level":[45]0/.test(l)).slice(-60).join("\n"));
    });
    return lab;
  }

  node(id: number): ClusterLabNode {
    return this.nodes[id - 1]!;
  }

  /** Starts `lunlink up` for a node in its namespace and waits until its control socket answers. */
  async startNode(id: number, timeoutMs = 20_000): Promise<void> {
    const n = this.node(id);
    const child = spawn("ip", ["netns", "exec", n.ns, process.execPath, lunlinkBin(), "up", "--config", n.configPath, "--log-json"], { stdio: ["ignore", "ignore", "pipe"] });
    n.process = child;
    createInterface({ input: child.stderr! }).on("line", (line) => {
      if (this.logs.length < 5000) this.logs.push(`${id} ${line}`);
    });
    const exited = new Promise<never>((_, reject) => child.once("exit", (code, signal) => reject(new Error(`node ${id} exited (${code ?? signal}) before it came up`))));
    exited.catch(() => undefined);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await Promise.race([this.status(id), exited]);
        return;
      } catch (error) {
        if (Date.now() > deadline || /exited/.test(String(error))) throw new Error(`${String(error)}\n${this.logs.filter((l) => l.startsWith(`${id} `)).slice(-10).join("\n")}`);
        await sleep(100);
      }
    }
  }

  /** SIGTERM (the node closes cleanly), SIGKILL after 10 s. */
  async stopNode(id: number): Promise<void> {
    const child = this.node(id).process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    await callControl(this.node(id).socketPath, "down").catch(() => child.kill("SIGTERM"));
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exit;
    clearTimeout(timer);
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

  /** Cuts (or restores) a node's primary network: its veth into the switch goes down (up). Storage is untouched. */
  async setNetwork(id: number, up: boolean): Promise<void> {
    const n = this.node(id);
    await run("ip", ["-n", n.ns, "link", "set", n.veth, up ? "up" : "down"]);
  }

  /** Ping replies from node `from` to node `to`'s TUN address. */
  async ping(from: number, to: number, count: number, replyWaitS = 10): Promise<number> {
    const out = await run("ip", ["netns", "exec", this.node(from).ns, "ping", "-n", "-c", String(count), "-i", "0.05", "-W", String(replyWaitS), this.node(to).tunAddress], 60_000).catch((e: { stdout?: string; message?: string }) => e.stdout ?? e.message ?? "");
    return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
  }

  /** A checksummed TCP stream (`lunlink stream`) from node `from` to node `to`; resolves once the receiver listens. */
  async startStream(from: number, to: number, bytes: number, rateMBps: number, port = 5001): Promise<{ finished: Promise<{ sent: StreamReport; received: StreamReport }> }> {
    const target = this.node(to);
    const server = this.spawnIn(to, [lunlinkBin(), "stream", "serve", "--listen", `${target.tunAddress}:${port}`, "--interval-ms", "1000", "--timeout-s", "60"]);
    let received: StreamReport = { bytes: 0 };
    let serverErr = "";
    server.stderr!.on("data", (c: Buffer) => (serverErr += c.toString()));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: server.stdout! }).on("line", (line) => {
        const o = JSON.parse(line) as StreamReport & { listening?: string };
        if (o.listening !== undefined) resolve();
        if (o.done === true) received = o;
      });
      server.once("exit", () => reject(new Error(`stream server exited before listening: ${serverErr}`)));
    });
    const serverDone = new Promise<void>((resolve) => server.once("exit", () => resolve()));
    const sender = this.spawnIn(from, [lunlinkBin(), "stream", "send", "--to", `${target.tunAddress}:${port}`, "--bytes", String(bytes), "--rate-mbps", String(rateMBps), "--timeout-s", "60"]);
    let sent: StreamReport = { bytes: 0 };
    createInterface({ input: sender.stdout! }).on("line", (line) => (sent = JSON.parse(line) as StreamReport));
    const senderDone = new Promise<void>((resolve) => sender.once("exit", () => resolve()));
    return { finished: Promise.all([serverDone, senderDone]).then(() => ({ sent, received })) };
  }

  private spawnIn(id: number, args: string[]): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.node(id).ns, process.execPath, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    return child;
  }
}
