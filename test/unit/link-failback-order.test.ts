// Failback order (lib/link/paths.ts LinkCore): data the sender moves back to the primary must not
// overtake data still travelling through the slower ring. Two cores on a fake clock, a wire with
// 1 ms on the primary and RING_DELAY_MS on storage, a data message every ms (like bench link's
// probe), repeated primary cuts; the receiver's deliveries must be strictly increasing and complete.
// Worst case for the sender's drain: the ring never reports drained (steady traffic keeps it busy),
// so data moves to the primary when failbackDrainMs passes with the ring full. Before the fix this
// reordered ~RING_DELAY_MS messages per failback.
import test from "ava";

import { encodeMessage, PathId, type MessageHeader } from "../../lib/link/message.ts";
import { DEFAULT_TIMERS, HOLD_MAX_MESSAGES, LinkCore, type LinkOutput, type LinkTimers } from "../../lib/link/paths.ts";

const RING_DELAY_MS = 20;

interface InFlight {
  atMs: number;
  bytes: Buffer;
  path: PathId;
}

function node(id: number, peer: number, timers: LinkTimers, wire: InFlight[], now: () => number, storageDelayMs: () => number, delivered: [number, PathId][]) {
  const out: LinkOutput = {
    send: (path: PathId, header: MessageHeader, payload?: Uint8Array) => {
      wire.push({ atMs: now() + (path === PathId.Primary ? 1 : storageDelayMs()), bytes: encodeMessage(header, payload), path });
      return true;
    },
    data: (payload, path) => delivered.push([new DataView(payload.buffer, payload.byteOffset).getUint32(0, true), path]),
    control: () => undefined,
    peerSession: () => undefined,
    controlRoom: () => undefined,
    transition: () => undefined,
    log: () => undefined,
  };
  const core = new LinkCore(timers, { nodeId: id, peerNodeId: peer, session: BigInt(id) << 16n, controlRtoMs: 200 });
  return { core, out };
}

function run(script: { endMs: number; cut: (nowMs: number) => boolean; storageLoss?: (seq: number) => boolean; storageDelayMs?: number; timers?: LinkTimers; ringDrained?: boolean }) {
  const timers = script.timers ?? DEFAULT_TIMERS;
  let now = 0;
  const toB: InFlight[] = [];
  const toA: InFlight[] = [];
  const delivered: [number, PathId][] = [];
  const a = node(1, 2, timers, toB, () => now, () => script.storageDelayMs ?? RING_DELAY_MS, []);
  const b = node(2, 1, timers, toA, () => now, () => script.storageDelayMs ?? RING_DELAY_MS, delivered);
  const payload = new Uint8Array(4);
  const view = new DataView(payload.buffer);
  let sent = 0;
  for (; now < script.endMs; now++) {
    if (now % 25 === 0) a.core.heartbeat(PathId.Primary, a.out), b.core.heartbeat(PathId.Primary, b.out);
    if (now % 100 === 0) a.core.heartbeat(PathId.Storage, a.out), b.core.heartbeat(PathId.Storage, b.out);
    if (now < script.endMs - 1000) {
      view.setUint32(0, sent++, true);
      a.core.sendData(now, payload, script.ringDrained ?? false, a.out);
    }
    if (now % 5 === 0) a.core.tick(now, a.out), b.core.tick(now, b.out);
    for (const [wire, to] of [
      [toB, b],
      [toA, a],
    ] as const) {
      // Each path delivers in its own order (UDP here does not reorder; the ring never does).
      const due = wire.filter((m) => m.atMs <= now);
      for (const m of due) {
        wire.splice(wire.indexOf(m), 1);
        if (m.path === PathId.Primary && script.cut(now)) continue;
        if (m.path === PathId.Storage && script.storageLoss !== undefined && m.bytes[1] === 4 && script.storageLoss(Number(m.bytes.readBigUInt64LE(12)))) continue;
        to.core.receive(now, m.bytes, 0, m.bytes.length, m.path, to.out);
      }
    }
  }
  return { a: a.core, b: b.core, delivered, sent };
}

function reorders(delivered: [number, PathId][]): number {
  let max = -1;
  let n = 0;
  for (const [id] of delivered) {
    if (id < max) n++;
    max = Math.max(max, id);
  }
  return n;
}

test("failback: data moved back to the primary waits for the ring, so 0 messages are reordered over 5 cuts", (t) => {
  const cut = (nowMs: number) => nowMs % 4000 >= 1000 && nowMs % 4000 < 1800;
  const { a, b, delivered, sent } = run({ endMs: 21_000, cut });
  t.is(a.paths.failbacks, 5, "five failovers and failbacks happened");
  t.true(delivered.some(([, path]) => path === PathId.Storage), "data rode the ring");
  t.is(reorders(delivered), 0, "no message delivered after a higher one");
  const ids = delivered.map(([id]) => id);
  t.is(new Set(ids).size, ids.length, "none twice");
  // Probes sent into the cut before failover are lost (the primary was suspect then down); every other one arrives.
  t.true(ids.length > sent - 5 * 200, `${ids.length} of ${sent} delivered`);
  t.true(b.counters.dataHeldForOrder > 0, "primary data was held behind the ring after failback");
  t.is(b.counters.holdsGivenUp, 0, "the ring always caught up: no hold timed out");
});

test("failback: ring data lost in the ring costs one failbackDrainMs hold, then no standing delay", (t) => {
  const cut = (nowMs: number) => nowMs >= 1000 && nowMs < 1800;
  // Failback at ~2800 ms, data on the ring alone until ~3300 (the drain never completes): the ring
  // loses every data message from seq 3200 on, so what the primary copies wait for never comes.
  const { a, b, delivered } = run({ endMs: 8000, cut, storageLoss: (seq) => seq >= 3200 });
  t.is(a.paths.failbacks, 1);
  t.is(b.counters.holdsGivenUp, 1, "one hold gave up after failbackDrainMs");
  t.is(reorders(delivered), 0);
  // After the hold gave up, primary data flows without waiting: the last ~1000 ms all went straight through.
  const late = delivered.filter(([id]) => id > 5000);
  t.true(late.length > 1900 && late.every(([, path]) => path === PathId.Primary), `${late.length} late deliveries, all on the primary`);
});

test("failback: a hold that would pass HOLD_MAX_MESSAGES releases in order and gives up", (t) => {
  const cut = (nowMs: number) => nowMs >= 5000 && nowMs < 5800;
  // A ring slower than the hold bound (and a long failbackDrainMs; the sender is told the ring drained,
  // so it moves at once): more primary messages arrive than may be held.
  const timers = { ...DEFAULT_TIMERS, failbackDrainMs: 10_000 };
  const { a, b, delivered } = run({ endMs: 14_000, cut, storageDelayMs: HOLD_MAX_MESSAGES + 100, timers, ringDrained: true });
  t.is(a.paths.failbacks, 1);
  t.true(b.counters.holdsGivenUp >= 1, `the bound released the held data (${JSON.stringify({ held: b.counters.dataHeldForOrder, gaveUp: b.counters.holdsGivenUp, n: delivered.length })})`);
  const ids = delivered.map(([id]) => id);
  t.is(new Set(ids).size, ids.length, "none twice");
});
