// The life of one `lunlink up` process beyond `lunlink down`: what it does when the ground goes
// away under it. A TUN interface deleted under a running node (an operator's `ip link del`, a
// container runtime tearing the namespace down) ends the node through its normal clean-up, with a
// coded error and a non-zero exit, never an uncaught exception; the peer keeps running.
import { existsSync } from "node:fs";
import { once } from "node:events";

import test from "ava";

import { Lab } from "../../lib/node/lab.ts";
import { upLab } from "../helpers/lab.ts";

test("the TUN interface deleted under `lunlink up`: the node logs the TUN error, cleans up and exits non-zero", async (t) => {
  const lines: string[] = [];
  const lab: Lab = await upLab(t, { onLog: (node, line) => node === 1 && lines.push(line) });
  const node = lab.nodes[0];
  const child = node.process!;
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  await lab.exec(1, "ip", ["link", "del", "lunlink0"]);
  const [code, signal] = await exited;
  t.is(signal, null, "the node ended by itself, not by a signal");
  t.not(code, 0, "with a non-zero exit status");
  const records = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { event?: string; code?: string });
  const tunError = records.find((l) => l.event === "tun-error");
  t.truthy(tunError, "it logged the TUN error");
  t.is(tunError?.code, "ERR_LUNLINK_SYSTEM", "with its code");
  t.false(lines.some((l) => /uncaught|Unhandled/i.test(l)), "no uncaught exception");
  t.true(lines.some((l) => l.startsWith("lunlink: ERR_LUNLINK_SYSTEM")), `the CLI's last word names the error: ${lines.filter((l) => !l.startsWith("{")).join(" | ")}`);
  t.false(existsSync(node.socketPath), "its control socket was removed");
  const peer = await lab.status(2);
  t.is(peer.node, 2, "the peer is still running and answers");
});
