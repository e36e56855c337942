// The bounds of the writer's and reader's pure bookkeeping, at exactly their limits (mutation testing
// found them unpinned): PeerHolds takes at most MAX_PEER_ROWS peers and keeps at most
// 2 x MAX_PEER_ROWS unreported events, newest last; only real persisted rows seed the delivered marks;
// FaultMemory remembers FAULT_MEMORY identities per reason, oldest forgotten first.
import test from "ava";

import { MAX_PEER_ROWS } from "../../lib/format/layout.ts";
import type { PeerRow } from "../../lib/format/status.ts";
import { FAULT_MEMORY, FaultMemory } from "../../lib/ring/fault-memory.ts";
import { PeerHolds } from "../../lib/ring/peer-holds.ts";
import type { PeerAckInput } from "../../lib/ring/writer-options.ts";

const counters = () => ({ peersReleased: 0, peersReturned: 0 });
const peers = (count: number, heartbeat = 1n): PeerAckInput[] => Array.from({ length: count }, (_, i) => ({ node: i + 1, ack: undefined, heartbeat }));
const row = (node: number, deliveredSeq: bigint): PeerRow => ({ node, flags: 0, ackEpoch: 1n, ackSeq: 0n, deliveredEpoch: 1n, deliveredSeq });

test("PeerHolds: MAX_PEER_ROWS peers are tracked, one more in a call or over time is refused", (t) => {
  const h = new PeerHolds(100, [], counters());
  t.notThrows(() => h.track(0, peers(MAX_PEER_ROWS)));
  t.throws(() => h.track(1, peers(MAX_PEER_ROWS + 1)), { message: /at most/ });
  // A new node once MAX_PEER_ROWS distinct nodes were seen, in a call of one.
  t.throws(() => h.track(2, [{ node: MAX_PEER_ROWS + 1, ack: undefined, heartbeat: 1n }]), { message: /more than/ });
});

test("PeerHolds: unreported events are bounded at 2 x MAX_PEER_ROWS, the newest kept in order", (t) => {
  const c = counters();
  const h = new PeerHolds(10, [], c);
  h.track(0, peers(1, 0n));
  // Release (silent for peerDownMs) and return (heartbeat moves), over and over, nobody reading events.
  const cycles = 2 * MAX_PEER_ROWS; // 2 events a cycle: twice the bound
  for (let i = 1; i <= cycles; i++) {
    h.track(i * 100, peers(1, BigInt(i - 1))); // unchanged heartbeat, 100 ms on: released
    h.track(i * 100 + 1, peers(1, BigInt(i))); // moved: back
  }
  t.is(c.peersReleased, cycles);
  t.is(c.peersReturned, cycles);
  t.is(h.events.length, 2 * MAX_PEER_ROWS);
  t.deepEqual(h.events.at(-1), { node: 1, released: false });
  t.deepEqual(h.events.at(-2), { node: 1, released: true });
});

test("PeerHolds: only persisted rows of a real peer with a delivered record seed the never-lowered marks", (t) => {
  const h = new PeerHolds(0, [row(0, 9n), row(2, 0n), row(3, 7n)], counters());
  const out = h.statusRows([row(0, 4n), row(2, 0n), row(3, 5n)]);
  t.is(out[0]!.deliveredSeq, 4n, "node 0 (a pair's unnamed row) seeds nothing");
  t.is(out[1]!.deliveredSeq, 0n);
  t.is(out[2]!.deliveredSeq, 7n, "node 3's persisted mark is not lowered");
});

test("FaultMemory: FAULT_MEMORY identities per reason; the oldest is forgotten first", (t) => {
  const memory = new FaultMemory();
  const ids = Array.from({ length: FAULT_MEMORY + 1 }, (_, i) => `slot:${i}`);
  for (const id of ids.slice(0, FAULT_MEMORY)) t.true(memory.isNew("tornSeen", id));
  for (const id of ids.slice(0, FAULT_MEMORY)) t.false(memory.isNew("tornSeen", id), "all FAULT_MEMORY remembered");
  t.true(memory.isNew("tornSeen", ids[FAULT_MEMORY]!), "one more is new, and pushes the oldest out");
  t.true(memory.isNew("tornSeen", ids[0]!), "the oldest was forgotten");
  t.false(memory.isNew("tornSeen", ids[FAULT_MEMORY]!), "the newest is still remembered");
  t.true(memory.isNew("authFailures", ids[1]!), "per reason");
});

test("FaultMemory.identity: a description is kept as is; bytes become their CRC32C", (t) => {
  t.is(FaultMemory.identity("record", 4096, 2n, 7n, "no record"), "record:4096:2:7:no record");
  t.regex(FaultMemory.identity("record", 4096, 2n, 7n, new Uint8Array([1, 2, 3])), /^record:4096:2:7:[0-9a-f]+$/);
  t.not(FaultMemory.identity("record", 0, 0n, 0n, new Uint8Array([1])), FaultMemory.identity("record", 0, 0n, 0n, new Uint8Array([2])));
});
