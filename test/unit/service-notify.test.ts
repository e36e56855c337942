// sd_notify: the decision core (ServiceState, fake clock), the watchdog environment, and the addon's
// datagram to a socket that plays systemd (path and abstract), with its coded errors.
import test from "ava";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

import { ErrorCode } from "../../lib/errors.ts";
import { DEFAULT_TIMERS } from "../../lib/link/paths.ts";
import { notifySocketFrom, sdNotify } from "../../lib/io/notify.ts";
import { ServiceState, watchdogIntervalMs, type ServiceView } from "../../lib/node/service.ts";
import { scratchDir } from "../helpers/scratch.ts";
import { playSystemd } from "../helpers/systemd-socket.ts";

const both = (active: string, primary: ServiceView["primary"], storage: ServiceView["storage"]): ServiceView => ({ active, primary, storage });

test("READY=1 waits for a verdict on both paths, then STATUS only on change", (t) => {
  const s = new ServiceState(1000, DEFAULT_TIMERS, undefined);
  t.deepEqual(s.tick(1000, both("isolated", "down", "down")), []);
  // Primary up at once; storage still down and younger than its downMs (1500): no verdict yet.
  t.deepEqual(s.tick(1100, both("primary", "up", "down")), []);
  t.deepEqual(s.tick(1300, both("primary", "up", "up")), ["READY=1", "STATUS=active primary (primary up, storage up)"]);
  t.deepEqual(s.tick(1400, both("primary", "up", "up")), []);
  t.deepEqual(s.tick(1500, both("primary", "suspect", "up")), ["STATUS=active primary (primary suspect, storage up)"]);
  t.deepEqual(s.tick(1600, both("storage", "down", "up")), ["STATUS=active storage (primary down, storage up)"]);
  t.deepEqual(s.stopping("SIGTERM"), ["STOPPING=1", "STATUS=stopping (SIGTERM)"]);
  t.deepEqual(s.stopping("SIGTERM"), [], "STOPPING=1 once");
  t.deepEqual(s.tick(1700, both("primary", "up", "up")), [], "silent after stopping");
});

test("a path that never comes up is a verdict once its downMs passed: READY=1 while isolated", (t) => {
  const s = new ServiceState(0, DEFAULT_TIMERS, undefined);
  t.deepEqual(s.tick(DEFAULT_TIMERS.primary.downMs, both("isolated", "down", "down")), []);
  t.deepEqual(s.tick(DEFAULT_TIMERS.storage.downMs - 1, both("isolated", "down", "down")), []);
  t.deepEqual(s.tick(DEFAULT_TIMERS.storage.downMs, both("isolated", "down", "down")), ["READY=1", "STATUS=active isolated (primary down, storage down)"]);
});

test("WATCHDOG=1 every interval from the first tick, ready or not", (t) => {
  const s = new ServiceState(0, DEFAULT_TIMERS, 1000);
  t.deepEqual(s.tick(0, both("isolated", "down", "down")), ["WATCHDOG=1"]);
  t.deepEqual(s.tick(999, both("isolated", "down", "down")), []);
  t.deepEqual(s.tick(1000, both("primary", "up", "up")), ["READY=1", "STATUS=active primary (primary up, storage up)", "WATCHDOG=1"]);
  t.deepEqual(s.tick(2500, both("primary", "up", "up")), ["WATCHDOG=1"]);
  t.true(s.tickMs <= 500 && s.tickMs >= 5, `tick ${s.tickMs} ms`);
});

test("watchdog interval: half WATCHDOG_USEC, only for this pid, off when malformed", (t) => {
  t.is(watchdogIntervalMs({ WATCHDOG_USEC: "20000000" }, 42), 10_000);
  t.is(watchdogIntervalMs({ WATCHDOG_USEC: "20000000", WATCHDOG_PID: "42" }, 42), 10_000);
  t.is(watchdogIntervalMs({ WATCHDOG_USEC: "20000000", WATCHDOG_PID: "7" }, 42), undefined);
  for (const bad of ["", "0", "-5", "1e6", "abc"]) t.is(watchdogIntervalMs({ WATCHDOG_USEC: bad }, 42), undefined, bad);
  t.is(watchdogIntervalMs({}, 42), undefined);
  t.is(notifySocketFrom({}), undefined);
  t.is(notifySocketFrom({ NOTIFY_SOCKET: "" }), undefined);
  t.is(notifySocketFrom({ NOTIFY_SOCKET: "/run/systemd/notify" }), "/run/systemd/notify");
});

test("sdNotify delivers one datagram to a path socket and to an abstract one", async (t) => {
  const path = join(await scratchDir(t), "notify.sock");
  const abstract = `@lunlink-test-${randomBytes(6).toString("hex")}`;
  for (const name of [path, abstract]) {
    const receiver = await playSystemd(t, name);
    sdNotify(name, "READY=1\nSTATUS=active primary");
    sdNotify(name, "WATCHDOG=1");
    t.deepEqual(await receiver.waitFor("two datagrams", (m) => m.length >= 2), ["READY=1\nSTATUS=active primary", "WATCHDOG=1"], name);
    receiver.close();
  }
});

test("sdNotify failures are coded errors naming the syscall and the socket", async (t) => {
  const dir = await scratchDir(t);
  const missing = join(dir, "nobody.sock");
  const e1 = t.throws(() => sdNotify(missing, "READY=1"));
  t.like(e1, { code: ErrorCode.NotFound, syscall: "sendto", errno: 2, path: missing });
  // A socket file whose receiver is gone: ECONNREFUSED.
  const gone = join(dir, "gone.sock");
  const receiver = await playSystemd(t, gone);
  receiver.close();
  const e2 = await t.throwsAsync(async () => {
    for (let i = 0; i < 100; i++) {
      sdNotify(gone, "READY=1"); // until the receiver's exit closed its end
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  t.like(e2, { code: ErrorCode.System, syscall: "sendto", errno: 111, path: gone });
  const e3 = t.throws(() => sdNotify(`@lunlink-nobody-${randomBytes(6).toString("hex")}`, "READY=1"));
  t.like(e3, { code: ErrorCode.System, syscall: "sendto", errno: 111 });
  for (const bad of ["relative.sock", "@", "", "vsock:2:1234", `/${"x".repeat(200)}`]) {
    t.like(t.throws(() => sdNotify(bad, "READY=1")), { code: ErrorCode.InvalidArgument }, bad);
  }
  t.like(t.throws(() => sdNotify(missing, "")), { code: ErrorCode.InvalidArgument });
  t.like(t.throws(() => sdNotify(missing, "X".repeat(5000))), { code: ErrorCode.InvalidArgument });
});
