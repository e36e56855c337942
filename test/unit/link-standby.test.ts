// The storage follower's standby verdict (LinkCore.storageStandby, emitted by PeerLink on each tick
// and after ring traffic) for two simulated nodes on a fake clock: on only while the primary is up
// both ways and active and the ring carried only heartbeats for a storage heartbeat period; off at the
// turn the primary turns suspect (a clean cut, a one-way cut: the missing echo), back on once traffic
// fails back; data on the ring turns it off in the same call. Simulated time is logic, not timing.
import test from "ava";

import { encodeMessage, MessageKind, PathId, type MessageHeader } from "../../lib/link/message.ts";
import { DEFAULT_TIMERS, LinkCore, type LinkOutput } from "../../lib/link/paths.ts";

type Sent = { path: PathId; header: MessageHeader; payload: Uint8Array | undefined };

function node(nodeId: number, peerNodeId: number) {
  const sent: Sent[] = [];
  const out: LinkOutput = {
    send: (path, header, payload) => {
      sent.push({ path, header: { ...header }, payload: payload?.slice() });
      return true;
    },
    data: () => {},
    control: () => {},
    peerSession: () => {},
    controlRoom: () => {},
    transition: () => {},
    log: () => {},
  };
  const core = new LinkCore(DEFAULT_TIMERS, { nodeId, peerNodeId, session: BigInt(nodeId) << 16n, controlRtoMs: 200 });
  /** The verdicts as PeerLink emits them: [time, on] at each change. */
  const changes: [number, boolean][] = [];
  let on = false;
  const update = (now: number) => {
    const next = core.storageStandby(now);
    if (next !== on) changes.push([now, (on = next)]);
  };
  return { core, out, sent, changes, update, get on() { return on; } };
}

/** Two nodes, 1 ms steps, PeerLink's schedule: heartbeats, ticks every 5 ms, the verdict after each tick and after ring traffic. */
function simulate(script: { ab: (t: number) => boolean; ba: (t: number) => boolean }, endMs: number) {
  const nodes = [node(1, 2), node(2, 1)] as const;
  for (let now = 0; now <= endMs; now++) {
    for (const n of nodes) {
      if (now % DEFAULT_TIMERS.primary.heartbeatMs === 0) n.core.heartbeat(PathId.Primary, n.out);
      if (now % DEFAULT_TIMERS.storage.heartbeatMs === 0) n.core.heartbeat(PathId.Storage, n.out);
    }
    for (const [i, from] of nodes.entries()) {
      const to = nodes[1 - i]!;
      for (const m of from.sent.splice(0)) {
        if (m.path === PathId.Primary && !(i === 0 ? script.ab(now) : script.ba(now))) continue;
        const bytes = encodeMessage(m.header, m.payload);
        to.core.receive(now, bytes, 0, bytes.length, m.path, to.out);
        if (m.path === PathId.Storage && to.on) to.update(now);
      }
    }
    if (now % 5 === 0) for (const n of nodes) n.core.tick(now, n.out), n.update(now);
  }
  return nodes;
}

test("standby: on once the primary is up both ways; a clean cut turns it off at the suspect turn, failback turns it on again", (t) => {
  const cutAt = 2000;
  const healAt = 4000;
  const up = (x: number) => x < cutAt || x >= healAt;
  const nodes = simulate({ ab: up, ba: up }, 8000);
  for (const n of nodes) {
    const [first, off, on] = n.changes;
    t.is(n.changes.length, 3, `node ${n.core.id.nodeId}: ${JSON.stringify(n.changes)}`);
    t.true(first![1] && first![0] <= DEFAULT_TIMERS.storage.heartbeatMs + 50, "on soon after the start (primary up, storage quiet)");
    t.false(off![1]);
    const offAfterMs = off![0] - cutAt;
    t.true(offAfterMs >= DEFAULT_TIMERS.primary.suspectMs - DEFAULT_TIMERS.primary.heartbeatMs && offAfterMs <= DEFAULT_TIMERS.primary.suspectMs + 5, `off ${offAfterMs} ms after the cut: the turn the primary turns suspect`);
    t.true(on![1] && on![0] - healAt >= DEFAULT_TIMERS.holdDownMs, `back on ${on![0] - healAt} ms after the heal: only once traffic failed back (hold-down)`);
  }
  t.true(Math.abs(nodes[0].changes[1]![0] - nodes[1].changes[1]![0]) <= 35, "the two ends leave standby within one link tick of each other");
});

test("standby: a one-way cut (a -> b) turns it off on both ends: b hears nothing, a's heartbeats are not echoed", (t) => {
  const cutAt = 1500;
  const nodes = simulate({ ab: (x) => x < cutAt, ba: () => true }, 3000);
  for (const n of nodes) {
    t.false(n.on, `node ${n.core.id.nodeId} is off`);
    const off = n.changes.find(([, on]) => !on)!;
    t.true(off[0] - cutAt <= DEFAULT_TIMERS.primary.suspectMs + DEFAULT_TIMERS.primary.heartbeatMs + 5, `node ${n.core.id.nodeId}: off ${off[0] - cutAt} ms after the cut`);
  }
  t.is(nodes[0].core.paths.primary.reason, "tx");
});

test("standby: data on the ring turns it off in the call that reads it, and on again after a quiet storage heartbeat period", (t) => {
  const nodes = simulate({ ab: () => true, ba: () => true }, 1000);
  const b = nodes[1];
  t.true(b.on);
  // Data that came by storage while the primary is up (a failback's drain): read at 1200.
  const a = nodes[0];
  const bytes = encodeMessage({ kind: MessageKind.Data, path: PathId.Storage, node: 1, session: a.core.id.session, seq: 1n, ack: 0n }, new Uint8Array(8));
  b.core.receive(1200, bytes, 0, bytes.length, PathId.Storage, b.out);
  b.update(1200);
  t.deepEqual(b.changes.at(-1), [1200, false], "off at once");
  b.core.tick(1300, b.out);
  b.update(1300);
  t.false(b.on, "still off within a storage heartbeat period");
  // Heartbeats keep the primary up meanwhile.
  for (let now = 1301; now <= 1500; now++) {
    for (const n of nodes) if (now % 35 === 0) n.core.heartbeat(PathId.Primary, n.out);
    for (const [i, from] of nodes.entries()) {
      for (const m of from.sent.splice(0)) {
        if (m.path !== PathId.Primary) continue;
        const encoded = encodeMessage(m.header, m.payload);
        nodes[1 - i]!.core.receive(now, encoded, 0, encoded.length, m.path, nodes[1 - i]!.out);
      }
    }
    if (now % 5 === 0) b.core.tick(now, b.out), b.update(now);
  }
  t.deepEqual(b.changes.at(-1), [1200 + DEFAULT_TIMERS.storage.heartbeatMs, true], "on again a storage heartbeat period later");
});
