// The storage follower's standby verdict (LinkCore.storageStandby, emitted by PeerLink on each tick
// and after ring traffic) for two simulated nodes on a fake clock: on only while the primary is up
// both ways and active and the ring carried only heartbeats for a storage heartbeat period; off at the
// turn the primary turns suspect (a clean cut, a one-way cut: the missing echo), back on once traffic
// fails back and the peer's failback drain is over; data on the ring turns it off in the same call; with
// data flowing both ways through a cut and a heal, no data message on the ring ever finds the reader in
// standby. Simulated time is logic, not timing.
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

/**
 * Two nodes, 1 ms steps, PeerLink's schedule: heartbeats, ticks every 5 ms, the verdict after each
 * tick and after ring traffic. With `dataEveryMs`, each node also sends data that often (its ring never
 * acked: a failback drains for the whole failbackDrainMs), while `dataWhen`; each data message the ring brings to a
 * follower in standby is noted in `standbyReads` (it waited up to pollStandbyMaxMs).
 */
function simulate(script: { ab: (t: number) => boolean; ba: (t: number) => boolean; dataEveryMs?: number; dataWhen?: (t: number) => boolean }, endMs: number) {
  const nodes = [node(1, 2), node(2, 1)] as const;
  const standbyReads: { atMs: number; to: number }[] = [];
  for (let now = 0; now <= endMs; now++) {
    for (const n of nodes) {
      if (now % DEFAULT_TIMERS.primary.heartbeatMs === 0) n.core.heartbeat(PathId.Primary, n.out);
      if (now % DEFAULT_TIMERS.storage.heartbeatMs === 0) n.core.heartbeat(PathId.Storage, n.out);
      if (script.dataEveryMs !== undefined && now % script.dataEveryMs === 0 && (script.dataWhen?.(now) ?? true)) n.core.sendData(now, new Uint8Array(8), false, n.out);
    }
    for (const [i, from] of nodes.entries()) {
      const to = nodes[1 - i]!;
      for (const m of from.sent.splice(0)) {
        if (m.path === PathId.Primary && !(i === 0 ? script.ab(now) : script.ba(now))) continue;
        if (m.path === PathId.Storage && m.header.kind === MessageKind.Data && to.on) standbyReads.push({ atMs: now, to: to.core.id.nodeId });
        const bytes = encodeMessage(m.header, m.payload);
        to.core.receive(now, bytes, 0, bytes.length, m.path, to.out);
        if (m.path === PathId.Storage && to.on) to.update(now);
      }
    }
    if (now % 5 === 0) for (const n of nodes) n.core.tick(now, n.out), n.update(now);
  }
  return Object.assign(nodes, { standbyReads });
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
    const afterDrainMs = DEFAULT_TIMERS.holdDownMs + DEFAULT_TIMERS.failbackDrainMs + DEFAULT_TIMERS.primary.suspectMs;
    t.true(on![1] && on![0] - healAt >= afterDrainMs, `back on ${on![0] - healAt} ms after the heal: only once traffic failed back (hold-down) and the peer's drain is over`);
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

test("standby: with data flowing both ways through a cut and a heal, the ring never brings data to a follower in standby (the peer's failback drain included)", (t) => {
  const cutAt = 2000;
  const healAt = 4000;
  const up = (x: number) => x < cutAt || x >= healAt;
  // Quiet from well into the cut until just after the failback (a ping then): the ring carried only
  // heartbeats for long enough, so the data each end sends in its drain is what could find the other in standby.
  // The two directions heal together, or b -> a two primary heartbeats later (the ends fail back apart).
  for (const skewMs of [0, 2 * DEFAULT_TIMERS.primary.heartbeatMs]) {
    const failbackAt = healAt + skewMs + DEFAULT_TIMERS.holdDownMs;
    const nodes = simulate({ ab: up, ba: (x) => x < cutAt || x >= healAt + skewMs, dataEveryMs: 20, dataWhen: (x) => x < cutAt + 500 || x >= failbackAt + 100 }, 8000);
    for (const n of nodes) t.true(n.core.paths.drainUntilMs > failbackAt + 100, `skew ${skewMs} ms, node ${n.core.id.nodeId}: its drain ran past the first data after the heal`);
    t.deepEqual(nodes.standbyReads, [], `skew ${skewMs} ms: no ring data read at the standby pace`);
    for (const n of nodes) {
      t.is(n.core.paths.failbacks, 1, `skew ${skewMs} ms: node ${n.core.id.nodeId} failed back`);
      t.true(n.on, `skew ${skewMs} ms: node ${n.core.id.nodeId} in standby again at the end`);
    }
  }
});
