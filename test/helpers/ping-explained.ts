// Pings between two cluster lab nodes; when a reply is missing, the test log says where the packets
// went: every numeric status field of the two nodes that moved during the pings (their links to each
// other, routes, TUN, ring), and each link's transitions meanwhile. A lost ping without these says
// nothing about which layer dropped it.
import type { ExecutionContext } from "ava";

import type { ClusterNodeStatus } from "../../lib/node/cluster-status.ts";
import type { ClusterLab } from "./cluster-lab.ts";
import { sleep } from "./exec.ts";

/** Numeric leaves of a value, keyed by their dotted path (bigint strings count as numbers). */
function leaves(value: unknown, prefix = "", out = new Map<string, number>()): Map<string, number> {
  if (typeof value === "number") out.set(prefix, value);
  else if (typeof value === "boolean") out.set(prefix, Number(value));
  else if (typeof value === "string" && /^-?\d+$/.test(value)) out.set(prefix, Number(value));
  else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) if (!/(ago|for)Ms$|eventLoopDelayMs/i.test(k)) leaves(v, prefix === "" ? k : `${prefix}.${k}`, out);
  }
  return out;
}

/** What a node's status says about its link to `other`, and its node-wide counters (routes, TUN, ring). */
function view(s: ClusterNodeStatus, other: number): Map<string, number> {
  const peer = s.peers.find((p) => p.node === other);
  return leaves({ link: { ...peer, transitions: undefined }, routes: s.routes, tun: s.tun, ring: s.ring, udpStrays: s.udpStrays });
}

function moved(before: Map<string, number>, after: Map<string, number>): string {
  const parts: string[] = [];
  for (const [k, v] of after) if (before.get(k) !== v) parts.push(`${k} ${before.get(k) ?? "-"} -> ${v}`);
  return parts.join(", ");
}

/** lab.ping, plus the explanation above in the test log when fewer than `count` replies came. */
export async function pingExplained(t: ExecutionContext, lab: ClusterLab, from: number, to: number, count: number, replyWaitS?: number): Promise<number> {
  const [a0, b0] = await Promise.all([lab.status(from), lab.status(to)]);
  const replies = await lab.ping(from, to, count, replyWaitS);
  if (replies >= count) return replies;
  const [a1, b1] = await Promise.all([lab.status(from), lab.status(to)]);
  for (const [id, other, s0, s1] of [[from, to, a0, a1], [to, from, b0, b1]] as const) {
    const p0 = s0.peers.find((p) => p.node === other);
    const p1 = s1.peers.find((p) => p.node === other);
    const newer = (p1?.transitions ?? []).filter((x) => !(p0?.transitions ?? []).some((y) => y.atMs === x.atMs && y.subject === x.subject && y.to === x.to));
    t.log(`ping ${from} -> ${to}: ${replies} of ${count}; node ${id} moved: ${moved(view(s0, other), view(s1, other))}`);
    if (newer.length > 0) t.log(`  node ${id} -> ${other} transitions meanwhile: ${newer.map((x) => `${x.kind} ${x.subject} ${x.from}->${x.to} (${x.detail})`).join("; ")}`);
  }
  // Late or lost: what moved in the next second (a ring record read only now was late, not lost).
  await sleep(1000);
  const [a2, b2] = await Promise.all([lab.status(from), lab.status(to)]);
  t.log(`  a second later, node ${from} moved: ${moved(view(a1, to), view(a2, to))}; node ${to} moved: ${moved(view(b1, from), view(b2, from))}`);
  return replies;
}
