// systemd integration of a cluster node (Type=notify, lunlink@.service): the pair's ServiceState
// (lib/node/service.ts) fed with the cluster's worst path state over every peer, so READY=1 means
// every peer's paths have a verdict (heard, or downMs passed), STATUS= names each peer's active path,
// WATCHDOG=1 and STOPPING=1 as for a pair. Nothing runs unless $NOTIFY_SOCKET is set.
import type pino from "pino";

import { notifySocketFrom, sdNotify } from "../io/notify.ts";
import type { PathState } from "../link/paths.ts";
import type { ClusterNode } from "./cluster-node.ts";
import { ServiceState, watchdogIntervalMs, type ServiceNotifier, type ServiceView } from "./service.ts";

const WORST: readonly PathState[] = ["down", "suspect", "up"];

/** One view of every peer: each path's worst state, and each peer's active path ("2:primary 3:storage"). */
export function clusterServiceView(peers: readonly { node: number; core: { paths: { active: string; primary: { state: PathState }; storage: { state: PathState } } } }[]): ServiceView {
  const worst = (pick: (p: (typeof peers)[number]) => PathState) => WORST.find((s) => peers.some((p) => pick(p) === s)) ?? "down";
  return {
    active: peers.map((p) => `${p.node}:${p.core.paths.active}`).join(" "),
    primary: worst((p) => p.core.paths.primary.state),
    storage: worst((p) => p.core.paths.storage.state),
  };
}

/** Starts notifying systemd if $NOTIFY_SOCKET is set; undefined otherwise. Call once the node serves. */
export function startClusterServiceNotify(node: ClusterNode, log: pino.Logger, env: NodeJS.ProcessEnv = process.env): ServiceNotifier | undefined {
  const socket = notifySocketFrom(env);
  if (socket === undefined) return undefined;
  const state = new ServiceState(performance.now(), node.options.timers, watchdogIntervalMs(env, process.pid));
  let lastError = "";
  const send = (lines: string[]) => {
    if (lines.length === 0) return;
    try {
      sdNotify(socket, lines.join("\n"));
    } catch (error) {
      const code = (error as { code?: string }).code ?? "unknown";
      if (code !== lastError) log.warn({ event: "notify-error", code, message: (error as Error).message }, `cannot notify systemd: ${(error as Error).message}`);
      lastError = code;
    }
  };
  const tick = () => send(state.tick(performance.now(), clusterServiceView(node.peers)));
  const timer = setInterval(tick, state.tickMs);
  timer.unref();
  node.on("transition", tick);
  tick();
  log.info({ event: "notify", socket, tickMs: state.tickMs }, `notifying systemd on ${socket}`);
  const close = () => {
    clearInterval(timer);
    node.off("transition", tick);
  };
  return {
    stopping(why) {
      close();
      send(state.stopping(why));
    },
    close,
  };
}
