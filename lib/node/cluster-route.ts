// Routing a TUN packet of a cluster to its destination node (sans-IO): every node has one IPv4
// address on the cluster's TUN subnet, mapped to its node id in the config, as WireGuard maps peers
// by allowed addresses. Unicast to a member -> that node (the frame's destination byte); subnet
// broadcast, 255.255.255.255 and IPv4/IPv6 multicast -> every peer (destination 0, broadcast);
// anything else is dropped with a reason (counted by the caller). No allocation per packet.
import { BROADCAST, MAX_CLUSTER_NODES, MAX_CLUSTER_NODE_ID } from "../format/layout.ts";
import { invalidArgument } from "../errors.ts";

export interface ClusterMember {
  node: number;
  /** Dotted IPv4 address on the TUN subnet. */
  address: string;
}

export type Route = { kind: "peer"; node: number } | { kind: "broadcast"; destination: typeof BROADCAST } | { kind: "drop"; reason: "short" | "version" | "self" | "unknown-address" | "outside-subnet" };

const BROADCAST_ROUTE: Route = { kind: "broadcast", destination: BROADCAST };

export class ClusterRoutes {
  private readonly byAddress = new Map<number, number>();
  private readonly subnet: number;
  private readonly mask: number;
  private readonly self: number;
  /** Preallocated answers, one per member: routing a packet allocates nothing. */
  private readonly peerRoutes = new Map<number, Route>();

  /** `subnet` as "a.b.c.d/len"; `self` is this node's id; members include this node. */
  constructor(subnet: string, members: readonly ClusterMember[], self: number) {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(subnet);
    const prefix = m === null ? Number.NaN : Number(m[2]);
    const base = m === null ? undefined : ipv4(m[1]!);
    if (base === undefined || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) throw invalidArgument("subnet", "an IPv4 subnet a.b.c.d/8..30", subnet);
    this.mask = (0xffffffff << (32 - prefix)) >>> 0;
    this.subnet = (base & this.mask) >>> 0;
    if (members.length < 2 || members.length > MAX_CLUSTER_NODES) throw invalidArgument("members", `2..${MAX_CLUSTER_NODES} nodes`, members.length);
    for (const member of members) {
      const address = ipv4(member.address);
      if (!Number.isInteger(member.node) || member.node < 1 || member.node > MAX_CLUSTER_NODE_ID) throw invalidArgument("members.node", `1..${MAX_CLUSTER_NODE_ID}`, member.node);
      if (address === undefined || ((address & this.mask) >>> 0) !== this.subnet) throw invalidArgument(`members[${member.node}].address`, `an address in ${subnet}`, member.address);
      if (address === this.subnet || address === (this.subnet | ~this.mask) >>> 0) throw invalidArgument(`members[${member.node}].address`, "a host address (not the subnet's network or broadcast address)", member.address);
      if (this.byAddress.has(address) || [...this.byAddress.values()].includes(member.node)) throw invalidArgument("members", "distinct node ids and addresses", `${member.node} ${member.address}`);
      this.byAddress.set(address, member.node);
      this.peerRoutes.set(member.node, { kind: "peer", node: member.node });
    }
    if (![...this.byAddress.values()].includes(self)) throw invalidArgument("self", "one of the members' node ids", self);
    this.self = self;
  }

  /** Where an IP packet read from the TUN goes. */
  route(packet: Uint8Array): Route {
    if (packet.length < 1) return { kind: "drop", reason: "short" };
    const version = packet[0]! >> 4;
    if (version === 6) {
      if (packet.length < 40) return { kind: "drop", reason: "short" };
      return packet[24] === 0xff ? BROADCAST_ROUTE : { kind: "drop", reason: "unknown-address" }; // ff00::/8 multicast; unicast IPv6 is not mapped
    }
    if (version !== 4) return { kind: "drop", reason: "version" };
    if (packet.length < 20) return { kind: "drop", reason: "short" };
    const destination = ((packet[16]! << 24) | (packet[17]! << 16) | (packet[18]! << 8) | packet[19]!) >>> 0;
    if (destination === 0xffffffff || destination >>> 28 === 0xe) return BROADCAST_ROUTE; // limited broadcast, 224.0.0.0/4
    if (((destination & this.mask) >>> 0) !== this.subnet) return { kind: "drop", reason: "outside-subnet" };
    if (destination === (this.subnet | ~this.mask) >>> 0) return BROADCAST_ROUTE;
    const node = this.byAddress.get(destination);
    if (node === undefined) return { kind: "drop", reason: "unknown-address" };
    if (node === this.self) return { kind: "drop", reason: "self" };
    return this.peerRoutes.get(node)!;
  }
}

function ipv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}
