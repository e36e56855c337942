// `lunlink up` under systemd's notify protocol, against a unix datagram socket that plays systemd
// (test/helpers/systemd-socket.ts): a real node pair in namespaces; node 1 runs with NOTIFY_SOCKET and
// WATCHDOG_USEC. Asserted: READY=1 once, after which STATUS follows the active path across a cut of
// the primary and its restore; WATCHDOG=1 keeps coming; SIGTERM gives STOPPING=1 as the last word and
// a clean exit (status 0, TUN interface gone).
import { once } from "node:events";
import { join } from "node:path";

import test from "ava";

import { Lab } from "../../lib/node/lab.ts";
import { NETNS_PREFIX } from "../helpers/netns.ts";
import { playSystemd } from "../helpers/systemd-socket.ts";

const lines = (messages: string[]) => messages.flatMap((m) => m.split("\n"));
const hasLine = (line: string) => (messages: string[]) => lines(messages).includes(line);

test("lunlink up notifies systemd: READY once, STATUS on failover and failback, WATCHDOG, STOPPING on SIGTERM, exit 0", async (t) => {
  const logs: string[] = [];
  const lab = await Lab.create({ prefix: NETNS_PREFIX, volumeBytes: 32 * 1024 * 1024, onLog: (node, line) => logs.length < 2000 && logs.push(`${node} ${line}`) });
  t.teardown(async () => {
    if (!t.passed) t.log(logs.filter((l) => /transition|error|notify/.test(l)).slice(-40).join("\n"));
    await lab.destroy();
  });
  const systemd = await playSystemd(t, join(lab.dir, "notify.sock"));
  // startNode spawns before its first await: only node 1 inherits the variables.
  process.env["NOTIFY_SOCKET"] = join(lab.dir, "notify.sock");
  process.env["WATCHDOG_USEC"] = "2000000";
  const started = lab.startNode(1);
  delete process.env["NOTIFY_SOCKET"];
  delete process.env["WATCHDOG_USEC"];
  await started;
  await lab.startNode(2);

  await systemd.waitFor("ready with both paths up", hasLine("STATUS=active primary (primary up, storage up)"), 20_000);
  await lab.setPrimary(false);
  await systemd.waitFor("failed over to storage", hasLine("STATUS=active storage (primary down, storage up)"), 20_000);
  await lab.setPrimary(true);
  await systemd.waitFor("failed back to primary", (m) => lines(m).lastIndexOf("STATUS=active primary (primary up, storage up)") > lines(m).indexOf("STATUS=active storage (primary down, storage up)"), 20_000);
  await systemd.waitFor("two watchdog pings", (m) => lines(m).filter((l) => l === "WATCHDOG=1").length >= 2, 20_000);

  const child = lab.nodes[0].process!;
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  child.kill("SIGTERM");
  const [code, signal] = await exited;
  const messages = await systemd.waitFor("STOPPING=1", hasLine("STOPPING=1"), 10_000);
  t.log(`${messages.length} datagrams: ${JSON.stringify(messages.filter((m) => m !== "WATCHDOG=1"))} and ${lines(messages).filter((l) => l === "WATCHDOG=1").length} WATCHDOG=1`);

  t.is(code, 0, "SIGTERM ends `lunlink up` cleanly");
  t.is(signal, null);
  const all = lines(messages);
  t.is(all.filter((l) => l === "READY=1").length, 1, "READY=1 exactly once");
  const ready = all.indexOf("READY=1");
  t.true(all.findIndex((l) => l.startsWith("STATUS=")) > ready, "no STATUS before READY=1");
  t.is(all.filter((l) => l === "STOPPING=1").length, 1, "STOPPING=1 exactly once");
  t.deepEqual(messages.at(-1), "STOPPING=1\nSTATUS=stopping (SIGTERM)", "STOPPING=1 is the last word");
  const statuses = all.filter((l) => l.startsWith("STATUS=active "));
  const storageAt = statuses.indexOf("STATUS=active storage (primary down, storage up)");
  t.true(storageAt > 0 && statuses.slice(storageAt).includes("STATUS=active primary (primary up, storage up)"), `STATUS followed failover and failback: ${JSON.stringify(statuses)}`);
  for (const l of all) t.regex(l, /^(READY=1|STOPPING=1|WATCHDOG=1|STATUS=.+)$/, "only protocol lines");
  await t.throwsAsync(lab.exec(1, "ip", ["link", "show", "lunlink0"]), undefined, "the TUN interface is gone");
});
