// The cluster TUN routing core (lib/node/cluster-route.ts): unicast to a member's address goes to that
// node, broadcast and multicast to every peer, everything else is dropped with a reason; the table
// refuses bad members. Addresses from 198.18.0.0/15 (benchmark range), as the netns tests use.
import test from "ava";

import { ClusterRoutes } from "../../lib/node/cluster-route.ts";
import { ErrorCode } from "../../lib/errors.ts";

const MEMBERS = [
  { node: 1, address: "198.18.7.1" },
  { node: 2, address: "198.18.7.2" },
  { node: 5, address: "198.18.7.5" },
];

function ipv4To(destination: string): Uint8Array {
  const p = new Uint8Array(28);
  p[0] = 0x45;
  destination.split(".").forEach((part, i) => (p[16 + i] = Number(part)));
  return p;
}

test("unicast to a member goes to its node; broadcast and multicast to every peer; the rest dropped with a reason", (t) => {
  const routes = new ClusterRoutes("198.18.7.0/24", MEMBERS, 1);
  t.deepEqual(routes.route(ipv4To("198.18.7.2")), { kind: "peer", node: 2 });
  t.deepEqual(routes.route(ipv4To("198.18.7.5")), { kind: "peer", node: 5 });
  t.is(routes.route(ipv4To("198.18.7.5")), routes.route(ipv4To("198.18.7.5")), "no allocation per packet: the same answer object");
  for (const b of ["198.18.7.255", "255.255.255.255", "224.0.0.18", "239.192.0.1"]) t.deepEqual(routes.route(ipv4To(b)), { kind: "broadcast", destination: 0 }, b);
  t.deepEqual(routes.route(ipv4To("198.18.7.1")), { kind: "drop", reason: "self" });
  t.deepEqual(routes.route(ipv4To("198.18.7.9")), { kind: "drop", reason: "unknown-address" });
  t.deepEqual(routes.route(ipv4To("198.19.0.1")), { kind: "drop", reason: "outside-subnet" });
  t.deepEqual(routes.route(new Uint8Array(10).fill(0x45)), { kind: "drop", reason: "short" });
  t.deepEqual(routes.route(new Uint8Array(40).fill(0x20)), { kind: "drop", reason: "version" });
  const v6 = new Uint8Array(40);
  v6[0] = 0x60;
  v6[24] = 0xff;
  t.deepEqual(routes.route(v6), { kind: "broadcast", destination: 0 }, "IPv6 multicast ff00::/8");
  v6[24] = 0xfd;
  t.deepEqual(routes.route(v6), { kind: "drop", reason: "unknown-address" });
});

test("the table refuses what cannot be routed: addresses outside the subnet, duplicates, bad ids, a non-member self", (t) => {
  const bad = (subnet: string, members: typeof MEMBERS, self = 1) => t.throws(() => new ClusterRoutes(subnet, members, self), { code: ErrorCode.InvalidArgument });
  bad("198.18.7.0/33", MEMBERS);
  bad("198.18.8.0/24", MEMBERS);
  bad("198.18.7.0/24", [...MEMBERS, { node: 6, address: "198.18.7.2" }]);
  bad("198.18.7.0/24", [...MEMBERS, { node: 2, address: "198.18.7.6" }]);
  bad("198.18.7.0/24", [...MEMBERS, { node: 256, address: "198.18.7.6" }]);
  bad("198.18.7.0/24", [...MEMBERS, { node: 6, address: "198.18.7.255" }]);
  bad("198.18.7.0/24", [MEMBERS[0]!]);
  bad("198.18.7.0/24", MEMBERS, 9);
  t.notThrows(() => new ClusterRoutes("198.18.7.0/24", MEMBERS, 5));
});
