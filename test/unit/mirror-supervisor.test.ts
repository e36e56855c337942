// The mirror supervisor's sans-IO core: which faults are waited out and which end the job, the
// backoff (bounded, exponential, jittered down, never above retryMaxMs), and one report per change
// of state however many retries happen in between. Driven with a fake clock and given random draws.
import test from "ava";
import fc from "fast-check";

import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import { SupervisorCore, classifyFault, resolveBackoff } from "../../lib/mirror/supervisor.ts";

const SEED = Number(process.env.LUNLINK_SEED ?? Date.now() % 2 ** 31);
const fault = (code: ErrorCode): LunlinkError => new LunlinkError(code, `fake ${code}`);

test("faults worth waiting out, configuration faults and bugs are told apart", (t) => {
  t.is(classifyFault(fault(ErrorCode.IoStalled)), "stall");
  t.is(classifyFault(fault(ErrorCode.IoError)), "io-error");
  t.is(classifyFault(fault(ErrorCode.NoSpace)), "no-space");
  t.is(classifyFault(fault(ErrorCode.NotFound)), "device-gone");
  t.is(classifyFault(fault(ErrorCode.ShortIo)), "device-gone");
  t.is(classifyFault(fault(ErrorCode.PeerLost)), "link");
  for (const code of [ErrorCode.WrongPair, ErrorCode.NotOwner, ErrorCode.BadKey, ErrorCode.WrongKey, ErrorCode.VolumeTooSmall, ErrorCode.PeerRefused]) t.is(classifyFault(fault(code)), "configuration", code);
  t.is(classifyFault(new Error("assertion failed: x")), "bug");
});

test("one report per change of state, not per retry; healthy again counts a recovery", (t) => {
  const core = new SupervisorCore("mirror copy", resolveBackoff({ retryMinMs: 10, retryMaxMs: 80, jitterPercent: 0 }));
  const changes: string[] = [];
  const note = (c: { health: string; fault: string | null } | undefined): void => void (c && changes.push(`${c.health}${c.fault === null ? "" : `:${c.fault}`}`));
  note(core.onHealthy("resync complete"));
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    const d = core.onFault(i, fault(ErrorCode.IoError), 0.5);
    if (d.action !== "retry") return t.fail("an EIO is retried");
    delays.push(d.delayMs);
    t.false(d.waitForRecover);
    note(d.change);
  }
  t.deepEqual(delays, [10, 20, 40, 80, 80, 80], "doubling, capped at retryMaxMs");
  const stall = core.onFault(7, fault(ErrorCode.IoStalled), 0);
  t.true(stall.action === "retry" && stall.waitForRecover, "a stall waits for the volume's recover");
  note(stall.change);
  note(core.onHealthy("resync complete"));
  note(core.onHealthy("resync complete"));
  t.deepEqual(changes, ["healthy", "faulted:io-error", "faulted:stall", "healthy"]);
  t.like(core.counters, { faults: 7, retries: 7, ioErrors: 6, stalls: 1, recoveries: 1 });
  t.is(core.attempts, 0, "the backoff starts over once healthy");
});

test("configuration faults are reported and not retried; retries are bounded by maxRetries", (t) => {
  const core = new SupervisorCore("mirror push", resolveBackoff({ maxRetries: 2 }));
  const wrongPair = core.onFault(0, fault(ErrorCode.WrongPair), 0);
  t.like(wrongPair, { action: "fail", change: { health: "failed", code: ErrorCode.WrongPair } });
  const bounded = new SupervisorCore("mirror push", resolveBackoff({ maxRetries: 2 }));
  t.is(bounded.onFault(0, fault(ErrorCode.PeerLost), 0).action, "retry");
  t.is(bounded.onFault(1, fault(ErrorCode.PeerLost), 0).action, "retry");
  const gaveUp = bounded.onFault(2, fault(ErrorCode.PeerLost), 0);
  t.like(gaveUp, { action: "fail", change: { health: "failed", fault: "link" } });
  t.regex(gaveUp.change?.detail ?? "", /gave up after 2 retries/);
});

test("every backoff delay lies in [base * (1 - jitter), base] with base = min(max, min * 2^(n-1)) (fast-check)", (t) => {
  t.log(`fast-check seed ${SEED} (replay: LUNLINK_SEED=${SEED})`);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 1, max: 200 }), fc.double({ min: 0, max: 1, noNaN: true }), (min, extra, jitter, attempt, random) => {
      const core = new SupervisorCore("x", resolveBackoff({ retryMinMs: min, retryMaxMs: min + extra, jitterPercent: jitter }));
      const base = Math.min(min + extra, min * 2 ** (attempt - 1));
      const delay = core.delayMs(attempt, random);
      return delay <= base && delay >= Math.floor(base * (1 - jitter / 100)) && delay <= min + extra;
    }),
    { numRuns: 1000, seed: SEED },
  );
  t.pass();
});
