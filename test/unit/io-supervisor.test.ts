// Supervision of every I/O component (lib/io/supervisor.ts): the decision table (SupervisorCore) with
// a fake clock and seeded jitter, the mirrors' view of it (lib/mirror/health.ts: their option names,
// fatal reasons and `state` lines), and the async shell (Supervisor) around fake components and a
// fake volume that stalls and recovers. Asserted: which faults are retried and how (stall -> wait for
// recover; EIO/ENOSPC/short/gone/link -> bounded jittered backoff; not owner/wrong pair/wrong key ->
// failed, never retried; retries bounded by maxRetries), the reason of each fault, one state change
// per change (not per retry), counters and outage times.
// Replay a seed: LUNLINK_SEED=<seed> npx ava test/unit/io-supervisor.test.ts
import { EventEmitter } from "node:events";
import test from "ava";
import fc from "fast-check";

import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import type { Volume } from "../../lib/io/volume.ts";
import { classifyFault, faultReason, Supervisor, SupervisorCore, type Incarnation, type StateChange } from "../../lib/io/supervisor.ts";
import { MIRROR_FATAL_REASONS, healthChange, mirrorRecovery } from "../../lib/mirror/health.ts";
import { generator, logSeed, SEED } from "../helpers/random.ts";
import { pollUntil } from "../helpers/until.ts";

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
  t.deepEqual(core.counters, { faults: 1, recoveries: 1, failedAttempts: 8, retries: 9, stalls: 0, ioErrors: 5, noSpace: 4, deviceGone: 0, linkDrops: 0, otherFaults: 0 });
  delays.forEach((d, i) => {
    const base = Math.min(1000, 100 * 2 ** i);
    t.true(d <= base && d >= base / 2, `attempt ${i + 1}: ${d} ms within [${base / 2}, ${base}] (seed ${SEED})`);
  });
  t.true(delays.at(-1)! <= 1000, "bounded by backoffMaxMs");
});

test("backoff stays within [min*(1-jitter), max] for any attempt and options", (t) => {
  logSeed(t);
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
  t.deepEqual(core.counters, { faults: 1, recoveries: 1, failedAttempts: 3, retries: 4, stalls: 3, ioErrors: 1, noSpace: 0, deviceGone: 0, linkDrops: 0, otherFaults: 0 });
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

// --- the mirrors' view: reasons, option names, fatal reasons, `state` lines ---------------------

const fault = (code: ErrorCode): LunlinkError => new LunlinkError(code, `fake ${code}`);
/** "healthy", "faulted:io-error"...: a change as the mirror CLI's state line names it. */
const line = (change: StateChange | undefined, detail = "resync complete"): string | undefined => {
  if (change === undefined) return undefined;
  const h = healthChange(change, detail);
  return `${h.health}${h.fault === null ? "" : `:${h.fault}`}`;
};

test("faults worth waiting out, configuration faults and bugs are told apart (reasons; a mirror's fatal ones)", (t) => {
  t.is(faultReason(fault(ErrorCode.IoStalled)), "stall");
  t.is(faultReason(fault(ErrorCode.IoError)), "io-error");
  t.is(faultReason(fault(ErrorCode.NoSpace)), "no-space");
  t.is(faultReason(fault(ErrorCode.NotFound)), "device-gone");
  t.is(faultReason(fault(ErrorCode.ShortIo)), "device-gone");
  t.is(faultReason(fault(ErrorCode.PeerLost)), "link");
  for (const code of [ErrorCode.WrongPair, ErrorCode.NotOwner, ErrorCode.BadKey, ErrorCode.WrongKey, ErrorCode.PeerRefused]) {
    t.is(faultReason(fault(code)), "configuration", code);
    t.is(classifyFault(fault(code), false, MIRROR_FATAL_REASONS), "config", code);
  }
  t.is(faultReason(fault(ErrorCode.VolumeTooSmall)), "layout");
  t.is(classifyFault(fault(ErrorCode.VolumeTooSmall), false, MIRROR_FATAL_REASONS), "config", "a mirror stops on a changed layout");
  t.is(faultReason(new Error("assertion failed: x")), "bug");
  t.is(classifyFault(new Error("assertion failed: x"), false, MIRROR_FATAL_REASONS), "config", "a mirror stops on a bug");
  t.is(faultReason(fault(ErrorCode.IoError), true), "stall", "any fault while a request is parked is a stall");
});

test("mirror: one report per change of state, not per retry; healthy again counts a recovery", (t) => {
  const core = new SupervisorCore("mirror copy", 0, mirrorRecovery({ retryMinMs: 10, retryMaxMs: 80, jitterPercent: 0 }));
  const changes: string[] = [];
  const note = (c: StateChange | undefined): void => void (c && changes.push(line(c)!));
  note(core.opened(0));
  const delays: number[] = [];
  for (let i = 1; i <= 6; i++) {
    const { next, change } = core.failed(i, fault(ErrorCode.IoError), false);
    if (next.kind !== "reopen") return t.fail("an EIO is retried after a delay");
    delays.push(next.delayMs);
    note(change);
  }
  t.deepEqual(delays, [10, 20, 40, 80, 80, 80], "doubling, capped at retryMaxMs");
  const stall = core.failed(7, fault(ErrorCode.IoStalled), false);
  t.deepEqual(stall.next, { kind: "recover" }, "a stall waits for the volume's recover");
  note(stall.change);
  note(core.opened(8));
  note(core.opened(9));
  t.deepEqual(changes, ["healthy", "faulted:io-error", "faulted:stall", "healthy"]);
  t.like(core.counters, { faults: 1, failedAttempts: 6, retries: 7, ioErrors: 6, stalls: 1, recoveries: 1 });
  const again = core.failed(8 + 80, fault(ErrorCode.IoError), false);
  t.deepEqual(again.next, { kind: "reopen", delayMs: 10 }, "the backoff starts over once healthy (for retryMaxMs)");
});

test("mirror: configuration faults are reported and not retried; retries are bounded by maxRetries", (t) => {
  const core = new SupervisorCore("mirror push", 0, mirrorRecovery({ maxRetries: 2 }));
  const wrongPair = core.failed(0, fault(ErrorCode.WrongPair), false);
  t.deepEqual(wrongPair.next, { kind: "stop" });
  t.like(healthChange(wrongPair.change!, ""), { health: "failed", fault: null, code: ErrorCode.WrongPair });
  const bounded = new SupervisorCore("mirror push", 0, mirrorRecovery({ maxRetries: 2 }));
  t.is(bounded.failed(0, fault(ErrorCode.PeerLost), false).next.kind, "reopen");
  t.is(bounded.failed(1, fault(ErrorCode.PeerLost), false).next.kind, "reopen");
  const gaveUp = bounded.failed(2, fault(ErrorCode.PeerLost), false);
  t.deepEqual(gaveUp.next, { kind: "stop" });
  const change = healthChange(gaveUp.change!, "");
  t.like(change, { health: "failed", fault: "link" });
  t.regex(change.detail, /gave up after 2 retries/);
});

test("mirror options: every backoff delay lies in [base * (1 - jitter), base] with base = min(max, min * 2^(n-1)) (fast-check)", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 1, max: 200 }), fc.double({ min: 0, max: 1, noNaN: true }), (min, extra, jitter, attempt, random) => {
      const core = new SupervisorCore("x", 0, mirrorRecovery({ retryMinMs: min, retryMaxMs: min + extra, jitterPercent: jitter }), () => random);
      const base = Math.min(min + extra, min * 2 ** (attempt - 1));
      const delay = core.backoffMs(attempt);
      return delay <= base && delay >= Math.floor(base * (1 - jitter / 100)) && delay <= min + extra;
    }),
    { numRuns: 1000, seed: SEED },
  );
  t.pass();
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

const until = (what: string, check: () => boolean, limitMs = 5000): Promise<void> => pollUntil(what, check, limitMs, 2);

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
