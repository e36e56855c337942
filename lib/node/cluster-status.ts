// What a cluster node tells its operator, as pure functions of its status: `lunlink status` text
// (one block per peer: active path, both paths with last-heard times, failovers, ring ack and lag)
// and Prometheus text metrics, every series labelled by peer (and path). A peer with both paths
// silent is reported "isolated" (lunlink never fences: that is the cluster manager's job).
import type { PeerStatus } from "./cluster-link.ts";
import type { ClusterStatus } from "./cluster-node.ts";

export type ClusterNodeStatus = ClusterStatus & { tun?: { name: string; address: string; packetsIn: number; packetsOut: number } };

export function renderClusterStatus(s: ClusterNodeStatus): string {
  const isolated = s.peers.filter((p) => p.active === "isolated").map((p) => p.node);
  const lines = [
    `node ${s.node}: cluster of ${s.peers.length + 1}${s.tun === undefined ? "" : `, ${s.tun.name} ${s.tun.address}`}; ring head ${s.ring.headSeq} (epoch ${s.ring.epoch}), writer drops ${s.ring.writerCounters.framesDropped}, peers released ${s.ring.writerCounters.peersReleased}`,
  ];
  if (isolated.length > 0) lines.push(`  ISOLATED from node ${isolated.join(", ")}: both paths silent (lunlink does not fence)`);
  for (const p of s.peers) lines.push(...peerLines(p));
  const d = s.routes.dropped;
  lines.push(`  routes: ${s.routes.toPeers} unicast, ${s.routes.broadcasts} broadcast, ${s.routes.notSent} not sent; dropped: unknown address ${d["unknown-address"]}, outside subnet ${d["outside-subnet"]}, self ${d.self}, too large ${d["too-large"]}; UDP strays ${s.udpStrays}`);
  if (s.tun !== undefined) lines.push(`  tun ${s.tun.name}: ${s.tun.packetsIn} packets in, ${s.tun.packetsOut} out`);
  return `${lines.join("\n")}\n`;
}

function peerLines(p: PeerStatus): string[] {
  const path = (x: PeerStatus["paths"]["primary"]) => `${x.state.padEnd(8)} last heard ${x.lastHeardAgoMs ?? "never"} ms ago${x.state === "up" ? "" : ` (${x.reason})`}`;
  return [
    `  node ${p.node}: active ${p.active}`,
    `    primary  ${path(p.paths.primary)}`,
    `    storage  ${path(p.paths.storage)}${p.storage.state === "up" ? "" : `; local storage ${p.storage.state}`}`,
    `    failovers ${p.failovers}, failbacks ${p.failbacks}, control pending ${p.controlPending}; sent primary ${p.counters.sent.primary} storage ${p.counters.sent.storage}; received primary ${p.counters.received.primary} storage ${p.counters.received.storage}`,
    `    its ring: ack of ours ${p.ring.ackSeq ?? "none"}, lag ${p.ring.lagRecords} records, lost ${p.ring.reader.lost}, damaged ${p.ring.reader.damaged}, overruns ${p.ring.reader.overruns}`,
  ];
}

/** Prometheus text exposition (version 0.0.4) of a cluster node's status, every series labelled by peer. */
export const CLUSTER_METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export function renderClusterMetrics(s: ClusterStatus): string {
  const out: string[] = [];
  const family = (name: string, type: "gauge" | "counter", help: string, rows: [labels: Record<string, string | number>, value: number | string][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows) out.push(`${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(",")}} ${value}`);
  };
  const perPath = (f: (p: PeerStatus, path: "primary" | "storage") => number | string) => s.peers.flatMap((p) => (["primary", "storage"] as const).map((path): [Record<string, string | number>, number | string] => [{ peer: p.node, path }, f(p, path)]));
  const perPeer = (f: (p: PeerStatus) => number | string) => s.peers.map((p): [Record<string, string | number>, number | string] => [{ peer: p.node }, f(p)]);
  family("lunlink_peer_path_up", "gauge", "1 while the path to the peer is up (heartbeats both ways).", perPath((p, path) => (p.paths[path].state === "up" ? 1 : 0)));
  family("lunlink_peer_active_path", "gauge", "1 for the path data to the peer goes on now (isolated: both silent).", s.peers.flatMap((p) => (["primary", "storage", "isolated"] as const).map((path): [Record<string, string | number>, number] => [{ peer: p.node, path }, p.active === path ? 1 : 0])));
  family("lunlink_peer_failovers_total", "counter", "Switches of the peer's data from the primary to storage.", perPeer((p) => p.failovers));
  family("lunlink_peer_failbacks_total", "counter", "Switches of the peer's data back to the primary.", perPeer((p) => p.failbacks));
  family("lunlink_peer_messages_sent_total", "counter", "Link messages sent to the peer, by path.", perPath((p, path) => p.counters.sent[path]));
  family("lunlink_peer_messages_received_total", "counter", "Link messages received from the peer, by path.", perPath((p, path) => p.counters.received[path]));
  family("lunlink_peer_data_delivered_total", "counter", "Data messages from the peer delivered (after dedupe).", perPeer((p) => p.counters.dataDelivered));
  family("lunlink_peer_data_duplicates_total", "counter", "Data messages from the peer dropped as duplicates.", perPeer((p) => p.counters.dataDuplicates));
  family("lunlink_peer_ring_lag_records", "gauge", "Records of the peer's ring not read yet.", perPeer((p) => p.ring.lagRecords));
  family("lunlink_peer_ring_lost_records_total", "counter", "Records of the peer's ring lost (overrun, damaged).", perPeer((p) => p.ring.reader.lost));
  family("lunlink_ring_head_seq", "gauge", "Next sequence of this node's ring.", [[{ node: s.node }, s.ring.headSeq]]);
  family("lunlink_route_dropped_total", "counter", "TUN packets routed nowhere, by reason.", Object.entries(s.routes.dropped).map(([reason, n]): [Record<string, string>, number] => [{ reason }, n]));
  return `${out.join("\n")}\n`;
}
