// Network namespaces for tests: two "hosts" joined by veth pairs, with addresses from 198.18.0.0/15
// inside the namespaces only (nothing is added to the host's own namespace). Every name starts with
// NETNS_PREFIX so teardown (and scripts/sweep-test-leftovers.sh after a killed run) removes exactly
// what a test created: processes in the namespace are killed, then the namespace is deleted, which
// also removes its veth ends and TUN devices.
import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";

import { deleteNamespace as deleteLabNamespace } from "../../lib/node/lab-plumbing.ts";
import { run } from "./exec.ts";

export const NETNS_PREFIX = "llt-";

/** Whatever runs cleanups at the end: an ava test context, or a benchmark's own list. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface Veth {
  /** Namespace and interface name of each end. */
  a: { ns: string; dev: string; address: string };
  b: { ns: string; dev: string; address: string };
}

/** Creates a namespace named llt-<random>-<label> with loopback up; deleted in teardown. */
export async function createNamespace(t: Teardown, label: string): Promise<string> {
  const name = `${NETNS_PREFIX}${randomBytes(3).toString("hex")}-${label}`;
  await run("ip", ["netns", "add", name]);
  t.teardown(() => deleteNamespace(name));
  await run("ip", ["-n", name, "link", "set", "lo", "up"]);
  return name;
}

export async function deleteNamespace(name: string): Promise<void> {
  if (!name.startsWith(NETNS_PREFIX)) throw new Error(`refusing to delete namespace ${name}: not a test namespace`);
  await deleteLabNamespace(name);
}

/**
 * Joins two namespaces with a veth pair; `subnet` is the first three octets of a /24 inside
 * 198.18.0.0/15 ("198.18.1"): end a gets .1, end b gets .2.
 */
export async function connect(nsA: string, nsB: string, subnet: string, label: string): Promise<Veth> {
  if (!/^198\.1[89]\.\d{1,3}$/.test(subnet)) throw new Error(`test subnets must be inside 198.18.0.0/15, got ${subnet}`);
  const tag = randomBytes(2).toString("hex");
  const veth: Veth = {
    a: { ns: nsA, dev: `llt${tag}${label}a`.slice(0, 15), address: `${subnet}.1` },
    b: { ns: nsB, dev: `llt${tag}${label}b`.slice(0, 15), address: `${subnet}.2` },
  };
  await run("ip", ["link", "add", veth.a.dev, "netns", nsA, "type", "veth", "peer", "name", veth.b.dev, "netns", nsB]);
  for (const end of [veth.a, veth.b]) {
    await run("ip", ["-n", end.ns, "addr", "add", `${end.address}/24`, "dev", end.dev]);
    await run("ip", ["-n", end.ns, "link", "set", end.dev, "up"]);
  }
  return veth;
}

/** Takes one end of a veth down (the cut) or up again; the other end sees the carrier go. */
export async function setLink(end: { ns: string; dev: string }, up: boolean): Promise<void> {
  await run("ip", ["-n", end.ns, "link", "set", end.dev, up ? "up" : "down"]);
}

/** Runs a command inside a namespace and returns its stdout. */
export function runIn(ns: string, command: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return run("ip", ["netns", "exec", ns, command, ...args], timeoutMs);
}

/** Starts a long-running process inside a namespace; killed in teardown if still running. */
export function spawnIn(t: Teardown, ns: string, command: string, args: string[]): ChildProcess {
  const child = spawn("ip", ["netns", "exec", ns, command, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return child;
}
