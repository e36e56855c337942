// The link's sans-IO core with a fake clock: the message codec, the dedupe window against a model,
// reliable control over a lossy, reordering, duplicating channel, and the path state machine of two
// simulated nodes under cuts, one-way cuts, flapping, pauses and double failures. Simulated time is
// logic, not wall-clock timing: every figure asserted here is exact for the given script.
// Replay a seed: LUNLINK_SEED=<seed> npx ava test/unit/link-core.test.ts
import test from "ava";
import fc from "fast-check";

import { ControlReceiver, ControlSender } from "../../lib/link/control.ts";
import { decodeHeader, encodeMessage, MessageKind, MESSAGE_HEADER_BYTES, PathId } from "../../lib/link/message.ts";
import { DEFAULT_TIMERS, LinkState, type LinkTimers } from "../../lib/link/paths.ts";
import { SequenceWindow, WINDOW_BITS } from "../../lib/link/window.ts";
import { generator, simulationSeeds } from "../helpers/random.ts";

const SEED = Number(process.env.LUNLINK_SEED ?? Date.now() % 2 ** 31);

test("message header round-trips and rejects short, unknown-version, unknown-kind and unknown-path input", (t) => {
  t.log(`fast-check seed ${SEED} (replay: LUNLINK_SEED=${SEED})`);
  fc.assert(
    fc.property(
      fc.constantFrom(MessageKind.Heartbeat, MessageKind.Control, MessageKind.ControlAck, MessageKind.Data),
      fc.constantFrom(PathId.Primary, PathId.Storage),
      fc.integer({ min: 0, max: 255 }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.uint8Array({ maxLength: 200 }),
      (kind, path, node, session, seq, ack, payload) => {
        const bytes = encodeMessage({ kind, path, node, session, seq, ack }, payload);
        const d = decodeHeader(bytes, 0, bytes.length);
        if (!d.ok) return false;
        const same = d.header.kind === kind && d.header.path === path && d.header.node === node && d.header.session === session && d.header.seq === seq && d.header.ack === ack;
        return same && Buffer.compare(bytes.subarray(d.payloadOffset), payload) === 0 && !decodeHeader(bytes, 0, MESSAGE_HEADER_BYTES - 1).ok;
      },
    ),
    { numRuns: 500, seed: SEED },
  );
  const good = encodeMessage({ kind: MessageKind.Data, path: PathId.Primary, node: 1, session: 1n, seq: 1n, ack: 0n });
  const bad = (mutate: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    mutate(b);
    return decodeHeader(b, 0, b.length);
  };
  t.deepEqual(bad((b) => (b[0] = 2)), { ok: false, reason: "version" });
  t.deepEqual(bad((b) => (b[1] = 9)), { ok: false, reason: "kind" });
  t.deepEqual(bad((b) => (b[2] = 7)), { ok: false, reason: "path" });
  t.deepEqual(decodeHeader(good, 0, 10), { ok: false, reason: "short" });
  t.deepEqual(decodeHeader(good, 20, good.length), { ok: false, reason: "short" }, "a length past the buffer is refused");
});

test("dedupe window agrees with a model: new once, duplicate after, old below the window", (t) => {
  t.log(`fast-check seed ${SEED} (replay: LUNLINK_SEED=${SEED})`);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 3 * WINDOW_BITS }), { minLength: 1, maxLength: 400 }), fc.bigInt({ min: 0n, max: 2n ** 60n }), (offsets, base) => {
      const window = new SequenceWindow();
      const seen = new Set<bigint>();
      let highest = 0n;
      for (const o of offsets) {
        const seq = base + BigInt(o);
        const verdict = window.check(seq);
        // The window guarantees the last WINDOW_BITS - 32 below the highest; older is "old".
        const tooOld = seq <= highest && highest - seq >= BigInt(WINDOW_BITS - 32);
        const expected = tooOld ? "old" : seen.has(seq) ? "duplicate" : "new";
        if (verdict !== expected) return false;
        if (verdict === "new") seen.add(seq);
        if (seq > highest) highest = seq;
      }
      return true;
    }),
    { numRuns: 300, seed: SEED },
  );
  const w = new SequenceWindow();
  t.is(w.check(0n), "old", "sequence 0 is never valid");
  t.is(w.check(5n), "new");
  t.is(w.check(5n), "duplicate");
  t.is(w.check(5n + 10n * BigInt(WINDOW_BITS)), "new", "a jump far ahead slides the whole window");
  t.is(w.check(6n), "old");
});

test("control: over a lossy, reordering, duplicating channel every message is delivered once, in order", (t) => {
  for (const seed of simulationSeeds()) {
    t.log(`simulation seed ${seed} (replay: LUNLINK_SEED=${seed})`);
    const random = generator(seed);
    const sender = new ControlSender();
    const receiver = new ControlReceiver();
    const delivered: number[] = [];
    type InFlight = { at: number; kind: "msg" | "ack"; seq: bigint; payload: Uint8Array };
    let flight: InFlight[] = [];
    const total = 2000;
    let next = 0;
    const lossy = (m: InFlight) => {
      if (random() < 0.2) return; // lost
      flight.push({ ...m, at: m.at + Math.floor(random() * 30) }); // reordered by delay
      if (random() < 0.05) flight.push({ ...m, at: m.at + Math.floor(random() * 60) }); // duplicated
    };
    let now = 0;
    for (; now < 600_000 && delivered.length < total; now++) {
      while (next < total && !sender.full && random() < 0.5) {
        const payload = new Uint8Array(4);
        new DataView(payload.buffer).setUint32(0, next++, true);
        const e = sender.submit(payload, now)!;
        lossy({ at: now, kind: "msg", seq: e.seq, payload: e.payload });
      }
      for (const e of sender.due(now, 100)) lossy({ at: now, kind: "msg", seq: e.seq, payload: e.payload });
      const arriving = flight.filter((m) => m.at <= now);
      flight = flight.filter((m) => m.at > now);
      for (const m of arriving) {
        if (m.kind === "ack") sender.acked(m.seq);
        else {
          receiver.receive(m.seq, m.payload, (p) => delivered.push(new DataView(p.buffer, p.byteOffset).getUint32(0, true)));
          lossy({ at: now, kind: "ack", seq: receiver.delivered, payload: new Uint8Array(0) });
        }
      }
    }
    t.is(delivered.length, total, `seed ${seed}: all delivered within the simulated bound`);
    t.true(
      delivered.every((v, i) => v === i),
      `seed ${seed}: in order, no duplicates`,
    );
    t.true(receiver.duplicates > 0 && sender.retransmits > 0, `seed ${seed}: the channel did lose and duplicate (${sender.retransmits} retransmits, ${receiver.duplicates} duplicates)`);
  }
});

// --- path state machine: two simulated nodes, 1 ms steps -----------------------------------------

interface Script {
  /** Is the primary carrying a -> b (resp. b -> a) at time t? */
  primaryAB: (t: number) => boolean;
  primaryBA: (t: number) => boolean;
  storage: (t: number) => boolean;
  /** Node a's event loop is paused during [from, to). */
  pauseA?: [number, number];
  endMs: number;
}

function simulatePaths(script: Script, timers: LinkTimers = DEFAULT_TIMERS) {
  const nodes = [new LinkState(timers), new LinkState(timers)];
  const hb = [
    [0n, 0n],
    [0n, 0n],
  ];
  type Msg = { at: number; to: number; path: PathId; seq: bigint; echo: bigint };
  let flight: Msg[] = [];
  const activeLog: { t: number; node: number; active: string }[] = [];
  const delay = [1, 3]; // primary 1 ms, storage 3 ms one way
  for (let now = 0; now <= script.endMs; now++) {
    for (const n of [0, 1]) {
      const paused = n === 0 && script.pauseA !== undefined && now >= script.pauseA[0] && now < script.pauseA[1];
      if (paused) continue;
      const node = nodes[n]!;
      for (const path of [PathId.Primary, PathId.Storage]) {
        const period = path === PathId.Primary ? timers.primary.heartbeatMs : timers.storage.heartbeatMs;
        if (now % period !== 0) continue;
        const seq = ++hb[n]![path]!;
        const carried = path === PathId.Storage ? script.storage(now) : n === 0 ? script.primaryAB(now) : script.primaryBA(now);
        if (carried) flight.push({ at: now + delay[path]!, to: 1 - n, path, seq, echo: node.path(path).highestHeard });
      }
    }
    const arriving = flight.filter((m) => m.at <= now);
    flight = flight.filter((m) => m.at > now);
    for (const m of arriving) {
      const paused = m.to === 0 && script.pauseA !== undefined && now >= script.pauseA[0] && now < script.pauseA[1];
      if (paused) {
        flight.push({ ...m, at: script.pauseA![1] }); // queued in the socket until the loop runs
        continue;
      }
      nodes[m.to]!.path(m.path).heartbeat(now, m.seq, m.echo);
    }
    if (now % 5 === 0) {
      for (const n of [0, 1]) {
        const paused = n === 0 && script.pauseA !== undefined && now >= script.pauseA[0] && now < script.pauseA[1];
        if (paused) continue;
        for (const tr of nodes[n]!.tick(now)) if (tr.kind === "active") activeLog.push({ t: now, node: n, active: tr.to });
      }
    }
  }
  return { nodes, activeLog };
}

const always = () => true;

test("paths: a clean cut of the primary fails both nodes over within downMs + one heartbeat, failback after hold-down", (t) => {
  const cutAt = 2000;
  const healAt = 4000;
  const { nodes, activeLog } = simulatePaths({ primaryAB: (x) => x < cutAt || x >= healAt, primaryBA: (x) => x < cutAt || x >= healAt, storage: always, endMs: 7000 });
  for (const n of [0, 1]) {
    const log = activeLog.filter((e) => e.node === n);
    const failover = log.find((e) => e.active === "storage")!;
    t.truthy(failover, `node ${n} failed over`);
    t.true(failover.t - cutAt <= DEFAULT_TIMERS.primary.downMs + DEFAULT_TIMERS.primary.heartbeatMs + 5, `node ${n}: failover ${failover.t - cutAt} ms after the cut`);
    t.true(failover.t - cutAt <= 300, "within the 300 ms target");
    const failback = log.find((e) => e.active === "primary" && e.t > cutAt)!;
    t.truthy(failback, `node ${n} failed back`);
    t.true(failback.t - healAt >= DEFAULT_TIMERS.holdDownMs, `node ${n}: failback ${failback.t - healAt} ms after the heal (hold-down ${DEFAULT_TIMERS.holdDownMs})`);
    t.is(nodes[n]!.failovers, 1);
    t.is(nodes[n]!.failbacks, 1);
  }
});

test("paths: a one-way cut (a -> b only) is a failure on both nodes: b hears nothing, a's heartbeats are not echoed", (t) => {
  const cutAt = 1500;
  const { nodes } = simulatePaths({ primaryAB: (x) => x < cutAt, primaryBA: always, storage: always, endMs: 3000 });
  t.is(nodes[0]!.active, "storage");
  t.is(nodes[0]!.primary.reason, "tx", "a: its heartbeats are not echoed");
  t.is(nodes[1]!.active, "storage");
  t.is(nodes[1]!.primary.reason, "rx", "b: hears nothing");
});

test("paths: under a seeded flapping primary every failback follows holdDownMs of continuous health, and the link ends on the primary", (t) => {
  for (const seed of simulationSeeds()) {
    const random = generator(seed);
    // Up/down periods of 20..400 ms from t=1000 to 9000, then healthy.
    const edges: number[] = [];
    for (let x = 1000; x < 9000; x += 20 + Math.floor(random() * 380)) edges.push(x);
    const up = (x: number) => x < 1000 || x >= 9000 || edges.filter((e) => e <= x).length % 2 === 0;
    const { nodes } = simulatePaths({ primaryAB: up, primaryBA: up, storage: always, endMs: 12_000 });
    for (const n of [0, 1]) {
      const log = nodes[n]!.transitions;
      const failbacks = log.filter((e) => e.kind === "active" && e.from === "storage" && e.to === "primary");
      t.true(failbacks.length >= 1, `seed ${seed} node ${n}: failed back at least once`);
      for (const fb of failbacks) {
        const lastUp = log.filter((e) => e.kind === "path" && e.subject === "primary" && e.to === "up" && e.atMs <= fb.atMs).at(-1)!;
        t.true(fb.atMs - lastUp.atMs >= DEFAULT_TIMERS.holdDownMs, `seed ${seed} node ${n}: failback at ${fb.atMs} only ${fb.atMs - lastUp.atMs} ms after the primary came up`);
      }
      const downs = log.filter((e) => e.kind === "path" && e.subject === "primary" && e.to === "down").length;
      t.true(nodes[n]!.failovers <= downs, `seed ${seed} node ${n}: a failover needs a primary-down (${nodes[n]!.failovers} failovers, ${downs} downs)`);
      t.is(nodes[n]!.active, "primary", `seed ${seed} node ${n}: back on the primary once it is stable`);
    }
  }
});

test("paths: our own 600 ms pause is not the peer's silence (no failover), and both paths down is isolated", (t) => {
  const paused = simulatePaths({ primaryAB: always, primaryBA: always, storage: always, pauseA: [2000, 2600], endMs: 4000 });
  t.is(paused.nodes[0]!.failovers, 0, "node a: no failover after its own pause");
  t.true(paused.nodes[0]!.selfPauses >= 1, "the pause was noticed");
  const cut = 1500;
  const both = simulatePaths({ primaryAB: (x) => x < cut, primaryBA: (x) => x < cut, storage: (x) => x < cut, endMs: 5000 });
  t.is(both.nodes[0]!.active, "isolated");
  t.is(both.nodes[1]!.active, "isolated");
  t.deepEqual(
    both.activeLog.filter((e) => e.node === 0).map((e) => e.active),
    ["primary", "storage", "isolated"],
    "primary, then storage while it still looked alive, then isolated",
  );
});

test("paths: data goes on both paths while the primary is suspect, and stays on storage after failback until drained", (t) => {
  const s = new LinkState(DEFAULT_TIMERS);
  let now = 0;
  const beat = (primary: boolean) => {
    if (primary) s.primary.heartbeat(now, BigInt(now + 1), BigInt(now + 1));
    s.storage.heartbeat(now, BigInt(now + 1), BigInt(now + 1));
  };
  for (; now < 500; now += 5) {
    beat(true);
    s.tick(now);
  }
  t.is(s.active, "primary");
  t.deepEqual(s.dataPaths(now, true), { primary: true, storage: false });
  for (; now < 590; now += 5) {
    beat(false);
    s.tick(now);
  }
  t.is(s.primary.state, "suspect");
  t.deepEqual(s.dataPaths(now, true), { primary: true, storage: true }, "suspect: both");
  for (; now < 800; now += 5) {
    beat(false);
    s.tick(now);
  }
  t.is(s.active, "storage");
  for (; now < 2000; now += 5) {
    beat(true);
    s.tick(now);
  }
  t.is(s.active, "primary");
  t.deepEqual(s.dataPaths(now, false), { primary: false, storage: true }, "ring not drained: still storage");
  t.deepEqual(s.dataPaths(now, true), { primary: true, storage: false }, "drained: primary");
  t.deepEqual(s.dataPaths(now + DEFAULT_TIMERS.failbackDrainMs, false), { primary: true, storage: false }, "drain time passed: primary");
});

test("control: after the peer restarts, the unacked messages are renumbered from 1 and a fresh receiver takes them in order", (t) => {
  const sender = new ControlSender();
  for (let i = 0; i < 5; i++) sender.submit(Uint8Array.of(i), 0);
  t.is(sender.acked(2n), 2, "the old peer acked two");
  sender.restart();
  const resent = sender.due(1, 100);
  t.deepEqual(resent.map((e) => e.seq), [1n, 2n, 3n], "renumbered and due at once");
  const receiver = new ControlReceiver();
  const got: number[] = [];
  for (const e of resent) receiver.receive(e.seq, e.payload, (p) => got.push(p[0]!));
  t.deepEqual(got, [2, 3, 4]);
  const next = sender.submit(Uint8Array.of(9), 2)!;
  t.is(next.seq, 4n, "new messages continue the new numbering");
});
