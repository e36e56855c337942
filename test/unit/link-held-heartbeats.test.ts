// Heartbeats held by the UDP receive thread (addon/udp.cc, lib/link/udp-path.ts) reach the link core
// late, at the clock's next turn, with the time they arrived. With a fake clock: a path's last-heard
// and last-echo times never move back when such a heartbeat comes after a message read at once, and
// two simulated nodes whose heartbeats are held until each turn fail over and back at exactly the
// times they do when every heartbeat is read on arrival (the failover bound is unchanged).
import test from "ava";

import { PathId } from "../../lib/link/message.ts";
import { DEFAULT_TIMERS, LinkState, PathMonitor } from "../../lib/link/paths.ts";

test("a heartbeat handed over late with its earlier arrival time does not move last-heard or last-echo back", (t) => {
  const p = new PathMonitor(PathId.Primary, DEFAULT_TIMERS.primary);
  p.heartbeat(1000, 1n, 1n); // read at once: heard and echoed at 1000
  p.heard(1100); // a data datagram read at once at 1100
  p.heartbeat(1090, 2n, 2n); // a heartbeat that arrived at 1090, held until the clock's turn
  t.is(p.lastHeardMs, 1100, "last heard stays at the data datagram's 1100");
  t.is(p.lastEchoMs, 1090, "the echo advanced when the held heartbeat arrived");
  p.heartbeat(1130, 3n, 4n);
  p.heartbeat(1120, 4n, 5n); // echoes are per heartbeat number; times keep the latest
  t.is(p.lastEchoMs, 1130);
  t.is(p.highestHeard, 4n);
  // Data read at once proves rx: 95 ms after it the path is not silent on rx (it was 105 ms since 1090).
  const q = new PathMonitor(PathId.Primary, DEFAULT_TIMERS.primary);
  q.heartbeat(1000, 1n, 1n);
  q.heard(1100);
  q.heartbeat(1090, 2n, 1n); // held; echoes nothing new
  q.evaluate(1195);
  t.is(q.reason, "tx", "heard 95 ms ago (data), our echo 195 ms old: one-way, not silence");
});

interface Arrival {
  at: number;
  to: number;
  path: PathId;
  seq: bigint;
  echo: bigint;
}

/**
 * Two nodes, each with one clock turn every 35 ms (phases 0 and 17 ms) that sends a heartbeat on both
 * paths (with its echo) and ticks; primary heartbeats take 1 ms, storage ones 20 ms; the primary is
 * cut both ways in [cutAt, healAt). `held`: a node reads heartbeats only at its turn, before sending
 * and ticking (drainHeld), with their arrival times; otherwise it reads each as it arrives.
 */
function simulate(held: boolean, cutAt: number, healAt: number, endMs: number): { t: number; node: number; active: string }[] {
  const nodes = [new LinkState(DEFAULT_TIMERS), new LinkState(DEFAULT_TIMERS)];
  const phase = [0, 17];
  const seq = [
    [0n, 0n],
    [0n, 0n],
  ];
  let flight: Arrival[] = [];
  const queued: Arrival[][] = [[], []];
  const log: { t: number; node: number; active: string }[] = [];
  const apply = (m: Arrival) => nodes[m.to]!.path(m.path).heartbeat(m.at, m.seq, m.echo);
  for (let now = 0; now <= endMs; now++) {
    const arriving = flight.filter((m) => m.at <= now);
    flight = flight.filter((m) => m.at > now);
    for (const m of arriving) {
      if (held && m.path === PathId.Primary) queued[m.to]!.push(m);
      else apply(m);
    }
    for (const n of [0, 1]) {
      if (now % 35 !== phase[n]) continue;
      for (const m of queued[n]!.splice(0)) apply(m);
      const node = nodes[n]!;
      for (const path of [PathId.Primary, PathId.Storage]) {
        const s = ++seq[n]![path]!;
        const cut = path === PathId.Primary && now >= cutAt && now < healAt;
        if (!cut) flight.push({ at: now + (path === PathId.Primary ? 1 : 20), to: 1 - n, path, seq: s, echo: node.path(path).highestHeard });
      }
      for (const tr of node.tick(now)) if (tr.kind === "active") log.push({ t: now, node: n, active: tr.to });
    }
  }
  return log;
}

test("held heartbeats read at each clock turn with their arrival times give the same failover and failback as reading each on arrival", (t) => {
  for (const [cutAt, healAt] of [
    [2000, 4000],
    [2010, 3517],
    [2034, 5001],
  ] as const) {
    const atOnce = simulate(false, cutAt, healAt, healAt + 2500);
    const heldLog = simulate(true, cutAt, healAt, healAt + 2500);
    t.deepEqual(heldLog, atOnce, `cut ${cutAt}..${healAt}`);
    for (const n of [0, 1]) {
      const failover = heldLog.find((e) => e.node === n && e.active === "storage" && e.t >= cutAt);
      t.truthy(failover, `node ${n} failed over`);
      t.true(failover!.t - cutAt <= DEFAULT_TIMERS.primary.suspectMs + 2 * 35, `node ${n}: failover ${failover!.t - cutAt} ms after the cut`);
      t.truthy(heldLog.find((e) => e.node === n && e.active === "primary" && e.t >= healAt + DEFAULT_TIMERS.holdDownMs), `node ${n} failed back after hold-down`);
    }
  }
});
