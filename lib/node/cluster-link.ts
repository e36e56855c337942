// One peer of a cluster node as `lunlink status` shows it: the shared per-peer shell's view (PeerLink,
// lib/link/peer-link.ts: path states, counters, transitions) beside the node's ring as that peer sees
// it (ClusterStorage: our send ring and its receive ring, its ack of our ring, its reader's counters).
// Pure: a snapshot at the time of the call, sharing nothing mutable with the link.
import { performance } from "node:perf_hooks";

import { peerPathsStatus, type PeerPathsStatus } from "../link/link-status.ts";
import type { CoreCounters, RefusedCounters, Transition } from "../link/paths.ts";
import type { PeerLink } from "../link/peer-link.ts";
import type { StorageReport } from "../link/peer-storage.ts";
import type { ClusterStorage } from "./cluster-storage.ts";

export interface PeerStatus extends PeerPathsStatus {
  node: number;
  storage: StorageReport;
  ring: ReturnType<ClusterStorage["peerRing"]>;
  counters: CoreCounters & RefusedCounters & { udpSendErrors: number; ringNotTaken: number };
  transitions: Transition[];
}

/** Peer link `peer`'s status, its storage seen through the node's ClusterStorage. */
export function peerStatus(peer: PeerLink, storage: ClusterStorage): PeerStatus {
  const core = peer.core;
  const i = peer.options.index;
  return {
    node: peer.node,
    ...peerPathsStatus(performance.now(), core, storage.drained(i)),
    storage: storage.report(i),
    ring: storage.peerRing(i),
    counters: { ...core.counters, ...core.refused, sent: { ...core.counters.sent }, received: { ...core.counters.received }, udpSendErrors: peer.udpSendErrors, ringNotTaken: peer.ringNotTaken },
    transitions: [...core.paths.transitions],
  };
}
