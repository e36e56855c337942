// corosync 3 in test namespaces: one `corosync -f` per node, each in a private mount namespace with
// tmpfs on /run and /var/lib/corosync so their pid files, ring ids and IPC files never collide (their
// IPC sockets are abstract, hence per network namespace: corosync-quorumtool run inside a node's
// namespace reaches that node's corosync). Membership is read from corosync's own log lines (stderr)
// and from corosync-quorumtool. Every process started here is killed (by pid) in the test's teardown.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { run, sleep } from "./exec.ts";
import type { Teardown } from "./netns.ts";

export interface CorosyncMember {
  id: number;
  /** The member's network namespace. */
  ns: string;
  /** ring0_addr: the address knet binds and sends to (lunlink0's, for corosync over lunlink). */
  address: string;
}

/** One membership as corosync logs it: the ring id and the node ids in it. */
export interface Membership {
  ringId: string;
  members: number[];
}

/** The most log lines kept per run: a bound, far above what a few minutes of corosync prints. */
const MAX_LOG_LINES = 20_000;
/** SIGTERM, then SIGKILL after this long. */
const STOP_GRACE_MS = 5_000;

/**
 * corosync.conf for `members`: knet, no crypto (a test needs no authkey), default totem timers (no
 * token: 3000 ms + 650 ms per node beyond two), votequorum with two_node only when asked.
 */
export function corosyncConf(clusterName: string, members: readonly Pick<CorosyncMember, "id" | "address">[], options: { twoNode?: boolean } = {}): string {
  const nodes = members.map((m) => `  node {\n    ring0_addr: ${m.address}\n    nodeid: ${m.id}\n    name: n${m.id}\n  }`).join("\n");
  return [
    "totem {\n  version: 2\n  cluster_name: " + clusterName + "\n  transport: knet\n  crypto_cipher: none\n  crypto_hash: none\n}",
    `nodelist {\n${nodes}\n}`,
    `quorum {\n  provider: corosync_votequorum\n${options.twoNode === true ? "  two_node: 1\n" : ""}}`,
    "logging {\n  to_stderr: yes\n  to_syslog: no\n  to_logfile: no\n  timestamp: off\n  debug: off\n}",
    "",
  ].join("\n");
}

/** The memberships a log shows, in order: "A new membership (1.2a) was formed" then "[QUORUM] Members[N]: ...". */
export function membershipsIn(lines: readonly string[]): Membership[] {
  const out: Membership[] = [];
  let ringId: string | undefined;
  for (const line of lines) {
    const formed = /A new membership \(([0-9a-f]+\.[0-9a-f]+)\) was formed/.exec(line);
    if (formed !== null) ringId = formed[1]!;
    const members = /\[QUORUM\] Members\[\d+\]:((?: \d+)*)/.exec(line);
    if (members !== null && ringId !== undefined) out.push({ ringId, members: members[1]!.trim().split(" ").map(Number) });
  }
  return out;
}

export class CorosyncCluster {
  readonly members: readonly CorosyncMember[];
  private readonly logs = new Map<number, string[]>();
  private readonly children = new Map<number, ChildProcess>();

  private constructor(members: readonly CorosyncMember[]) {
    this.members = members;
  }

  /** Writes each member's corosync.conf into `dir` and starts corosync in every member's namespace. */
  static async start(t: Teardown, dir: string, members: readonly CorosyncMember[], options: { twoNode?: boolean } = {}): Promise<CorosyncCluster> {
    await run("which", ["corosync", "corosync-quorumtool"]).catch(() => {
      throw new Error("corosync missing (scripts/deps.sh test installs it)");
    });
    const cluster = new CorosyncCluster(members);
    t.teardown(() => Promise.all(members.map((m) => cluster.stop(m.id))));
    const conf = corosyncConf("lunlink-test", members, options);
    for (const m of members) {
      const path = join(dir, `corosync${m.id}.conf`);
      await writeFile(path, conf);
      cluster.startOne(m, path);
    }
    return cluster;
  }

  private startOne(m: CorosyncMember, confPath: string): void {
    const lines: string[] = [];
    this.logs.set(m.id, lines);
    // ip netns exec, unshare and sh all exec: the child's pid is corosync's.
    const child = spawn("ip", ["netns", "exec", m.ns, "unshare", "-m", "--propagation", "private", "sh", "-c", `mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/corosync && exec corosync -f -c ${confPath}`], { stdio: ["ignore", "ignore", "pipe"] });
    createInterface({ input: child.stderr! }).on("line", (line) => {
      if (lines.length < MAX_LOG_LINES) lines.push(line);
    });
    this.children.set(m.id, child);
  }

  log(id: number): readonly string[] {
    return this.logs.get(id) ?? [];
  }

  /** Every membership node `id`'s corosync has logged, in order. */
  memberships(id: number): Membership[] {
    return membershipsIn(this.log(id));
  }

  current(id: number): Membership | undefined {
    return this.memberships(id).at(-1);
  }

  /** Waits until node `id`'s latest logged membership satisfies `check`; throws with its log's tail after timeoutMs. */
  async waitFor(id: number, what: string, check: (m: Membership) => boolean, timeoutMs = 60_000, pollMs = 100): Promise<Membership> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = this.current(id);
      if (m !== undefined && check(m)) return m;
      const child = this.children.get(id);
      if (child !== undefined && (child.exitCode !== null || child.signalCode !== null)) break;
      await sleep(pollMs);
    }
    throw new Error(`corosync ${id}: not ${what} within ${timeoutMs} ms; last membership ${JSON.stringify(this.current(id))}\n${this.log(id).slice(-15).join("\n")}`);
  }

  /** The member node ids corosync-quorumtool lists inside node `id`'s namespace (its corosync's own view). */
  async quorumMembers(id: number): Promise<number[]> {
    const m = this.members.find((x) => x.id === id)!;
    const out = await run("ip", ["netns", "exec", m.ns, "corosync-quorumtool", "-l", "-p"], 15_000).catch((e: { cause?: { stdout?: string } }) => e.cause?.stdout ?? "");
    // "Nodeid      Votes    Name" then one row per member: "         1          1 198.18.100.1 (local)".
    return [...out.matchAll(/^\s*(\d+)\s+\d+\s+\S+/gm)].map((r) => Number(r[1])).sort((a, b) => a - b);
  }

  /** SIGTERM, SIGKILL after STOP_GRACE_MS; a no-op once it has exited. */
  async stop(id: number): Promise<void> {
    const child = this.children.get(id);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
}
