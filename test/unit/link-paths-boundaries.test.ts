// The path state machine at its edges, one node driven by hand with a fake clock: the exact ms a
// path turns suspect and down, rx versus tx (one-way) reasons, echoes that do not advance, our own
// pause at exactly selfPauseMs, failback at exactly holdDownMs, the drain window's last ms, the
// data paths in every active state, and the bound on kept transitions. link-core.test.ts runs two
// simulated nodes under cuts; these pin the thresholds.
import test from "ava";

import { PathId } from "../../lib/link/message.ts";
import { LinkState, MAX_TRANSITIONS, PathMonitor, type LinkTimers, type PathTimers, type Transition } from "../../lib/link/paths.ts";

const PATH: PathTimers = { heartbeatMs: 10, suspectMs: 30, downMs: 60 };
const TIMERS: LinkTimers = {
  primary: PATH,
  storage: { heartbeatMs: 10, suspectMs: 50, downMs: 100 },
  holdDownMs: 200,
  selfPauseMs: 20,
  failbackDrainMs: 40,
};
const STEP_MS = 5;

/** One node, ticked every STEP_MS; each step both directions of the chosen paths are heard. */
class Driver {
  readonly state = new LinkState(TIMERS);
  /** The time of the last tick. */
  now = -STEP_MS;
  private seq = 0n;

  /** Steps from the last tick to `untilMs` (inclusive), hearing the given paths; returns the transitions. */
  run(untilMs: number, primary: boolean, storage: boolean): Transition[] {
    const out: Transition[] = [];
    for (let at = this.now + STEP_MS; at <= untilMs; at += STEP_MS) {
      this.now = at;
      this.seq++;
      if (primary) this.state.primary.heartbeat(at, this.seq, this.seq);
      if (storage) this.state.storage.heartbeat(at, this.seq, this.seq);
      out.push(...this.state.tick(at));
    }
    return out;
  }
}

/** The changes of the active path in `transitions`, as {atMs, to}. */
const actives = (transitions: Transition[]) => transitions.filter((tr) => tr.kind === "active").map((tr) => ({ atMs: tr.atMs, to: tr.to }));

test("path monitor: up below suspectMs of silence, suspect from exactly suspectMs, down from exactly downMs", (t) => {
  const m = new PathMonitor(PathId.Primary, PATH);
  t.is(m.state, "down", "a path starts down");
  t.is(m.reason, "rx", "because nothing was heard");
  t.is(m.name, "primary");
  t.is(new PathMonitor(PathId.Storage, PATH).name, "storage");
  m.heartbeat(0, 1n, 1n);
  t.true(m.evaluate(PATH.suspectMs - 1), "down -> up is a change");
  t.is(m.state, "up");
  t.is(m.reason, "none");
  t.is(m.upSinceMs, PATH.suspectMs - 1, "up since the evaluation that saw it up");
  t.false(m.evaluate(PATH.suspectMs - 1), "no change: false");
  t.true(m.evaluate(PATH.suspectMs));
  t.is(m.state, "suspect");
  t.is(m.reason, "rx");
  t.is(m.upSinceMs, PATH.suspectMs - 1, "suspect keeps the up-since time");
  t.false(m.evaluate(PATH.downMs - 1), "still suspect one ms before downMs");
  t.true(m.evaluate(PATH.downMs));
  t.is(m.state, "down");
  t.is(m.reason, "rx");
  t.true(Number.isNaN(m.upSinceMs), "down clears the up-since time");
  m.heartbeat(PATH.downMs + 5, 2n, 2n);
  t.true(m.evaluate(PATH.downMs + 5));
  t.is(m.state, "up", "straight back up from down");
  t.is(m.upSinceMs, PATH.downMs + 5);
});

test("path monitor: a peer that is heard but does not echo us is a one-way (tx) failure, at the same thresholds", (t) => {
  const m = new PathMonitor(PathId.Primary, PATH);
  m.heartbeat(0, 1n, 1n);
  m.evaluate(0);
  // From now on the peer's heartbeats arrive every 10 ms, but its echo of ours is stuck at 1.
  let now = 0;
  const states: string[] = [];
  for (now = 10; now <= 100; now += 10) {
    m.heartbeat(now, BigInt(now), 1n);
    if (now === 20) m.heartbeat(now, BigInt(now), 0n); // an older echo does not count either
    m.evaluate(now);
    states.push(`${now}:${m.state}/${m.reason}`);
  }
  t.deepEqual(states, ["10:up/none", "20:up/none", "30:suspect/tx", "40:suspect/tx", "50:suspect/tx", "60:down/tx", "70:down/tx", "80:down/tx", "90:down/tx", "100:down/tx"]);
  m.heartbeat(100, 101n, 2n);
  m.evaluate(100);
  t.is(m.state, "up", "the echo advanced: up again");
  t.is(m.lastEchoMs, 100);
});

test("path monitor: a message other than a heartbeat proves rx only", (t) => {
  const m = new PathMonitor(PathId.Storage, PATH);
  m.heartbeat(0, 1n, 1n);
  m.heard(50);
  t.is(m.lastHeardMs, 50);
  t.is(m.lastEchoMs, 0, "heard() does not advance the echo");
  m.evaluate(50);
  t.is(m.state, "suspect");
  t.is(m.reason, "tx", "we hear the peer, it does not echo: tx");
});

test("path monitor: the highest heartbeat heard only grows, and restarts at 0 when the peer restarts", (t) => {
  const m = new PathMonitor(PathId.Primary, PATH);
  m.heartbeat(0, 5n, 0n);
  m.heartbeat(1, 3n, 0n);
  t.is(m.highestHeard, 5n, "a late, lower heartbeat does not lower it");
  m.heartbeat(2, 6n, 0n);
  t.is(m.highestHeard, 6n);
  m.resetPeer();
  t.is(m.highestHeard, 0n);
  m.heartbeat(3, 2n, 0n);
  t.is(m.highestHeard, 2n, "the restarted peer's numbers count from its own start");
});

test("path monitor: a pause moves the last-heard and last-echo times forward, never past now", (t) => {
  const m = new PathMonitor(PathId.Primary, PATH);
  m.heartbeat(100, 1n, 1n);
  m.shift(30, 1000);
  t.is(m.lastHeardMs, 130);
  t.is(m.lastEchoMs, 130);
  m.heartbeat(200, 2n, 1n); // heard after the pause, echo unchanged
  m.shift(500, 250);
  t.is(m.lastHeardMs, 250, "capped at now");
  t.is(m.lastEchoMs, 250, "capped at now");
});

test("link: our own pause counts only when the gap between ticks is longer than selfPauseMs", (t) => {
  const s = new LinkState(TIMERS);
  s.primary.heartbeat(0, 1n, 1n);
  s.storage.heartbeat(0, 1n, 1n);
  s.tick(0);
  t.deepEqual(
    s.tick(TIMERS.selfPauseMs).filter((tr) => tr.kind === "pause"),
    [],
    "a gap of exactly selfPauseMs is not a pause",
  );
  t.is(s.selfPauses, 0);
  const at = 2 * TIMERS.selfPauseMs + 1;
  const pause = s.tick(at).filter((tr) => tr.kind === "pause");
  t.is(pause.length, 1, "selfPauseMs + 1 is");
  t.is(s.selfPauses, 1);
  t.like(pause[0], { atMs: at, kind: "pause", subject: "self", from: "running", to: "running", detail: "event loop paused 21 ms: silence during the pause ignored" });
  t.is(s.primary.lastHeardMs, TIMERS.selfPauseMs + 1, "the silence of the pause was discounted");
  t.is(s.primary.state, "up", "so the primary is still up");
  const long = 2000;
  s.tick(long);
  t.is(s.primary.lastHeardMs, TIMERS.selfPauseMs + 1 + (long - at));
  t.is(s.selfPauses, 2);
  t.is(s.active, "primary", "a long pause of our own is no failover");
  t.is(s.failovers, 0);
});

test("link: the first healthy path is taken at once; after that the primary must stay up holdDownMs, exactly", (t) => {
  const d = new Driver();
  t.is(d.state.active, "isolated");
  t.deepEqual(d.state.dataPaths(0, true), { primary: true, storage: true }, "isolated: offered on both");
  // Storage first: the link starts on storage.
  t.deepEqual(actives(d.run(100, false, true)), [{ atMs: 0, to: "storage" }]);
  t.deepEqual(d.state.dataPaths(d.now, true), { primary: false, storage: true });
  // The primary comes up; failback waits for holdDownMs of it being up.
  const upAt = d.now + STEP_MS;
  const transitions = d.run(upAt + TIMERS.holdDownMs + 50, true, true);
  t.is(d.state.primary.upSinceMs, upAt);
  t.deepEqual(actives(transitions), [{ atMs: upAt + TIMERS.holdDownMs, to: "primary" }], "failback exactly holdDownMs after the primary came up");
  t.is(transitions.find((tr) => tr.kind === "active")?.detail, "primary up, storage up", "both up: no reasons");
  t.is(d.state.failbacks, 1);
  t.is(d.state.failovers, 0, "storage -> primary is not a failover");
});

test("link: a fresh link with the primary up takes it without hold-down, and a suspect primary keeps the traffic", (t) => {
  const d = new Driver();
  t.deepEqual(actives(d.run(300, true, true)), [{ atMs: 0, to: "primary" }]);
  // Primary silent: suspect after suspectMs, still active (data on both), storage after downMs.
  const lastHeard = d.now;
  const log = actives(d.run(lastHeard + 100, false, true));
  t.deepEqual(log, [{ atMs: lastHeard + PATH.downMs, to: "storage" }], "failover when the primary is down, not when suspect");
  t.is(d.state.failovers, 1);
  t.is(d.state.failbacks, 0);
  t.is(d.state.drainUntilMs, Number.NEGATIVE_INFINITY, "no drain after a failover");
});

test("link: data paths while the primary is suspect depend on storage, and the drain ends at its last ms", (t) => {
  const d = new Driver();
  d.run(300, true, true);
  d.run(d.now + PATH.suspectMs, false, true);
  t.is(d.state.primary.state, "suspect");
  t.deepEqual(d.state.dataPaths(d.now, true), { primary: true, storage: true }, "suspect primary, storage up: both");
  const lone = new Driver();
  lone.run(300, true, false);
  lone.run(lone.now + PATH.suspectMs, false, false);
  t.is(lone.state.primary.state, "suspect");
  t.is(lone.state.storage.state, "down");
  t.is(lone.state.active, "primary");
  t.deepEqual(lone.state.dataPaths(lone.now, true), { primary: true, storage: false }, "storage down: primary only");
  // Fail over, then back: the drain window follows the failback.
  d.run(d.now + 100, false, true);
  t.is(d.state.active, "storage");
  const failback = actives(d.run(d.now + TIMERS.holdDownMs + 100, true, true)).find((e) => e.to === "primary")!;
  t.truthy(failback);
  t.is(d.state.drainUntilMs, failback.atMs + TIMERS.failbackDrainMs);
  const end = d.state.drainUntilMs;
  t.deepEqual(d.state.dataPaths(end - 1, false), { primary: false, storage: true }, "last ms of the drain: storage");
  t.deepEqual(d.state.dataPaths(end, false), { primary: true, storage: false }, "drain over: primary");
  t.deepEqual(d.state.dataPaths(end - 1, true), { primary: true, storage: false }, "drained early: primary");
});

test("link: with storage gone, a primary that comes back is taken at once (better than nothing)", (t) => {
  const d = new Driver();
  d.run(300, true, true);
  d.run(d.now + 200, false, false);
  t.is(d.state.active, "isolated");
  t.true(d.state.primary.state === "down" && d.state.storage.state === "down");
  const back = d.now + STEP_MS;
  t.deepEqual(actives(d.run(back + 50, true, false)), [{ atMs: back, to: "primary" }], "no hold-down when storage is down");
  t.is(d.state.failbacks, 0, "isolated -> primary is not a failback");
});

test("link: transitions say what changed, and only the last MAX_TRANSITIONS are kept", (t) => {
  const d = new Driver();
  t.deepEqual(d.run(0, false, false), [], "nothing heard yet: no change");
  const up = d.run(5, true, false);
  t.is(up.length, 2);
  t.like(up[0], { atMs: 5, kind: "path", subject: "primary", from: "down", to: "up", detail: "heartbeats both ways" });
  t.like(up[1], { atMs: 5, kind: "active", subject: "primary", from: "isolated", to: "primary", detail: "primary up, storage down (rx)" });
  const down = d.run(5 + PATH.downMs, false, false);
  t.is(down.length, 3);
  t.like(down[0], { atMs: 5 + PATH.suspectMs, kind: "path", subject: "primary", from: "up", to: "suspect", detail: "reason rx" });
  t.like(down[1], { atMs: 5 + PATH.downMs, kind: "path", subject: "primary", from: "suspect", to: "down", detail: "reason rx" });
  t.like(down[2], { atMs: 5 + PATH.downMs, kind: "active", subject: "isolated", from: "primary", to: "isolated", detail: "primary down (rx), storage down (rx)" });
  t.deepEqual(d.state.transitions, [...up, ...down], "every transition returned is kept, in order");
  t.is(d.state.failovers, 0, "primary -> isolated is not a failover (nothing carries the traffic)");
  // Flap the primary until far more transitions happened than are kept.
  let made = d.state.transitions.length;
  let last: Transition | undefined;
  while (made < 3 * MAX_TRANSITIONS) {
    const more = [...d.run(d.now + STEP_MS, true, false), ...d.run(d.now + PATH.downMs + STEP_MS, false, false)];
    made += more.length;
    last = more.at(-1) ?? last;
  }
  t.is(d.state.transitions.length, MAX_TRANSITIONS);
  t.is(d.state.transitions.at(-1), last, "the newest is kept");
  t.true(d.state.transitions[0]!.atMs > 5 + PATH.downMs, "the oldest were dropped");
});
