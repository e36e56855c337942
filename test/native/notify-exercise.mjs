// Every branch of addon/notify.cc (sdNotify) for scripts/asan.sh and scripts/valgrind.sh: datagrams to
// a path socket and an abstract one (python3 receivers), ECONNREFUSED/ENOENT, the argument checks
// (TypeError/RangeError from C++, reached by calling the raw addon past lib/io/notify.ts's checks).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";

import { addon } from "../../dist/lib/io/native.js";
import { sdNotify } from "../../dist/lib/io/notify.js";

/** A python3 receiver bound to `name` for `count` datagrams: { ready (listening), done (their reprs) }. */
function receiver(name, count) {
  const code = `import socket,sys\nn=sys.argv[1]\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind('\\0'+n[1:] if n[0]=='@' else n)\nprint('listening',flush=True)\nfor _ in range(${count}): print(repr(s.recv(65536).decode()),flush=True)`;
  const child = spawn("python3", ["-c", code, name], { stdio: ["ignore", "pipe", "inherit"] });
  const got = [];
  let listening;
  const ready = new Promise((resolve) => (listening = resolve));
  createInterface({ input: child.stdout }).on("line", (l) => (l === "listening" ? listening() : got.push(l)));
  const done = new Promise((resolve, reject) => child.once("exit", (c) => (c === 0 ? resolve(got) : reject(new Error(`receiver exit ${c}`)))));
  return { ready, done };
}

const dir = mkdtempSync("/var/tmp/lunlink-notify-");
try {
  for (const name of [join(dir, "n.sock"), `@lunlink-exercise-${process.pid}`]) {
    const { ready, done } = receiver(name, 3);
    await ready;
    sdNotify(name, "READY=1\nSTATUS=x");
    sdNotify(name, "WATCHDOG=1");
    addon().sdNotify(name, "S".repeat(4096));
    const got = await done;
    assert.equal(got.length, 3);
  }
  assert.throws(() => sdNotify(join(dir, "none.sock"), "READY=1"), { code: "ERR_LUNLINK_NOT_FOUND" });
  assert.throws(() => sdNotify(`@lunlink-none-${process.pid}`, "READY=1"), { code: "ERR_LUNLINK_SYSTEM", syscall: "sendto" });
  const raw = addon();
  for (const bad of [[], ["/x"], [1, "m"], ["/x", 2], ["rel", "m"], ["@", "m"], ["/x", ""], ["/x", "m".repeat(4097)], [`/${"p".repeat(120)}`, "m"], [`@${"a".repeat(120)}`, "m"], ["/a\0b", "m"]]) {
    assert.throws(() => raw.sdNotify(...bad), (e) => e instanceof TypeError || e instanceof RangeError, JSON.stringify(bad).slice(0, 40));
  }
  console.log("notify done");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
