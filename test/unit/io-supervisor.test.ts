// Storage supervision: the decision table (SupervisorCore) with a fake clock and seeded jitter, and
// the async shell (Supervisor) around fake components and a fake volume that stalls and recovers.
// Asserted: which faults are retried and how (stall -> wait for recover; EIO/ENOSPC/short/gone ->
// bounded jittered backoff; not owner/wrong pair/wrong key -> failed, never retried), one state
// change per change (not per retry), counters and outage times.
// Replay a seed: LUNLINK_SEED=<seed> npx ava test/unit/supervisor.test.ts
import { EventEmitter } from "node:events";
import test from "ava";
import fc from "fast-check";

import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import type { Volume } from "../../lib/io/volume.ts";
import { classifyFault, Supervisor, SupervisorCore, type Incarnation, type StateChange } from "../../lib/io/supervisor.ts";
import { generator } from "../helpers/random.ts";

const SEED = Number(process.env.LUNLINK_SEED ?? Date.now() % 2 ** 31);
const err = (code: ErrorCode) => new LunlinkError(code, `test: ${code}`);

test("faults are classified: stall, I/O (retried), configuration (never retried)", (t) => {
  for (const code of [ErrorCode.IoError, ErrorCode.NoSpace, ErrorCode.ShortIo, ErrorCode.NotFound, ErrorCode.System, ErrorCode.Busy]) t.is(classifyFault(err(code), false), "io", code);
  t.is(classifyFault(new Error("plain"), false), "io");
  t.is(classifyFault(err(ErrorCode.IoStalled), false), "stall");
  t.is(classifyFault(err(ErrorCode.IoError), true), "stall", "an EIO while another request is parked: the device is stalled");
  for (const code of [ErrorCode.NotOwner, ErrorCode.WrongPair, ErrorCode.WrongKey, ErrorCode.Downgrade, ErrorCode.KeyRequired]) {
    t.is(classifyFault(err(code), false), "config", code);
    t.is(classifyFault(err(code), true), "config", `${code} even while stalled`);
  }
});

test("an EIO burst: retrying with doubling, jittered, bounded delays; one change down, one up, with the outage", (t) => {
  const core = new SupervisorCore("send", 0, { backoffMinMs: 100, backoffMaxMs: 1000, backoffJitter: 0.5 }, generator(SEED));
  t.is(core.opened(0)?.to, "up");
  const changes: StateChange[] = [];
  const delays: number[] = [];
  let now = 1000;
  let step = core.failed(now, err(ErrorCode.IoError), false);
  if (step.change) changes.push(step.change);
  for (let i = 0; i < 8; i++) {
    t.is(step.next.kind, "reopen");
    const delay = step.next.kind === "reopen" ? step.next.delayMs : -1;
    delays.push(delay);
    now += delay;
    step = core.failed(now, err(i % 2 === 0 ? ErrorCode.IoError : ErrorCode.NoSpace), false);
    if (step.change) changes.push(step.change);
  }
  const up = core.opened(now + 5)!;
  changes.push(up);
  t.deepEqual(changes.map((c) => `${c.from}->${c.to}`), ["up->retrying", "retrying->up"], "retries change nothing");
  t.is(changes[0]!.fault?.code, ErrorCode.IoError);
  t.is(up.outageMs, now + 5 - 1000);
  t.deepEqual(core.counters, { faults: 1, recoveries: 1, failedAttempts: 8 });
  delays.forEach((d, i) => {
    const base = Math.min(1000, 100 * 2 ** i);
    t.true(d <= base && d >= base / 2, `attempt ${i + 1}: ${d} ms within [${base / 2}, ${base}] (seed ${SEED})`);
  });
  t.true(delays.at(-1)! <= 1000, "bounded by backoffMaxMs");
});

test("backoff stays within [min*(1-jitter), max] for any attempt and options", (t) => {
  t.log(`fast-check seed ${SEED} (replay: LUNLINK_SEED=${SEED})`);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 100_000 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 2 ** 31 }), (min, extra, jitter, attempt, seed) => {
      const core = new SupervisorCore("x", 0, { backoffMinMs: min, backoffMaxMs: min + extra, backoffJitter: jitter }, generator(seed));
      const d = core.backoffMs(attempt);
      const base = Math.min(min + extra, min * 2 ** Math.min(30, attempt - 1));
      return d <= base && d >= Math.floor(base * (1 - jitter)) && d <= min + extra;
    }),
    { numRuns: 500, seed: SEED },
  );
  t.throws(() => new SupervisorCore("x", 0, { backoffMinMs: 500, backoffMaxMs: 100 }), { message: /backoffMaxMs/ });
  t.throws(() => new SupervisorCore("x", 0, { backoffJitter: 2 }), { message: /backoffJitter/ });
});

test("a stall waits for the device (no timer retries), then reopens at once; a stall during a retry is a change", (t) => {
  const core = new SupervisorCore("receive", 0, {}, () => 0);
  core.opened(0);
  const a = core.failed(100, err(ErrorCode.IoStalled), true);
  t.deepEqual(a.next, { kind: "recover" });
  t.is(a.change?.to, "stalled");
  t.is(core.failed(200, err(ErrorCode.IoStalled), true).change, undefined, "still stalled: no new change");
  t.is(core.recovered(60_000)?.to, "retrying", "the device answered: reopen");
  const b = core.failed(60_010, err(ErrorCode.IoError), false);
  t.is(b.change, undefined, "retrying after the stall: same state");
  t.deepEqual(b.next, { kind: "reopen", delayMs: 200 }, "attempts counted from the recovery: the first delay");
  const c = core.failed(60_300, err(ErrorCode.IoStalled), true);
  t.is(c.change?.to, "stalled", "stalled again");
  core.recovered(61_000);
  t.is(core.opened(61_100)?.outageMs, 61_000);
  t.deepEqual(core.counters, { faults: 1, recoveries: 1, failedAttempts: 3 });
});

test("configuration faults are reported once and never retried; the volume handle is reopened after repeated faults or a vanished device", (t) => {
  const core = new SupervisorCore("send", 0, { reopenVolumeAfter: 3 }, () => 0);
  core.opened(0);
  const s = core.failed(10, err(ErrorCode.NotOwner), false);
  t.deepEqual(s.next, { kind: "stop" });
  t.is(s.change?.to, "failed");
  t.is(s.change?.fault?.kind, "config");

  const r = new SupervisorCore("send", 0, { reopenVolumeAfter: 3 }, () => 0);
  r.opened(0);
  r.failed(1, err(ErrorCode.IoError), false);
  t.false(r.reopenVolume, "first retry: same handle");
  r.failed(2, err(ErrorCode.IoError), false);
  t.false(r.reopenVolume);
  r.failed(3, err(ErrorCode.IoError), false);
  t.true(r.reopenVolume, "third failed attempt: a fresh handle");
  const g = new SupervisorCore("send", 0, {}, () => 0);
  g.opened(0);
  g.failed(1, err(ErrorCode.NotFound), false);
  t.true(g.reopenVolume, "the device went away: open it again by path");
});

// --- the async shell ----------------------------------------------------------------------------

class FakeVolume extends EventEmitter {
  stalled = false;
}

/** A component whose life the test ends with `fail(error)`. */
function component() {
  let fail!: (e: Error) => void;
  const failed = new Promise<Error | undefined>((resolve) => (fail = resolve));
  let closed = 0;
  const incarnation: Incarnation = { failed, close: async () => void closed++ };
  return { incarnation, fail, closed: () => closed };
}

async function until(what: string, check: () => boolean, limitMs = 5000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not ${what} within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test("shell: EIO, then a stall, then a configuration fault: reopened each time, states and counters follow", async (t) => {
  const volume = new FakeVolume();
  const script: (Error | undefined)[] = [err(ErrorCode.IoError), err(ErrorCode.NoSpace), undefined, err(ErrorCode.IoStalled), undefined];
  const lives: ReturnType<typeof component>[] = [];
  let attempts = 0;
  const reopenFlags: boolean[] = [];
  const sup = new Supervisor(
    "send",
    () => volume as unknown as Volume,
    async (reopenVolume) => {
      attempts++;
      reopenFlags.push(reopenVolume);
      const outcome = script.shift();
      if (outcome !== undefined) throw outcome;
      const c = component();
      lives.push(c);
      return c.incarnation;
    },
    { backoffMinMs: 1, backoffMaxMs: 4, reopenVolumeAfter: 2 },
  );
  const changes: string[] = [];
  sup.on("change", (c) => changes.push(`${c.from}->${c.to}${c.fault === undefined ? "" : `:${c.fault.code}`}`));
  const first = component();
  sup.adopt(first.incarnation);
  t.true(sup.up);

  first.fail(err(ErrorCode.IoError));
  await until("up after the EIO burst", () => lives.length === 1 && sup.up);
  t.is(first.closed(), 1, "the failed writer was closed before the reopen");
  t.deepEqual(reopenFlags, [false, true, true], "after two faults in a row (reopenVolumeAfter 2): a fresh volume handle");

  volume.stalled = true;
  lives[0]!.fail(err(ErrorCode.IoStalled));
  await until("stalled", () => sup.core.state === "stalled");
  await new Promise((r) => setTimeout(r, 30));
  t.is(attempts, 3, "no attempt while the device is stalled");
  volume.stalled = false;
  volume.emit("recover");
  await until("up after the stall", () => lives.length === 2 && sup.up);
  t.is(attempts, 5, "after the recover: one attempt that met a stall again, one that worked");

  lives[1]!.fail(err(ErrorCode.WrongPair));
  await until("failed", () => sup.core.state === "failed");
  await new Promise((r) => setTimeout(r, 20));
  t.is(attempts, 5, "a configuration fault is not retried");
  t.deepEqual(changes, [
    "opening->up",
    "up->retrying:ERR_LUNLINK_IO_ERROR",
    "retrying->up",
    "up->stalled:ERR_LUNLINK_IO_STALLED",
    "stalled->retrying",
    "retrying->stalled:ERR_LUNLINK_IO_STALLED",
    "stalled->retrying",
    "retrying->up",
    "up->failed:ERR_LUNLINK_WRONG_PAIR",
  ]);
  const report = sup.report();
  t.is(report.state, "failed");
  t.is(report.fault?.kind, "config");
  t.is(report.counters.faults, 3);
  t.is(report.counters.recoveries, 2);
  await sup.close();
  t.is(sup.core.state, "closed");
});

test("shell: close() ends a supervisor that is waiting on a live component, a backoff or a stalled device", async (t) => {
  for (const where of ["live", "backoff", "stalled"] as const) {
    const volume = new FakeVolume();
    const c = component();
    const sup = new Supervisor("receive", () => volume as unknown as Volume, async () => {
      throw err(ErrorCode.IoError);
    }, { backoffMinMs: 60_000, backoffMaxMs: 60_000 });
    sup.adopt(c.incarnation);
    if (where === "backoff") {
      c.fail(err(ErrorCode.IoError));
      await until("retrying", () => sup.core.state === "retrying");
    } else if (where === "stalled") {
      volume.stalled = true;
      c.fail(err(ErrorCode.IoStalled));
      await until("stalled", () => sup.core.state === "stalled");
    }
    const started = Date.now();
    await sup.close();
    t.true(Date.now() - started < 5000, `${where}: close did not wait for the 60 s timers`);
    t.is(sup.core.state, "closed", where);
  }
});
