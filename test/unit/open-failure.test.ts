// A node whose open fails part-way leaves nothing behind: ClusterNode.open and Link.open close what they
// opened (UDP sockets, ring volumes, writer timers) and rethrow the original coded error, so the caller
// can report it and the process can exit. Failures are produced for real: a peer public key the
// PeerLink refuses, a peer endpoint the UDP path refuses, a peer ring that cannot be opened. Counted:
// /proc/self/fd and the event loop's active resources, before and after; and a child process that
// fails its open must exit by itself. Serial: the counts are the whole process's.
import { spawn } from "node:child_process";
import { readdir, readlink } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import test, { type ExecutionContext } from "ava";

import { ErrorCode } from "../../lib/errors.ts";
import { Volume } from "../../lib/io/volume.ts";
import { generateKeys } from "../../lib/link/keys.ts";
import { Link } from "../../lib/link/link.ts";
import { DEFAULT_TIMERS } from "../../lib/link/paths.ts";
import { ClusterNode, type ClusterMemberOptions } from "../../lib/node/cluster-node.ts";
import { formatCluster } from "../../lib/ring/cluster.ts";
import { pairFiles } from "../helpers/pair-files.ts";
import { sparseFile } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;

interface Held {
  /** What each open descriptor is (readlink of /proc/self/fd/N: a path, socket:[inode], anon_inode:[io_uring]...). */
  fds: string[];
  resources: string[];
}

async function held(): Promise<Held> {
  // Sampled before the reads below, whose own requests would count.
  const resources = process.getActiveResourcesInfo().filter((r) => r !== "FSReqPromise" && r !== "FSReqCallback").sort();
  const fds: string[] = [];
  for (const fd of await readdir("/proc/self/fd")) fds.push(await readlink(`/proc/self/fd/${fd}`).catch(() => "gone"));
  return { fds: fds.sort(), resources };
}

/** Descriptors open in `after` that were not in `before` (as a multiset: two sockets are two). */
function opened(before: Held, after: Held): string[] {
  const left = [...before.fds];
  return after.fds.filter((f) => {
    const i = left.indexOf(f);
    if (i < 0) return f !== "gone" && !f.startsWith("/proc/");
    left.splice(i, 1);
    return false;
  });
}

/**
 * What the process holds right after the failed open returned: the open awaits every close it makes,
 * so nothing is left to settle (one turn for handles closed at its end). Sampled at once, on purpose:
 * a leaked native socket or volume handle is closed later by the garbage collector's finalizer, which
 * would hide the leak from a wait, not from the caller, who holds the port or device until then.
 */
async function afterOpen(): Promise<Held> {
  await new Promise((resolve) => setImmediate(resolve));
  return held();
}

function randomBase(): number {
  return 30_000 + Math.floor(Math.random() * 5_000) * 4;
}

async function clusterFile(t: ExecutionContext): Promise<string> {
  const file = await sparseFile(t, 8 * MiB, "cluster.img");
  const volume = await Volume.open(file);
  await formatCluster(volume, { nodes: [1, 2] });
  await volume.close();
  return file;
}

function members(file: string, base: number, over: Partial<ClusterMemberOptions> = {}): ClusterMemberOptions[] {
  return [1, 2].map((node) => ({ node, address: `198.18.100.${node}`, primary: { host: "127.0.0.1", port: base + 2 * (node - 1) }, ring: file, ...(node === 2 ? over : {}) }));
}

const STORAGE = { dsync: false, pollMaxMs: 2, peerDownMs: 5000 };

async function refusedClean(t: ExecutionContext, open: () => Promise<unknown>, code: string): Promise<void> {
  // Once unmeasured: the first open loads the addon and its lazily made descriptors.
  await open().catch(() => undefined);
  const before = await held();
  await t.throwsAsync(open(), { code });
  const after = await afterOpen();
  t.deepEqual(opened(before, after), [], "every descriptor the failed open took is closed (sockets, volumes, io_uring)");
  t.deepEqual(after.resources, before.resources, "no timer or handle is left on the event loop");
}

test.serial("ClusterNode.open: a peer public key the PeerLink refuses closes the sockets and rings opened before it and rethrows ERR_LUNLINK_BAD_KEY", async (t) => {
  const file = await clusterFile(t);
  const key = generateKeys();
  const open = () => ClusterNode.open({ nodeId: 1, subnet: "198.18.100.1/24", members: members(file, randomBase(), { publicKey: "not-a-key" }), storage: STORAGE, timers: DEFAULT_TIMERS, privateKey: key.privateKey });
  await refusedClean(t, open, ErrorCode.BadKey);
});

test.serial("ClusterNode.open: a peer ring that cannot be opened leaves nothing behind", async (t) => {
  const file = await clusterFile(t);
  const open = () => ClusterNode.open({ nodeId: 1, subnet: "198.18.100.1/24", members: members(file, randomBase(), { ring: `${file}.missing` }), storage: STORAGE, timers: DEFAULT_TIMERS });
  await refusedClean(t, open, ErrorCode.NotFound);
});

test.serial("ClusterNode.open after a refused open: the same node opens on the same ring and ports", async (t) => {
  const file = await clusterFile(t);
  const base = randomBase();
  const key = generateKeys();
  const good = members(file, base).map((m) => ({ ...m, publicKey: key.publicKey }));
  await t.throwsAsync(ClusterNode.open({ nodeId: 1, subnet: "198.18.100.1/24", members: members(file, base, { publicKey: "not-a-key" }), storage: STORAGE, timers: DEFAULT_TIMERS, privateKey: key.privateKey }), { code: ErrorCode.BadKey });
  // A leaked writer would hold the ring (a live writer with our id) and leaked sockets the ports.
  const node = await ClusterNode.open({ nodeId: 1, subnet: "198.18.100.1/24", members: good, storage: STORAGE, timers: DEFAULT_TIMERS, privateKey: key.privateKey });
  await node.close();
  t.pass();
});

test.serial("ClusterNode.open: a peer endpoint the UDP path refuses (not a numeric address) leaves no socket bound", async (t) => {
  const file = await clusterFile(t);
  const open = () => ClusterNode.open({ nodeId: 1, subnet: "198.18.100.1/24", members: members(file, randomBase(), { primary: { host: "peer.example", port: 7410 } }), storage: STORAGE, timers: DEFAULT_TIMERS });
  await refusedClean(t, open, ErrorCode.InvalidArgument);
});

test.serial("Link.open: a peer endpoint the UDP path refuses (not a numeric address) closes the storage path and leaves no socket bound", async (t) => {
  const { send, receive } = await pairFiles(t);
  const open = () => {
    const port = randomBase();
    return Link.open({ nodeId: 1, peerNodeId: 2, primary: { bind: { host: "127.0.0.1", port }, peer: { host: "peer.example", port } }, storage: { send, receive, dsync: false }, timers: DEFAULT_TIMERS });
  };
  await refusedClean(t, open, ErrorCode.InvalidArgument);
});

test.serial("Link.open: a bad receive path leaves nothing behind", async (t) => {
  const { send, receive } = await pairFiles(t);
  const open = () => {
    const port = randomBase();
    return Link.open({ nodeId: 1, peerNodeId: 2, primary: { bind: { host: "127.0.0.1", port }, peer: { host: "127.0.0.1", port: port + 2 } }, storage: { send, receive: `${receive}.missing`, dsync: false }, timers: DEFAULT_TIMERS });
  };
  await refusedClean(t, open, ErrorCode.NotFound);
});

test.serial("a process whose ClusterNode.open failed on a bad peer key exits by itself", async (t) => {
  const file = await clusterFile(t);
  const child = spawn(process.execPath, ["--import=tsx", fileURLToPath(new URL("open-failure.child.ts", import.meta.url)), file, String(randomBase())], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exit = await new Promise<number | string>((resolve) => {
    // Generous: tsx compiles the child on a loaded host; a leaked writer or UDP thread keeps it alive for good.
    const limit = setTimeout(() => {
      child.kill("SIGKILL");
      resolve("still running after 60 s");
    }, 60_000);
    child.on("exit", (code) => {
      clearTimeout(limit);
      resolve(code ?? "killed");
    });
  });
  t.is(exit, 0, output);
  t.regex(output, /refused ERR_LUNLINK_BAD_KEY/);
});
