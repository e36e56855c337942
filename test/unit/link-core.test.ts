// The link's sans-IO core with a fake clock: the message codec, the dedupe window against a model,
// reliable control over a lossy, reordering, duplicating channel, the path state machine of two
// simulated nodes under cuts, one-way cuts, flapping, pauses and double failures, and LinkCore (the
// protocol: sessions and restarts, path choice, control acks, sealed-input rules) end to end. Simulated time is
// logic, not wall-clock timing: every figure asserted here is exact for the given script.
// Replay a seed: LUNLINK_SEED=<seed> npx ava test/unit/link-core.test.ts
import test from "ava";
import fc from "fast-check";

import { ControlReceiver, ControlSender } from "../../lib/link/control.ts";
import { decodeHeader, encodeMessage, MessageKind, MESSAGE_HEADER_BYTES, PathId, type MessageHeader } from "../../lib/link/message.ts";
import { DEFAULT_TIMERS, LinkCore, LinkState, type LinkOutput, type LinkTimers, type Transition } from "../../lib/link/paths.ts";
import { SequenceWindow, WINDOW_BITS } from "../../lib/link/window.ts";
import { generator, logSeed, SEED, simulationSeeds } from "../helpers/random.ts";


test("message header round-trips and rejects short, unknown-version, unknown-kind and unknown-path input", (t) => {
  logSeed(t);
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
  logSeed(t);
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
    logSeed(t, "simulation", seed);
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
  // Silent half way between suspectMs and downMs.
  const { suspectMs, downMs } = DEFAULT_TIMERS.primary;
  for (; now < 500 + (suspectMs + downMs) / 2; now += 5) {
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

// --- LinkCore: the whole protocol sans-IO (sessions, path choice, control, dedupe) -------------------

interface Sent {
  path: PathId;
  header: MessageHeader;
  payload: Uint8Array | undefined;
}

/** A LinkOutput that records everything; `takes(path)` says whether a path accepts a send now. */
function recorder(takes: (path: PathId) => boolean = () => true) {
  const r = {
    sent: [] as Sent[],
    data: [] as [number, PathId][],
    control: [] as number[],
    sessions: [] as [bigint, boolean][],
    rooms: 0,
    logs: [] as string[],
    transitions: [] as Transition[],
  };
  const out: LinkOutput = {
    send: (path, header, payload) => {
      if (!takes(path)) return false;
      r.sent.push({ path, header: { ...header }, payload: payload?.slice() });
      return true;
    },
    data: (payload, path) => r.data.push([new DataView(payload.buffer, payload.byteOffset).getUint32(0, true), path]),
    control: (payload) => r.control.push(new DataView(payload.buffer, payload.byteOffset).getUint32(0, true)),
    peerSession: (session, restarted) => r.sessions.push([session, restarted]),
    controlRoom: () => r.rooms++,
    transition: (t) => r.transitions.push(t),
    log: (event) => r.logs.push(event),
  };
  return { r, out };
}

const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};

function deliver(core: LinkCore, now: number, m: Sent, out: LinkOutput): void {
  const bytes = encodeMessage(m.header, m.payload);
  core.receive(now, bytes, 0, bytes.length, m.path, out);
}

test("core: two nodes through a storage outage (ring down) and a primary cut: control once and in order, data never twice", (t) => {
  for (const seed of simulationSeeds()) {
    const random = generator(seed);
    // The local storage path is down (recovering) once on the primary, once during the primary's cut (isolated).
    const storageDown = (now: number) => (now >= 1000 && now < 2500) || (now >= 4800 && now < 6800);
    const primaryCut = (now: number) => now >= 4000 && now < 7500;
    const takes = (now: () => number) => (path: PathId) => (path === PathId.Storage ? !storageDown(now()) : true);
    let now = 0;
    const clock = () => now;
    const a = new LinkCore(DEFAULT_TIMERS, { nodeId: 1, peerNodeId: 2, session: 10n << 16n, controlRtoMs: 200 });
    const b = new LinkCore(DEFAULT_TIMERS, { nodeId: 2, peerNodeId: 1, session: 20n << 16n, controlRtoMs: 200 });
    const ra = recorder(takes(clock));
    const rb = recorder(takes(clock));
    const waiting: number[] = [];
    let nextControl = 0;
    let nextData = 0;
    // 12 s after the restore: failback needs holdDownMs of unbroken primary health, and the 5% loss
    // below sometimes breaks it (3 heartbeats in a row), so a short tail would fail some seeds.
    for (; now < 20_000; now++) {
      if (now % 25 === 0) a.heartbeat(PathId.Primary, ra.out), b.heartbeat(PathId.Primary, rb.out);
      if (now % 100 === 0) a.heartbeat(PathId.Storage, ra.out), b.heartbeat(PathId.Storage, rb.out);
      if (now < 8000 && now % 10 === 0) {
        waiting.push(nextControl++);
        while (waiting.length > 0 && a.submitControl(now, u32(waiting[0]!), ra.out)) waiting.shift();
        a.sendData(now, u32(nextData++), true, ra.out);
      }
      if (now % 5 === 0) a.tick(now, ra.out), b.tick(now, rb.out);
      // The wire: the primary carries unless cut (some loss), storage always delivers what it took.
      for (const [from, to, out] of [
        [ra.r, b, rb.out],
        [rb.r, a, ra.out],
      ] as const) {
        for (const m of from.sent.splice(0)) {
          if (m.path === PathId.Primary && (primaryCut(now) || random() < 0.05)) continue;
          deliver(to, now, m, out);
        }
      }
      while (waiting.length > 0 && a.submitControl(now, u32(waiting[0]!), ra.out)) waiting.shift();
    }
    t.deepEqual(rb.r.control, Array.from({ length: nextControl }, (_, i) => i), `seed ${seed}: every control message once, in order`);
    const ids = rb.r.data.map(([id]) => id);
    t.is(new Set(ids).size, ids.length, `seed ${seed}: no data delivered twice`);
    t.true(a.counters.dataDroppedStorage > 0, `seed ${seed}: data offered to the storage path while it was down was dropped and counted`);
    t.true(rb.r.data.some(([, path]) => path === PathId.Storage), `seed ${seed}: data rode storage during the cut`);
    t.true(a.paths.failovers >= 1 && a.paths.failbacks >= 1, `seed ${seed}: failed over and back`);
    t.true(a.paths.transitions.some((x) => x.kind === "active" && x.to === "isolated" && x.atMs > 5000), `seed ${seed}: isolated while both were down`);
    t.deepEqual(rb.r.sessions, [[10n << 16n, false]], "b adopted a's session once, no restart");
  }
});

test("core: a restarted peer (higher session) resets dedupe and control numbering; its older session is dropped", (t) => {
  const b = new LinkCore(DEFAULT_TIMERS, { nodeId: 2, peerNodeId: 1, session: 5n, controlRtoMs: 200 });
  const { r, out } = recorder();
  const msg = (session: bigint, kind: MessageKind, seq: bigint, payload?: Uint8Array): Sent => ({ path: PathId.Primary, header: { kind, path: PathId.Primary, node: 1, session, seq, ack: 0n }, payload });
  deliver(b, 0, msg(100n, MessageKind.Control, 1n, u32(1)), out);
  deliver(b, 1, msg(100n, MessageKind.Data, 7n, u32(70)), out);
  deliver(b, 2, msg(100n, MessageKind.Data, 7n, u32(70)), out);
  t.is(b.counters.dataDuplicates, 1);
  // b has an unacked control message of its own when the peer restarts.
  t.true(b.submitControl(3, u32(900), out));
  t.true(b.submitControl(3, u32(901), out));
  deliver(b, 10, msg(200n, MessageKind.Control, 1n, u32(2)), out); // restarted: numbering from 1 again
  deliver(b, 11, msg(200n, MessageKind.Data, 7n, u32(71)), out); // same seq, new session: new
  deliver(b, 12, msg(100n, MessageKind.Data, 8n, u32(80)), out); // the old session's leftover
  t.deepEqual(r.control, [1, 2], "the restarted peer's control seq 1 is delivered");
  t.deepEqual(r.data.map(([id]) => id), [70, 71]);
  t.is(b.counters.staleSession, 1);
  t.is(b.counters.peerRestarts, 1);
  t.deepEqual(r.sessions, [[100n, false], [200n, true]], "binding actions: first adoption, then a restart");
  // b's unacked messages were renumbered from 1 and go out again at the next tick.
  r.sent.length = 0;
  b.tick(1000, out);
  t.deepEqual(r.sent.filter((m) => m.header.kind === MessageKind.Control && m.path === PathId.Primary).map((m) => m.header.seq), [1n, 2n]);
});

test("core: control is acked on the path it came by and sent on the active path (both while isolated); acks make room", (t) => {
  const b = new LinkCore(DEFAULT_TIMERS, { nodeId: 2, peerNodeId: 1, session: 5n, controlRtoMs: 200 });
  const { r, out } = recorder();
  deliver(b, 0, { path: PathId.Storage, header: { kind: MessageKind.Control, path: PathId.Storage, node: 1, session: 9n, seq: 1n, ack: 0n }, payload: u32(1) }, out);
  const acks = r.sent.filter((m) => m.header.kind === MessageKind.ControlAck);
  t.deepEqual(acks.map((m) => [m.path, m.header.ack]), [[PathId.Storage, 1n]], "acked on storage, where it came from");
  r.sent.length = 0;
  t.is(b.paths.active, "isolated");
  b.submitControl(1, u32(5), out);
  t.deepEqual(r.sent.map((m) => m.path).sort(), [PathId.Primary, PathId.Storage], "isolated: offered on both paths");
  let released = 0;
  for (let i = 0; i < 300; i++) if (!b.submitControl(2, u32(i), out)) released++;
  t.true(released > 0 && b.controlOut.full, "the window bounds what is in flight");
  deliver(b, 3, { path: PathId.Primary, header: { kind: MessageKind.ControlAck, path: PathId.Primary, node: 1, session: 9n, seq: 0n, ack: 10n }, payload: undefined }, out);
  t.is(r.rooms, 1, "an ack that released messages says so once");
});

test("core: sealed datagrams: unbound data and control are dropped, heartbeats taken; refusals counted each time, logged once a second", (t) => {
  const b = new LinkCore(DEFAULT_TIMERS, { nodeId: 2, peerNodeId: 1, session: 5n, controlRtoMs: 200 });
  const { r, out } = recorder();
  const sealed = (kind: MessageKind, bound: boolean) => ({ ok: true as const, bound, message: encodeMessage({ kind, path: PathId.Primary, node: 1, session: 9n, seq: 1n, ack: 0n }, u32(3)) });
  b.receiveSealed(0, sealed(MessageKind.Data, false), "x", out);
  b.receiveSealed(0, sealed(MessageKind.Control, false), "x", out);
  b.receiveSealed(0, sealed(MessageKind.Heartbeat, false), "x", out);
  t.is(b.refused.unbound, 2);
  t.is(b.counters.received.primary, 1, "the heartbeat counted as heard");
  b.receiveSealed(1, sealed(MessageKind.Data, true), "x", out);
  t.deepEqual(r.data.map(([id]) => id), [3]);
  for (let now = 0; now < 2500; now += 100) b.receiveSealed(now, { ok: false, reason: "auth" }, "198.18.1.1:7410", out);
  b.receiveSealed(0, { ok: false, reason: "version" }, "x", out);
  b.receiveSealed(0, { ok: false, reason: "replay" }, "x", out);
  t.is(b.refused.authFailures, 25);
  t.is(b.refused.downgrades, 1);
  t.is(b.refused.replays, 1);
  t.is(r.logs.filter((e) => e === "udp-refused").length, 3 + 2, "auth logged at 0, 1000 and 2000 ms; the others once each");
});
