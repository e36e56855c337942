// The composition root of a running node: TUN device + link + control socket + optional metrics,
// built from one NodeConfig. `lunlink up` calls runNode; it returns once the node was told to stop
// (`lunlink down`, SIGINT, SIGTERM) or its TUN device failed, after closing everything it opened:
// the TUN device (the interface disappears), the link (last records flushed) and the control socket.
// Under systemd (Type=notify, $NOTIFY_SOCKET) it reports readiness, status, watchdog and STOPPING=1.
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { Server } from "node:net";
import { unlink } from "node:fs/promises";
import type pino from "pino";

import { Link, type LinkStatus } from "../link/link.ts";
import { bridge } from "../tun/bridge.ts";
import { TunDevice } from "../tun/tun.ts";
import { controlSocketPath, linkOptions, loadKeys, parseEndpoint, type NodeConfig } from "./config.ts";
import { serveControl } from "./control.ts";
import { NodeObservability } from "./observe.ts";
import { raiseScheduling } from "./scheduling.ts";
import { startServiceNotify, type ServiceNotifier } from "./service.ts";

export async function runNode(config: NodeConfig, log: pino.Logger): Promise<void> {
  const scheduling = await raiseScheduling(config.scheduling);
  if (scheduling.policy === "rr") log.info({ event: "scheduling", ...scheduling }, `real-time scheduling (SCHED_RR ${scheduling.priority})`);
  else log.warn({ event: "scheduling", ...scheduling }, `normal scheduling: heartbeats may be late under CPU pressure (${scheduling.reason})`);
  const socketPath = controlSocketPath(config);
  const keys = await loadKeys(config);
  const observe = new NodeObservability(log);
  const options = linkOptions(config, (event, fields) => log.info({ event, ...fields }, event), keys);
  const link = await Link.open({ ...options, storage: { ...options.storage, observer: observe.ringObserver } });
  if (keys === undefined) log.warn({ event: "no-keys" }, "no keys configured: UDP datagrams are neither authenticated nor encrypted (see docs/security.md)");
  // One line per state change of a storage component (not per retry): fault, recovery, configuration fault.
  link.on("storage", (c) => logStorageChange(log, c));
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
  // as `lunlink down`, then runNode rejects with it: never an uncaught exception.
  let tunFailure: Error | undefined;
  try {
    tun = await TunDevice.open({ name: config.tun.name, mtu: config.tun.mtu, address: config.tun.address, up: true });
    tun.on("error", (error) => {
      log.error({ event: "tun-error", code: (error as { code?: string }).code, message: error.message }, "TUN device failed: stopping the node");
      tunFailure ??= error;
      stop("tun-error");
    });
    const counters = bridge(tun, link);
    observe.attach(link, () => tun!.counters);
    const status = (): LinkStatus & { tun: object } => ({ ...observe.status(link), tun: { name: tun!.name, mtu: tun!.mtu, ...tun!.counters, ...counters } });
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
        observe.metrics.render().then(
          (text) => res.writeHead(200, { "content-type": observe.metrics.contentType }).end(text),
          (error: unknown) => res.writeHead(500).end(String(error)),
        );
      });
      await new Promise<void>((resolve, reject) => metrics!.once("error", reject).listen(at.port, at.host, () => resolve()));
    }
    process.once("SIGINT", onSigint);
    process.once("SIGTERM", onSigterm);
    log.info({ event: "up", node: config.node, peer: config.peer, tun: tun.name, address: config.tun.address, mtu: tun.mtu, control: socketPath }, `node ${config.node} up: ${tun.name} ${config.tun.address}`);
    service = startServiceNotify(link, log);
    await stopped;
    log.info({ event: "down", ...link.status().counters }, `node ${config.node} going down`);
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
    await link.close();
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
