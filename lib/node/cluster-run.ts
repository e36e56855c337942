// The composition root of a running cluster node (`lunlink up` with a config that has a `cluster`
// section): ClusterNode + one TUN for the whole cluster + control socket + optional metrics. Returns
// once the node was told to stop (`lunlink down`, SIGINT, SIGTERM) or its TUN failed, after closing
// what it opened (TUN, then the node: last records flushed, then the control socket); under systemd
// it reports readiness, status, watchdog and STOPPING=1 (cluster-service.ts). The pair's
// runNode stays as it is; a 2-member cluster config runs here as the N = 2 case.
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { Server } from "node:net";
import { unlink } from "node:fs/promises";
import type pino from "pino";

import { ErrorCode, LunlinkError } from "../errors.ts";
import { publicKeyOf, readPrivateKeyFile } from "../link/keys.ts";
import { readClusterSecretFile } from "./cluster-secret.ts";
import { TunDevice } from "../tun/tun.ts";
import { ClusterNode, type ClusterNodeOptions } from "./cluster-node.ts";
import { CLUSTER_METRICS_CONTENT_TYPE, renderClusterMetrics, type ClusterNodeStatus } from "./cluster-status.ts";
import { controlSocketPath, parseEndpoint, type ClusterConfig } from "./config.ts";
import { serveControl } from "./control.ts";
import { NodeObservability } from "./observe.ts";
import { raiseScheduling } from "./scheduling.ts";
import { startClusterServiceNotify } from "./cluster-service.ts";
import { logStorageChange } from "./run.ts";
import type { ServiceNotifier } from "./service.ts";

/** What loadClusterKey read: this node's private key (UDP sealing) and the cluster secret (keyed rings), if configured. */
export interface ClusterKeys {
  privateKey: string;
  clusterSecret?: Buffer;
}

/** The ClusterNode's options from a checked cluster config (and the keys, read by the caller). */
export function clusterNodeOptions(c: ClusterConfig, keys?: ClusterKeys, log?: ClusterNodeOptions["log"], observer?: ClusterNodeOptions["storage"]["observer"]): ClusterNodeOptions {
  const { controlRtoMs, ...timers } = c.timers;
  const { mirrorLagMs: _lag, ...storage } = c.storage;
  return {
    nodeId: c.node,
    subnet: c.tun.address,
    members: c.cluster.members.map((m) => ({ node: m.node, address: m.address, primary: parseEndpoint(m.primary)!, ring: m.ring, ...(m.publicKey === undefined ? {} : { publicKey: m.publicKey }) })),
    storage: { ...storage, ...(observer === undefined ? {} : { observer }) },
    timers,
    controlRtoMs,
    ...(keys === undefined ? {} : { privateKey: keys.privateKey }),
    ...(keys?.clusterSecret === undefined ? {} : { clusterSecret: keys.clusterSecret }),
    ...(log === undefined ? {} : { log }),
  };
}

/**
 * Reads the key files if keys are configured: the private key (mode checked; a peer's key as our own
 * is refused) and the cluster secret (mode 0600, 32 bytes). check-config and doctor call it too.
 */
export async function loadClusterKey(c: ClusterConfig): Promise<ClusterKeys | undefined> {
  if (c.keys === undefined) return undefined;
  const privateKey = await readPrivateKeyFile(c.keys.private);
  const mine = publicKeyOf(privateKey);
  const clash = c.cluster.members.find((m) => m.node !== c.node && m.publicKey === mine);
  if (clash !== undefined) throw new LunlinkError(ErrorCode.BadConfig, `cluster.members (node ${clash.node}).publicKey is this node's own public key: configure that member's (lunlink pubkey on it)`);
  if (c.keys.clusterSecret === undefined) return { privateKey };
  return { privateKey, clusterSecret: await readClusterSecretFile(c.keys.clusterSecret) };
}

export async function runClusterNode(config: ClusterConfig, log: pino.Logger): Promise<void> {
  const scheduling = await raiseScheduling(config.scheduling);
  if (scheduling.policy === "rr") log.info({ event: "scheduling", ...scheduling }, `real-time scheduling (SCHED_RR ${scheduling.priority})`);
  else log.warn({ event: "scheduling", ...scheduling }, `normal scheduling: heartbeats may be late under CPU pressure (${scheduling.reason})`);
  const socketPath = controlSocketPath(config);
  const keys = await loadClusterKey(config);
  if (keys === undefined) log.warn({ event: "no-keys" }, "no keys configured: UDP datagrams are neither authenticated nor encrypted (see docs/security.md)");
  // An unkeyed cluster's rings: say so rather than imply they are authenticated.
  if (keys?.clusterSecret === undefined) log.warn({ event: "ring-unkeyed" }, "cluster rings are not authenticated (no keys.clusterSecret): anyone who can write the shared volume can inject packets");
  const observe = new NodeObservability(log);
  const node = await ClusterNode.open(clusterNodeOptions(config, keys, (event, fields) => log.info({ event, ...fields }, event), observe.ringObserver));
  node.on("storage", (c) => logStorageChange(log, c));
  let tun: TunDevice | undefined;
  let metrics: HttpServer | undefined;
  let server: Server | undefined;
  let stopping: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => (stopping = resolve));
  let service: ServiceNotifier | undefined;
  // Every way down tells systemd first (STOPPING=1), so it does not count the exit as a failure.
  const stop = (why: string) => {
    service?.stopping(why);
    stopping?.();
  };
  const onSigint = () => stop("SIGINT");
  const onSigterm = () => stop("SIGTERM");
  let tunFailure: Error | undefined;
  try {
    tun = await TunDevice.open({ name: config.tun.name, mtu: config.tun.mtu, address: config.tun.address, up: true });
    tun.on("error", (error) => {
      log.error({ event: "tun-error", code: (error as { code?: string }).code, message: error.message }, "TUN device failed: stopping the node");
      tunFailure ??= error;
      stop("tun-error");
    });
    const counters = { packetsToLink: 0, packetsNotSent: 0, packetsToTun: 0, packetsTunDropped: 0 };
    tun.onPackets((packets, lengths, count) => {
      const taken = node.sendBatch(packets, lengths, count);
      counters.packetsToLink += taken;
      counters.packetsNotSent += count - taken;
    });
    node.onDataBatch((payloads, lengths, count) => {
      if (tun!.isClosed) return;
      const written = tun!.writeBatch(payloads, lengths, count);
      counters.packetsToTun += written;
      counters.packetsTunDropped += count - written;
    });
    const status = (): ClusterNodeStatus => ({ ...node.status(), tun: { name: tun!.name, address: config.tun.address, ...tun!.counters, ...counters } });
    server = await serveControl(socketPath, async (cmd) => {
      if (cmd === "status") return status();
      if (cmd === "down") {
        setImmediate(() => stop("lunlink down"));
        return { stopping: true };
      }
      throw new Error(`unknown command ${JSON.stringify(cmd)} (status, down)`);
    });
    if (config.metrics.listen !== undefined) {
      const at = parseEndpoint(config.metrics.listen)!;
      metrics = createHttpServer((req, res) => {
        if (req.url !== "/metrics") {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { "content-type": CLUSTER_METRICS_CONTENT_TYPE }).end(renderClusterMetrics(node.status()));
      });
      await new Promise<void>((resolve, reject) => metrics!.once("error", reject).listen(at.port, at.host, () => resolve()));
    }
    process.once("SIGINT", onSigint);
    process.once("SIGTERM", onSigterm);
    const peers = config.cluster.members.filter((m) => m.node !== config.node).map((m) => m.node);
    log.info({ event: "up", node: config.node, peers, tun: tun.name, address: config.tun.address, mtu: tun.mtu, control: socketPath }, `node ${config.node} up in a cluster of ${peers.length + 1}: ${tun.name} ${config.tun.address}`);
    service = startClusterServiceNotify(node, log);
    await stopped;
    log.info({ event: "down" }, `node ${config.node} going down`);
  } finally {
    service?.close();
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
    if (server !== undefined) {
      server.close();
      await unlink(socketPath).catch(() => undefined);
    }
    metrics?.close();
    await tun?.close();
    await node.close();
  }
  if (tunFailure !== undefined) throw tunFailure;
}
