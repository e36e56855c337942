// systemd integration of a cluster node (Type=notify, lunlink@.service): the pair's ServiceState
// (lib/node/service.ts) fed with the cluster's worst path state over every peer, so READY=1 means
// every peer's paths have a verdict (heard, or downMs passed), STATUS= names each peer's active path,
// WATCHDOG=1 and STOPPING=1 as for a pair. Nothing runs unless $NOTIFY_SOCKET is set.
import type pino from "pino";

import type { PathState } from "../link/paths.ts";
import type { ClusterNode } from "./cluster-node.ts";
import { startNotifier, type ServiceNotifier, type ServiceView } from "./service.ts";

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
  return startNotifier(node.options.timers, () => clusterServiceView(node.peers), node, log, env);
}
