// Mirrors per region (issue #14, docs/format.md "What version 2 does not yet do" item 5): node 2's
// region of a 3-node cluster volume is mirrored by every mirror mode (local copy, remote push/serve,
// a dd hook) onto a node volume and onto the same region of a cluster volume carrying the source's
// header, and a reader of each copy (node 1, as a cluster node opens a peer's ring) delivers every
// frame, also after the writer restarts (a new epoch). A destination of another cluster, and a cluster
// volume mirrored without naming a region, are refused by name.
import test, { type ExecutionContext } from "ava";
import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

import { ErrorCode, FrameType, LunlinkError, RingReader, RingWriter, Volume } from "../../lib/index.ts";
import { formatCluster, openCluster, ringOf } from "../../lib/ring/cluster.ts";
import { HookMirror } from "../../lib/mirror/hook.ts";
import { LocalMirror } from "../../lib/mirror/local.ts";
import { regionDestination, regionSource } from "../../lib/mirror/region.ts";
import { RemoteMirrorPusher } from "../../lib/mirror/remote-pusher.ts";
import { RemoteMirrorServer } from "../../lib/mirror/remote-server.ts";
import { mirrorFrame } from "../helpers/mirror-stream.ts";
import { scratchDir, sparseFileIn } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;
const B = 4096;
const CLUSTER_BYTES = 3 * MiB;
/** Frames per writer epoch: a few records of several blocks each, well inside a region's ring (no lap). */
const FRAMES_PER_EPOCH = 120;
/** Bound on a reader of a copy catching up with what was written. */
const DELIVER_TIMEOUT_MS = 20_000;

interface Rig {
  dir: string;
  cluster: Volume;
  /** A volume whose blocks 0 and V-1 hold the source's cluster header (its regions blank), as an array's copy of the LUN would. */
  headerCopy: Volume;
  /** A blank file of the region's size: the node volume copy. */
  nodeCopy: Volume;
  regionBytes: number;
  regionStartBytes: number;
}

async function rig(t: ExecutionContext): Promise<Rig> {
  const dir = await scratchDir(t);
  const cluster = await Volume.open(await sparseFileIn(dir, CLUSTER_BYTES, "cluster.img"), { dsync: true });
  const headerCopy = await Volume.open(await sparseFileIn(dir, CLUSTER_BYTES, "cluster-copy.img"), { dsync: true });
  t.teardown(async () => {
    await cluster.close();
    await headerCopy.close();
  });
  const { header } = await formatCluster(cluster, { nodes: [1, 2, 3] });
  const lastOffset = (header.volumeBlocks - 1n) * BigInt(B);
  // The header copies, as `dd` of blocks 0 and V-1 would make them.
  await headerCopy.write(0, await cluster.read(0, B));
  await headerCopy.write(lastOffset, await cluster.read(lastOffset, B));
  const entry = header.regions.find((r) => r.node === 2)!;
  const regionBytes = Number(entry.blocks) * B;
  const nodeCopy = await Volume.open(await sparseFileIn(dir, regionBytes, "node2-copy.img"), { dsync: true });
  t.teardown(() => nodeCopy.close());
  return { dir, cluster, headerCopy, nodeCopy, regionBytes, regionStartBytes: Number(entry.startBlock) * B };
}

/** Node 2's writer on its region (a new epoch each time), writing frames [from, from + count). */
async function writeEpoch(cluster: Volume, from: number, count: number, onOpen?: (w: RingWriter) => void): Promise<bigint> {
  const writer = await RingWriter.open(await ringOf(cluster, 2), { nodeId: 2, maxDelayMs: 1, maxRecordBlocks: 4 });
  onOpen?.(writer);
  for (let i = from; i < from + count; i++) await writer.append(FrameType.Data, mirrorFrame(i));
  await writer.flush();
  const epoch = writer.epoch;
  await writer.close();
  return epoch;
}

/** Node 1's reader of node 2's ring on a copy, as a cluster node opens a peer's ring (ringOf: the region of a cluster volume, checked, or the node volume). */
async function readerOf(copy: Volume): Promise<RingReader> {
  return RingReader.open(await ringOf(copy, 2), { nodeId: 1, peerNodeId: 2, start: "head" });
}

/** Polls until the reader delivered `want` frames (appended to `got`), checking each by content. */
async function deliver(reader: RingReader, got: number[], want: number): Promise<void> {
  const deadline = Date.now() + DELIVER_TIMEOUT_MS;
  while (got.length < want) {
    const r = await reader.poll((_seq, _type, _flags, bytes, offset, length) => {
      const frame = bytes.subarray(offset, offset + length);
      const i = new DataView(frame.buffer, frame.byteOffset).getUint32(0, true);
      if (Buffer.compare(frame, mirrorFrame(i)) !== 0) throw new Error(`frame ${i} corrupted on ${reader.volume.path}`);
      got.push(i);
    });
    if (r !== "waiting") continue;
    if (Date.now() > deadline) throw new Error(`${reader.volume.path}: ${got.length} of ${want} frames within ${DELIVER_TIMEOUT_MS} ms (epoch ${reader.epoch}, seq ${reader.seq}, lost ${reader.counters.lost})`);
    await sleep(2);
  }
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Starts a mirror and resolves after its first resync; rejects if it fails first (a configuration fault is not retried). */
function started(mirror: LocalMirror | RemoteMirrorPusher): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    mirror.once("resync", () => resolve());
    mirror.on("state", (change) => {
      if (change.health === "failed") reject(new Error(`${mirror.source.path}: mirror failed: ${change.detail}`));
    });
  });
  mirror.start();
  return done;
}

/** Both epochs through `copies`: their readers deliver every frame once, in order, and see the writer's restart. */
async function twoEpochs(t: ExecutionContext, r: Rig, copies: Volume[], restart?: (w: RingWriter) => void): Promise<void> {
  // A first epoch before the readers open, so each copy carries a superblock to open.
  const firstEpoch = await writeEpoch(r.cluster, 0, 0, restart);
  await sleep(50);
  const deadline = Date.now() + DELIVER_TIMEOUT_MS;
  const readers: RingReader[] = [];
  for (const copy of copies) {
    for (;;) {
      try {
        readers.push(await readerOf(copy));
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(20);
      }
    }
  }
  const got = copies.map((): number[] => []);
  const second = await writeEpoch(r.cluster, 0, FRAMES_PER_EPOCH, restart);
  for (const [i, reader] of readers.entries()) await deliver(reader, got[i]!, FRAMES_PER_EPOCH);
  const third = await writeEpoch(r.cluster, FRAMES_PER_EPOCH, FRAMES_PER_EPOCH, restart);
  t.true(firstEpoch < second && second < third, `a new epoch per writer open (${firstEpoch}, ${second}, ${third})`);
  for (const [i, reader] of readers.entries()) {
    await deliver(reader, got[i]!, 2 * FRAMES_PER_EPOCH);
    t.deepEqual(got[i], upTo(2 * FRAMES_PER_EPOCH), `${reader.volume.path}: every frame of both epochs once, in order`);
    t.is(reader.epoch, third, `${reader.volume.path}: the reader followed the writer into its new epoch`);
    t.true(reader.counters.epochChanges >= 1, `${reader.volume.path}: epoch change seen`);
  }
}

test("local copy of node 2's region onto a node volume and onto the same region of a header copy: readers deliver every frame, across a writer restart", async (t) => {
  const r = await rig(t);
  const { source, header } = await regionSource(r.cluster, 2);
  const mirrors: LocalMirror[] = [];
  for (const destination of [r.nodeCopy, await regionDestination(r.headerCopy, 2, header)]) {
    const mirror = await LocalMirror.open(source, destination, { statusCopyMs: 2, pollMinUs: 50, pollMaxMs: 2 });
    t.teardown(() => mirror.stop());
    await started(mirror);
    mirrors.push(mirror);
  }
  await twoEpochs(t, r, [r.nodeCopy, r.headerCopy]);
  for (const m of mirrors) t.true(m.counters.superblockCopies >= 2, `the new epochs' superblocks were copied (${m.counters.superblockCopies})`);
});

test("remote push of node 2's region, served onto the same region of a header copy: the reader delivers every frame, across a writer restart", async (t) => {
  const r = await rig(t);
  const { source } = await regionSource(r.cluster, 2);
  const server = await RemoteMirrorServer.listen(await regionDestination(r.headerCopy, 2), { host: "127.0.0.1", port: 0 });
  t.teardown(() => server.close());
  const pusher = await RemoteMirrorPusher.open(source, { host: "127.0.0.1", port: server.address.port, retryMinMs: 10, pollMaxMs: 2 });
  t.teardown(() => pusher.stop());
  await started(pusher);
  await twoEpochs(t, r, [r.headerCopy]);
});

test("a dd hook on node 2's region copies to the region's offset on a node volume (LUNLINK_DST_OFFSET): the reader delivers every frame, across a writer restart", async (t) => {
  const r = await rig(t);
  const dd =
    'dd if="$LUNLINK_SRC" of="$LUNLINK_DST" bs="$LUNLINK_BLOCK_SIZE" skip=$((LUNLINK_OFFSET / LUNLINK_BLOCK_SIZE)) seek=$((LUNLINK_DST_OFFSET / LUNLINK_BLOCK_SIZE)) count=$((LUNLINK_LENGTH / LUNLINK_BLOCK_SIZE)) iflag=direct oflag=direct,dsync conv=notrunc status=none';
  const hook = new HookMirror({ command: dd, source: r.cluster.path, destination: r.nodeCopy.path, blockBytes: B, sourceOffsetBytes: r.regionStartBytes, destinationOffsetBytes: 0 });
  t.teardown(() => hook.close());
  hook.markDirty(0, r.regionBytes); // the first full copy of the region, as a deployment's first sync
  await hook.sync();
  // A writer's open writes its new epoch's superblock before anyone can listen: the hook copies both
  // superblock copies of each new epoch (as a site's hook setup does on a writer start), then follows.
  const restart = (w: RingWriter): void => {
    hook.markDirty(0, B);
    hook.markDirty(r.regionBytes - B, B);
    hook.attach(w);
  };
  await twoEpochs(t, r, [r.nodeCopy], restart);
  await hook.sync();
  t.is(hook.counters.failures, 0);
});

test("a cluster volume is mirrored only by region, onto a copy of its own cluster: another cluster's volume and a node volume as source are refused by name", async (t) => {
  const r = await rig(t);
  const { header } = await regionSource(r.cluster, 2);
  const dir = await scratchDir(t);
  const other = await Volume.open(await sparseFileIn(dir, CLUSTER_BYTES, "other.img"), { dsync: true });
  t.teardown(() => other.close());
  await formatCluster(other, { nodes: [1, 2, 3] });
  const wrong = await t.throwsAsync(regionDestination(other, 2, header));
  t.is((wrong as LunlinkError).code, ErrorCode.WrongPair);
  t.regex(wrong!.message, /not a copy of cluster/);
  t.is(await regionDestination(r.nodeCopy, 2, header), r.nodeCopy, "a node volume (here blank) takes the region whole");
  const missing = await t.throwsAsync(regionDestination(r.headerCopy, 9, header));
  t.regex(missing!.message, /node 9 has no region/);
  const notCluster = await t.throwsAsync(regionSource(r.nodeCopy, 2));
  t.is((notCluster as LunlinkError).code, ErrorCode.InvalidArgument);
  t.is((await openCluster(r.headerCopy)).clusterUuid, header.clusterUuid);
});

const CLI = new URL("../helpers/lunlink-cli.ts", import.meta.url).pathname;

function lunlink(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import=tsx", CLI, ...args], { encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
    });
  });
}

test("CLI: mirror copy of a cluster volume needs --region; copy --region 2 onto a node volume, then status --region 2 says in-sync", async (t) => {
  const r = await rig(t);
  await writeEpoch(r.cluster, 0, 10);
  const [cluster, copy] = [r.cluster.path, r.nodeCopy.path];
  await r.nodeCopy.close(); // the CLI opens the destination exclusively
  const unnamed = await lunlink("mirror", "copy", cluster, copy);
  t.is(unnamed.code, 2, "a usage error");
  t.regex(unnamed.stderr, /ERR_LUNLINK_INVALID_ARGUMENT: --region must be the node whose region to mirror \(.*cluster\.img is a cluster volume\)/);
  const copied = await lunlink("mirror", "copy", cluster, copy, "--region", "2");
  t.is(copied.code, 0, copied.stderr);
  t.regex(copied.stdout, /^mirrored .*cluster\.img#node2 -> .*node2-copy\.img: \d+ blocks copied/);
  const status = await lunlink("mirror", "status", cluster, copy, "--region", "2", "--json");
  t.is(status.code, 0, status.stderr);
  t.like(JSON.parse(status.stdout), { state: "in-sync" });
});
