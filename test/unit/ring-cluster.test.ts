// Format version 2 (docs/format.md): cluster header and status rows against the spec, a cluster
// volume of N regions (format, open, each region a ring of its own, I/O bounded to its region), a v1
// volume refused with ERR_LUNLINK_FORMAT_VERSION, and the writer's per-peer flow control (every holding
// peer must ack a control record; a peer silent for peerDownMs is released, reported, and holds again
// once it moves).
import test from "ava";

import { CLUSTER_HEADER_BYTES, decodeClusterHeader, encodeClusterHeader, planRegions, type ClusterHeader } from "../../lib/format/cluster.ts";
import { AuthMode, FrameType } from "../../lib/format/layout.ts";
import { seal } from "../../lib/format/sealed.ts";
import { PEER_RELEASED, STATUS_BYTES, decodeStatus, encodeStatus, type PeerRow, type StatusBlock } from "../../lib/format/status.ts";
import { encodeSuperblock, type Superblock } from "../../lib/format/superblock.ts";
import { ErrorCode } from "../../lib/errors.ts";
import { formatCluster, openCluster, openRegion, peerAckOf, readPeerAcks } from "../../lib/ring/cluster.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { RingWriterCore, WriterState, type WriterAction, type WriterInput } from "../../lib/ring/writer-core.ts";
import { resolveOptions, type RingWriterOptions } from "../../lib/ring/writer-options.ts";
import { formatVolume, openSuperblock } from "../../lib/ring/superblocks.ts";
import { FakeClock } from "../helpers/fake-clock.ts";
import { acceptedFlips } from "../helpers/flips.ts";
import { MemVolume } from "../helpers/memvolume.ts";

const B = 4096;
const CLUSTER = "00000000-0000-4000-8000-00000000c1c1";

function header(nodes: number[], volumeBlocks = 200n): ClusterHeader {
  return { clusterUuid: CLUSTER, blockBytes: B, volumeBlocks, createdAtMs: 1n, regions: planRegions(nodes, volumeBlocks) };
}

test("cluster header: round trip, the spec's sizes, every single-bit flip refused, bad geometry named", (t) => {
  const h = header([3, 1, 7]);
  t.deepEqual(
    h.regions.map((r) => [r.node, r.startBlock, r.blocks]),
    [
      [3, 1n, 66n],
      [1, 67n, 66n],
      [7, 133n, 66n],
    ],
    "equal regions, back to back from block 1, floor((V - 2) / N) blocks each",
  );
  const out = new Uint8Array(B);
  encodeClusterHeader(h, out);
  t.is(CLUSTER_HEADER_BYTES, 464);
  t.deepEqual([...out.subarray(0, 4)], [0x4c, 0x4c, 0x43, 0x4c], 'magic "LLCL"');
  t.deepEqual(decodeClusterHeader(out), { ok: true, header: h });
  t.is(acceptedFlips(out, CLUSTER_HEADER_BYTES, (b) => decodeClusterHeader(b).ok), 0);
  const resealed = (edit: (v: DataView) => void) => {
    const copy = out.slice();
    edit(new DataView(copy.buffer));
    seal(copy, 432);
    return decodeClusterHeader(copy);
  };
  t.like(resealed((v) => v.setUint16(4, 1, true)), { ok: false, reason: "version" });
  t.like(resealed((v) => v.setUint32(48 + 24, 3, true)), { ok: false, reason: "geometry", detail: "node id 3 names two regions" });
  t.like(resealed((v) => v.setBigUint64(48 + 24 + 8, 68n, true)), { ok: false, reason: "geometry", detail: "region 1 starts at block 68, expected 67" });
  t.like(resealed((v) => v.setUint32(48, 256, true)), { ok: false, reason: "geometry", detail: "region 0: node id 256 is not in 1..255" });
  t.like(resealed((v) => v.setBigUint64(32, 199n, true)), { ok: false, reason: "geometry" }, "regions past the last header copy");
  t.like(decodeClusterHeader(new Uint8Array(B)), { ok: false, reason: "blank" });
});

function status(over: Partial<StatusBlock> = {}): StatusBlock {
  return { slot: 1, volumeUuid: CLUSTER, epoch: 3n, generation: 9n, headSeq: 40n, headBlock: 5n, oldestSeq: 2n, ackEpoch: 0n, ackSeq: 0n, heartbeat: 77n, deliveredEpoch: 0n, deliveredSeq: 0n, wallClockMs: 5n, ...over };
}

test("status block v2: a pair's single row, and a cluster's 15 rows round trip; bad rows refused", (t) => {
  const out = new Uint8Array(B);
  const pair = status({ ackEpoch: 2n, ackSeq: 30n, deliveredEpoch: 2n, deliveredSeq: 29n });
  encodeStatus(pair, out);
  t.is(STATUS_BYTES, 720);
  t.deepEqual(decodeStatus(out), { ok: true, status: pair }, "no peers: the pair's row (node 0) is the pair fields");
  t.is(new DataView(out.buffer).getUint16(80, true), 1);
  const peers: PeerRow[] = Array.from({ length: 15 }, (_, j) => ({ node: j + 2, flags: j % 2 === 0 ? PEER_RELEASED : 0, ackEpoch: 1n, ackSeq: BigInt(100 + j), deliveredEpoch: 1n, deliveredSeq: BigInt(99 + j) }));
  const cluster = status({ peers, ackEpoch: 1n, ackSeq: 100n, deliveredEpoch: 1n, deliveredSeq: 99n });
  encodeStatus(cluster, out);
  t.deepEqual(decodeStatus(out), { ok: true, status: cluster }, "row 0 is also in the pair fields");
  t.is(acceptedFlips(out, STATUS_BYTES, (b) => decodeStatus(b).ok), 0);
  t.throws(() => encodeStatus(status({ peers: [...peers, { ...peers[0]!, node: 40 }] }), out), { message: /16 rows, expected 1..15/ });
  t.throws(() => encodeStatus(status({ peers: [peers[0]!, peers[0]!] }), out), { message: /node 2 twice/ });
  t.throws(() => encodeStatus(status({ peers: [{ ...peers[0]!, node: 0 }, peers[1]!] }), out), { message: /node 0/ });
  t.deepEqual(peerAckOf(4, cluster, 3), { node: 4, ack: { epoch: 1n, seq: 101n }, heartbeat: 77n }, "peer 4's row about node 3");
  t.deepEqual(peerAckOf(4, undefined, 3), { node: 4, ack: undefined, heartbeat: 0n });
});

test("a cluster volume of 3 regions: formatted, opened; each region a ring of its own, read by the others", async (t) => {
  const mem = new MemVolume(300 * B);
  const volume = mem.asVolume();
  const formatted = await formatCluster(volume, { nodes: [1, 2, 3] });
  t.is(formatted.header.regions.length, 3);
  t.deepEqual(formatted.superblocks.map((s) => [s.writerNode, s.peerNode, s.region?.regionIndex, s.pairUuid]), [
    [1, 0, 0, formatted.header.clusterUuid],
    [2, 0, 1, formatted.header.clusterUuid],
    [3, 0, 2, formatted.header.clusterUuid],
  ]);
  const opened = await openCluster(volume);
  t.deepEqual(opened, formatted.header);
  await t.throwsAsync(openSuperblock(volume), { code: ErrorCode.NotFormatted, message: /is a cluster volume/ });
  await t.throwsAsync(formatCluster(volume, { nodes: [1, 2] }), { code: ErrorCode.AlreadyFormatted });
  await t.throwsAsync(openRegion(volume, opened, 9), { code: ErrorCode.BadConfig, message: /node 9 is not a member/ });

  // Node 2 writes its region; nodes 1 and 3 read it; the other regions are untouched.
  const regions = await Promise.all([1, 2, 3].map(async (node) => (await openRegion(volume, opened, node)).view));
  const before = [regions[0]!, regions[2]!].map((r) => r.read(0, Number(opened.regions[0]!.blocks) * B));
  const beforeBytes = await Promise.all(before);
  const clock = new FakeClock();
  const writer = await RingWriter.open(regions[1]!.asVolume(), { nodeId: 2, clock, maxDelayMs: 0 });
  const readers = await Promise.all([1, 3].map((node) => RingReader.open(regions[1]!.asVolume(), { nodeId: node, start: "oldest" })));
  const sent = ["to everyone", "to node 3"];
  t.is(writer.tryAppend(FrameType.Data, new TextEncoder().encode(sent[0]), 0), "queued");
  t.is(writer.tryAppend(FrameType.Data, new TextEncoder().encode(sent[1]), 3), "queued");
  const flushed = writer.flush();
  for (let i = 0; i < 20; i++) await clock.advance(1);
  await flushed;
  for (const [i, reader] of readers.entries()) {
    const got: { text: string; destination: number }[] = [];
    await reader.poll((_seq, _type, flags, bytes, offset, length) => got.push({ text: new TextDecoder().decode(bytes.subarray(offset, offset + length)), destination: flags }));
    t.deepEqual(got, [
      { text: sent[0]!, destination: 0 },
      { text: sent[1]!, destination: 3 },
    ], `node ${[1, 3][i]} reads node 2's ring, destinations included`);
  }
  const writeClose = writer.close();
  for (let i = 0; i < 20; i++) await clock.advance(10);
  await writeClose;
  const after = await Promise.all([regions[0]!, regions[2]!].map((r) => r.read(0, Number(opened.regions[0]!.blocks) * B)));
  t.deepEqual(after, beforeBytes, "node 2's writer touched no other region");
  await t.throwsAsync(regions[0]!.read(Number(opened.regions[0]!.blocks) * B, B), { code: ErrorCode.OutOfRange }, "a region view refuses I/O past its end");
  // Peer acks: each other region's status row about node 2 (none acked yet: fresh statuses).
  t.deepEqual((await readPeerAcks(volume, opened, 2)).map((a) => a.node), [1, 3]);
});

test("a region whose superblock does not match the header's entry is never used as that node's ring", async (t) => {
  const mem = new MemVolume(200 * B);
  const volume = mem.asVolume();
  const { header: h } = await formatCluster(volume, { nodes: [1, 2] });
  // Copy region 0 over region 1: a valid ring, in the wrong place.
  const blocks = Number(h.regions[0]!.blocks);
  mem.store.copyWithin(Number(h.regions[1]!.startBlock) * B, Number(h.regions[0]!.startBlock) * B, (Number(h.regions[0]!.startBlock) + blocks) * B);
  await t.throwsAsync(openRegion(volume, h, 2), { code: ErrorCode.SuperblockConflict, message: /does not match the cluster header/ });
  t.truthy(await openRegion(volume, h, 1));
});

test("a version 1 volume is refused with ERR_LUNLINK_FORMAT_VERSION naming the version and the advice", async (t) => {
  const mem = new MemVolume(64 * B);
  const volume = mem.asVolume();
  const { superblock } = await formatVolume(volume, { writerNode: 1, peerNode: 2 });
  // Rewrite both copies as version 1 wrote them: version 1, the check at 152.
  const v1 = new Uint8Array(B);
  encodeSuperblock(superblock, v1);
  new DataView(v1.buffer).setUint16(4, 1, true);
  new DataView(v1.buffer).setUint16(6, 184, true);
  v1.fill(0, 152, 200);
  seal(v1, 152);
  mem.store.set(v1, 0);
  mem.store.set(v1, 63 * B);
  const refused = { code: ErrorCode.FormatVersion, message: /format version 1; this lunlink reads version 2.*run lunlink format --force/ };
  await t.throwsAsync(openSuperblock(volume), refused);
  await t.throwsAsync(RingWriter.open(volume, { nodeId: 1 }), refused);
  await t.throwsAsync(RingReader.open(volume, { nodeId: 2 }), refused);
  // The advice works: format --force continues above the old ring's sequences.
  const again = await formatVolume(volume, { writerNode: 1, peerNode: 2, force: true });
  t.true(again.superblock.epochStartSeq >= 1n);
});

// --- per-peer flow control (RingWriterCore, fake time) --------------------------------------------

function clusterCore(options: Partial<RingWriterOptions> = {}): RingWriterCore {
  const superblock: Superblock = {
    volumeUuid: "00000000-0000-4000-8000-000000000001",
    pairUuid: CLUSTER,
    writerNode: 1,
    peerNode: 0,
    blockBytes: B,
    volumeBlocks: 20n,
    ringStartBlock: 3n,
    ringBlocks: 16n,
    epoch: 2n,
    epochStartSeq: 1n,
    epochStartBlock: 0n,
    authMode: AuthMode.None,
    keyId: 0,
    salt: new Uint8Array(32),
    createdAtMs: 0n,
    region: { nodeCount: 3, regionIndex: 0, regionStartBlock: 1n },
  };
  return new RingWriterCore({
    superblock,
    keys: undefined,
    options: resolveOptions({ nodeId: 1, maxDelayMs: 2, flushThresholdBytes: 1 << 20, statusIntervalMs: 1000, ownerCheckMs: 600_000, ackPollMs: 50, ...options }),
    nowMs: 0,
    seq: 1n,
    headBlock: 0,
    oldestAtOpen: 0n,
    existing: [],
    delivered: undefined,
    alloc: (n) => new Uint8Array(n),
    entropy: (n) => new Uint8Array(n),
  });
}

function drive(core: RingWriterCore, nowMs: number, over: Partial<WriterInput>): WriterAction[] {
  const actions: WriterAction[] = [];
  for (let i = 0; i < 100; i++) {
    const action = core.next(nowMs, { wallMs: 0, peerAck: undefined, localAck: undefined, delivered: undefined, roomWanted: false, ...over });
    actions.push(action);
    if (action.kind === "sleep" || action.kind === "stop") return actions;
    core.completed(nowMs);
  }
  throw new Error("the core never slept");
}
const wrote = (actions: WriterAction[]) => actions.some((a) => a.kind === "write" && a.what === "record");

test("per peer: a control record waits until every holding peer acked it; a silent peer is released after peerDownMs, reported, and holds again once it moves", (t) => {
  const core = clusterCore({ peerDownMs: 1000 });
  const peers = (ack3: bigint | undefined, heartbeat3: bigint, heartbeat2: bigint) => ({
    peerAcks: [
      { node: 2, ack: { epoch: 2n, seq: 4n }, heartbeat: heartbeat2 },
      { node: 3, ack: ack3 === undefined ? undefined : { epoch: 2n, seq: ack3 }, heartbeat: heartbeat3 },
    ],
    peerRows: [
      { node: 2, flags: 0, ackEpoch: 0n, ackSeq: 0n, deliveredEpoch: 0n, deliveredSeq: 0n },
      { node: 3, flags: 0, ackEpoch: 0n, ackSeq: 0n, deliveredEpoch: 0n, deliveredSeq: 0n },
    ],
  });
  let now = 0;
  drive(core, now, peers(undefined, 1n, 1n));
  for (let i = 0; i < 4; i++) {
    now += 10;
    core.append(now, FrameType.Control, new Uint8Array(15_000), 0); // 4 blocks: four fill the 16-block ring
    t.true(wrote(drive(core, now + 2, peers(undefined, 1n, 1n + BigInt(i)))));
  }
  now += 10;
  core.append(now, FrameType.Control, new Uint8Array(100), 0);
  // Node 2 acked everything, node 3 nothing: the fifth record waits.
  t.false(wrote(drive(core, now + 2, peers(undefined, 1n, 10n))));
  t.is(core.state, WriterState.AwaitingAck);
  // Node 3 still alive (heartbeat moving) past peerDownMs: it keeps holding the ring back.
  for (const [i, at] of [500, 1100, 1700].entries()) t.false(wrote(drive(core, at, peers(undefined, 2n + BigInt(i), 11n + BigInt(i)))), `alive at ${at} ms`);
  t.is(core.counters.peersReleased, 0);
  // Node 3 silent for peerDownMs: released, reported once, the record goes out.
  const released = drive(core, 2800, peers(undefined, 4n, 20n));
  t.true(wrote(released));
  t.is(core.counters.peersReleased, 1);
  t.deepEqual(core.peerEvents.splice(0), [{ node: 3, released: true }]);
  t.deepEqual(core.releasedPeers, [3]);
  // The status row says so.
  now = 4000;
  const status = drive(core, now, peers(undefined, 4n, 21n)).find((a) => a.kind === "write" && a.what === "status");
  const decoded = status?.kind === "write" ? decodeStatus(status.bytes) : undefined;
  t.deepEqual(decoded?.ok === true ? decoded.status.peers?.map((r) => [r.node, r.flags]) : undefined, [
    [2, 0],
    [3, PEER_RELEASED],
  ]);
  // Node 3's heartbeat moves: it holds the ring again (counted), and control waits for it once more.
  drive(core, 4100, peers(undefined, 5n, 22n));
  t.is(core.counters.peersReturned, 1);
  t.deepEqual(core.peerEvents.splice(0), [{ node: 3, released: false }]);
  t.deepEqual(core.releasedPeers, []);
});

test("per peer: without peerDownMs (default 0) a dead peer is never released (the pair's version 1 rule)", (t) => {
  const core = clusterCore();
  const input = { peerAcks: [{ node: 2, ack: undefined, heartbeat: 1n }] };
  drive(core, 0, input);
  for (let i = 0; i < 4; i++) {
    core.append(10 * i, FrameType.Control, new Uint8Array(15_000), 0);
    drive(core, 10 * i + 2, input);
  }
  core.append(50, FrameType.Control, new Uint8Array(100), 0);
  t.false(wrote(drive(core, 100_000, input)));
  t.is(core.state, WriterState.AwaitingAck);
  t.is(core.counters.peersReleased, 0);
});
