// The composition root of a running node: TUN device + node + control socket + optional metrics.
// `lunlink up` calls runNode for a pair (a Link built from one NodeConfig) or runClusterNode
// (cluster-run.ts) for a cluster; both open their node and hand it to serveNode, the one shell: it
// returns once the node was told to stop (`lunlink down`, SIGINT, SIGTERM) or its TUN device failed,
// after closing everything it opened: the TUN device (the interface disappears), the control socket,
// the node (last records flushed). Under systemd (Type=notify, $NOTIFY_SOCKET) it reports readiness,
// status, watchdog and STOPPING=1.
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { Server } from "node:net";
import { unlink } from "node:fs/promises";
import type pino from "pino";

import { errnoName } from "../errors.ts";
import { Link, type LinkStatus } from "../link/link.ts";
import { bridge, type BridgeCounters } from "./bridge.ts";
import { TunDevice } from "../tun/tun.ts";
import { controlSocketPath, linkOptions, loadKeys, parseEndpoint, type NodeConfig } from "./config.ts";
import { serveControl } from "./control.ts";
import { NodeObservability } from "./observe.ts";
import { raiseScheduling } from "./scheduling.ts";
import { startServiceNotify, type ServiceNotifier } from "./service.ts";

export async function runNode(config: NodeConfig, log: pino.Logger): Promise<void> {
  await raiseSchedulingLogged(config, log);
  const socketPath = controlSocketPath(config);
  const keys = await loadKeys(config);
  const observe = new NodeObservability(log);
  const options = linkOptions(config, (event, fields) => log.info({ event, ...fields }, event), keys);
  const link = await Link.open({ ...options, storage: { ...options.storage, observer: observe.ringObserver } });
  if (keys === undefined) log.warn({ event: "no-keys" }, "no keys configured: UDP datagrams are neither authenticated nor encrypted (see docs/security.md)");
  // One line per state change of a storage component (not per retry): fault, recovery, configuration fault.
  link.on("storage", (c) => logStorageChange(log, c));
  await serveNode(config, log, socketPath, {
    bridge: (tun) => bridge(tun, link),
    status: (tun, counters) => {
      observe.attach(link, () => tun.counters);
      return (): LinkStatus & { tun: object; superpackets: object } => ({ ...observe.status(link), tun: { name: tun.name, mtu: tun.mtu, offload: tun.offload, ...tun.counters, ...counters }, superpackets: { ...link.superpacketCounters } });
    },
    metrics: { contentType: observe.metrics.contentType, render: () => observe.metrics.render() },
    up: { fields: { peer: config.peer }, what: "up" },
    notify: () => startServiceNotify(link, log),
    downFields: () => link.status().counters,
    close: () => link.close(),
  });
}

/** Raises the node's scheduling as configured and says what it got (real-time, or why not). */
export async function raiseSchedulingLogged(config: Pick<NodeConfig, "scheduling">, log: pino.Logger): Promise<void> {
  const scheduling = await raiseScheduling(config.scheduling);
  if (scheduling.policy === "rr") log.info({ event: "scheduling", ...scheduling }, `real-time scheduling (SCHED_RR ${scheduling.priority})`);
  else log.warn({ event: "scheduling", ...scheduling }, `normal scheduling: heartbeats may be late under CPU pressure (${scheduling.reason})`);
}

/** What the `up` shell needs of an open node, a pair's Link or a ClusterNode: the rest is the same for both. */
export interface ServedNode {
  /** Joins the node to the TUN device both ways (batches whole); the counters it keeps. */
  bridge(tun: TunDevice): BridgeCounters;
  /** Called once the TUN is bridged: the control socket's `status` answer. */
  status(tun: TunDevice, counters: BridgeCounters): () => object;
  /** GET /metrics: Prometheus text. */
  metrics: { contentType: string; render(): Promise<string> | string };
  /** The `up` log line: its fields after `node` (the peer or peers) and the words after "node N". */
  up: { fields: Record<string, unknown>; what: string };
  /** Starts the systemd notifier (undefined without $NOTIFY_SOCKET). */
  notify(): ServiceNotifier | undefined;
  /** The `down` log line's fields after `event`. */
  downFields(): object;
  /** Closes the node (last records flushed). */
  close(): Promise<void>;
}

/**
 * The shell of `lunlink up` around an open node: TUN device, control socket, optional metrics,
 * signals and systemd notification. Returns once the node was told to stop (`lunlink down`, SIGINT,
 * SIGTERM) or its TUN device failed, after closing everything, the node last (it owns the node from
 * the call on, even if opening the rest fails).
 */
export async function serveNode(config: Pick<NodeConfig, "node" | "tun" | "metrics">, log: pino.Logger, socketPath: string, node: ServedNode): Promise<void> {
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
  // A TUN read error (the interface deleted under us, say) ends the node through the same clean-up
  // as `lunlink down`, then the runner rejects with it: never an uncaught exception.
  let tunFailure: Error | undefined;
  try {
    tun = await TunDevice.open({ name: config.tun.name, mtu: config.tun.mtu, address: config.tun.address, offload: config.tun.offload, up: true });
    tun.on("error", (error) => {
      log.error({ event: "tun-error", code: (error as { code?: string }).code, message: error.message }, "TUN device failed: stopping the node");
      tunFailure ??= error;
      stop("tun-error");
    });
    if (tun.offloadRefusedErrno !== 0) {
      // As udp.cc's UDP_SEGMENT: a kernel that refuses TUN offload runs without it (one packet per MTU).
      log.warn({ event: "tun-offload-refused", errno: errnoName(tun.offloadRefusedErrno) }, `TUNSETOFFLOAD refused (${errnoName(tun.offloadRefusedErrno)}): ${tun.name} runs without TCP superpackets`);
    }
    const status = node.status(tun, node.bridge(tun));
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
        Promise.resolve()
          .then(() => node.metrics.render())
          .then(
            (text) => res.writeHead(200, { "content-type": node.metrics.contentType }).end(text),
            (error: unknown) => res.writeHead(500).end(String(error)),
          );
      });
      await new Promise<void>((resolve, reject) => metrics!.once("error", reject).listen(at.port, at.host, () => resolve()));
    }
    process.once("SIGINT", onSigint);
    process.once("SIGTERM", onSigterm);
    log.info({ event: "up", node: config.node, ...node.up.fields, tun: tun.name, address: config.tun.address, mtu: tun.mtu, offload: tun.offload, control: socketPath }, `node ${config.node} ${node.up.what}: ${tun.name} ${config.tun.address}`);
    service = node.notify();
    await stopped;
    log.info({ event: "down", ...node.downFields() }, `node ${config.node} going down`);
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

/** One log line for a state change of a storage component (pair or cluster, `peer` for a cluster's rings). */
export function logStorageChange(log: pino.Logger, c: { component: string; peer?: number; from: string; to: string; fault?: { code: string; message: string }; outageMs?: number }): void {
  const fields = { event: "storage", component: c.component, ...(c.peer === undefined ? {} : { peer: c.peer }), from: c.from, to: c.to, ...(c.fault === undefined ? {} : { code: c.fault.code, message: c.fault.message }), ...(c.outageMs === undefined ? {} : { outageMs: Math.round(c.outageMs) }) };
  const what = `${c.component} volume ${c.to}${c.fault === undefined ? "" : `: ${c.fault.message}`}${c.outageMs === undefined ? "" : ` (down ${(c.outageMs / 1000).toFixed(1)} s)`}`;
  if (c.to === "failed") log.error(fields, `${what} (configuration fault: not retried; fix it and restart)`);
  else if (c.to === "up" || c.to === "closed") log.info(fields, what);
  else log.warn(fields, what);
}
