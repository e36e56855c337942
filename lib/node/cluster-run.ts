// The composition root of a running cluster node (`lunlink up` with a config that has a `cluster`
// section): opens the ClusterNode and hands it to the pair's shell (serveNode in run.ts: one TUN for
// the whole cluster, control socket, optional metrics, signals, systemd through cluster-service.ts).
// A 2-member cluster config runs here as the N = 2 case.
import type pino from "pino";

import { loadClusterKey, type ClusterKeys } from "./cluster-secret.ts";
import { TunDevice } from "../tun/tun.ts";
import { bridge } from "./bridge.ts";
import { ClusterNode, type ClusterNodeOptions } from "./cluster-node.ts";
import { CLUSTER_METRICS_CONTENT_TYPE, renderClusterMetrics, type ClusterNodeStatus } from "./cluster-status.ts";
import { controlSocketPath, parseEndpoint, type ClusterConfig } from "./config.ts";
import { NodeObservability } from "./observe.ts";
import { startClusterServiceNotify } from "./cluster-service.ts";
import { logStorageChange, raiseSchedulingLogged, serveNode } from "./run.ts";

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

export async function runClusterNode(config: ClusterConfig, log: pino.Logger): Promise<void> {
  await raiseSchedulingLogged(config, log);
  const socketPath = controlSocketPath(config);
  const keys = await loadClusterKey(config);
  if (keys === undefined) log.warn({ event: "no-keys" }, "no keys configured: UDP datagrams are neither authenticated nor encrypted (see docs/security.md)");
  // An unkeyed cluster's rings: say so rather than imply they are authenticated.
  if (keys?.clusterSecret === undefined) log.warn({ event: "ring-unkeyed" }, "cluster rings are not authenticated (no keys.clusterSecret): anyone who can write the shared volume can inject packets");
  const observe = new NodeObservability(log);
  const node = await ClusterNode.open(clusterNodeOptions(config, keys, (event, fields) => log.info({ event, ...fields }, event), observe.ringObserver));
  node.on("storage", (c) => logStorageChange(log, c));
  const peers = config.cluster.members.filter((m) => m.node !== config.node).map((m) => m.node);
  await serveNode(config, log, socketPath, {
    bridge: (tun: TunDevice) => bridge(tun, node),
    status: (tun, counters) => (): ClusterNodeStatus => ({ ...node.status(), tun: { name: tun.name, address: config.tun.address, ...tun.counters, ...counters } }),
    metrics: { contentType: CLUSTER_METRICS_CONTENT_TYPE, render: () => renderClusterMetrics(node.status()) },
    up: { fields: { peers }, what: `up in a cluster of ${peers.length + 1}` },
    notify: () => startClusterServiceNotify(node, log),
    downFields: () => ({}),
    close: () => node.close(),
  });
}
