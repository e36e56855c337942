// The deterministic cluster simulation (test/unit/ring-cluster-simulation.test.ts): N nodes on one
// in-memory cluster volume, each with the real RingWriter on its own region and a real RingReader on
// every other region. Frames carry a destination (broadcast or one node); a reader keeps only its own
// and broadcast ones. Acks travel through the volume as in production: each node's writer puts its
// readers' acks in its status rows, and every writer learns its peers' acks by reading their status
// blocks (readPeerAcks). Faults, all from the seed: torn writes completed later, writer restarts and,
// with `crashes`, whole nodes that stop (writer and readers) and come back later: the others must
// release them after peerDownMs or their control records would hold every ring back forever.
// Everything is injected (fake clock, seeded entropy, in-memory volume), so one seed gives one run.
import { createHash } from "node:crypto";

import type { ClusterHeader } from "../../lib/format/cluster.ts";
import { FrameType, BROADCAST } from "../../lib/format/layout.ts";
import type { PeerRow } from "../../lib/format/status.ts";
import { formatCluster, openRegion, readPeerAcks, type PeerAck } from "../../lib/ring/cluster.ts";
import type { RegionVolume } from "../../lib/ring/region.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { FakeClock } from "./fake-clock.ts";
import { MemVolume } from "./memvolume.ts";
import { generator } from "./random.ts";

const B = 4096;
const REGION_BLOCKS = 48;
/** Bound on the final drain (steps of 1 fake ms). */
const DRAIN_STEPS = 20_000;
export const PEER_DOWN_MS = 200;
/** Bound on the fake-time steps (10 ms each) a close may take: past its 3 s closeTimeoutMs. */
const CLOSE_STEPS = 1000;

export interface ClusterSimOptions {
  nodes: number;
  steps: number;
  crashes: boolean;
}

export interface Frame {
  id: number;
  from: number;
  to: number;
  type: number;
}

function payloadFor(f: Frame): Uint8Array {
  const b = new Uint8Array(12 + (f.id % 19) * 41);
  const v = new DataView(b.buffer);
  v.setUint32(0, f.id, true);
  v.setUint8(4, f.from);
  v.setUint8(5, f.to);
  v.setUint8(6, f.type);
  for (let k = 12; k < b.length; k++) b[k] = (f.id * 131 + k) & 0xff;
  return b;
}

/** A formatted cluster image (UUIDs are random: reuse one image to compare bytes across runs). */
export async function clusterImage(nodes: number): Promise<{ store: Uint8Array; header: ClusterHeader }> {
  const volume = new MemVolume((2 + nodes * REGION_BLOCKS) * B);
  const { header } = await formatCluster(volume.asVolume(), { nodes: Array.from({ length: nodes }, (_, i) => i + 1), regionBlocks: BigInt(REGION_BLOCKS) });
  return { store: volume.store, header };
}

interface Node {
  id: number;
  region: RegionVolume;
  writer: RingWriter | undefined;
  readers: Map<number, RingReader>;
  pending: Promise<void> | undefined;
  peerAcks: PeerAck[];
  crashedAtMs: number | undefined;
  everCrashed: boolean;
}

export async function simulateCluster(seed: number, options: ClusterSimOptions, image?: { store: Uint8Array; header: ClusterHeader }) {
  const random = generator(seed);
  const salts = generator(seed ^ 0x5a17);
  const clock = new FakeClock();
  const { store, header } = image ?? (await clusterImage(options.nodes));
  const mem = new MemVolume(store.length);
  mem.store.set(store);
  const volume = mem.asVolume();
  const trace: string[] = [];
  const appended: Frame[] = [];
  /** What each node delivered, in order. */
  const delivered = new Map<number, Frame[]>();
  const problems: string[] = [];
  const faults = { torn: 0, restarts: 0, crashes: 0, rejoins: 0 };
  const released = { peersReleased: 0, peersReturned: 0 };
  const nodes: Node[] = [];
  for (const entry of header.regions) {
    const { view } = await openRegion(volume, header, entry.node);
    nodes.push({ id: entry.node, region: view, writer: undefined, readers: new Map(), pending: undefined, peerAcks: [], crashedAtMs: undefined, everCrashed: false });
    delivered.set(entry.node, []);
  }
  const byId = new Map(nodes.map((n) => [n.id, n]));

  const rowsOf = (node: Node): PeerRow[] =>
    nodes
      .filter((peer) => peer.id !== node.id)
      .map((peer) => {
        const ack = node.readers.get(peer.id)?.ack;
        return { node: peer.id, flags: 0, ackEpoch: ack?.epoch ?? 0n, ackSeq: ack?.seq ?? 0n, deliveredEpoch: 0n, deliveredSeq: 0n };
      });
  /** close() on the fake clock: time moves until it settles (it gives up at closeTimeoutMs, 3 s). */
  const closeWriter = async (writer: RingWriter): Promise<void> => {
    let closed = false;
    const closing = writer.close().then(() => (closed = true));
    for (let i = 0; i < CLOSE_STEPS && !closed; i++) await clock.advance(10);
    await closing;
  };
  const openWriter = async (node: Node): Promise<void> => {
    const w = await RingWriter.open(node.region.asVolume(), {
      nodeId: node.id,
      maxDelayMs: 0,
      maxRecordBlocks: 4,
      statusIntervalMs: 5,
      ownerCheckMs: 600_000,
      overwriteUnacked: false,
      peerDownMs: PEER_DOWN_MS,
      peerAcks: () => node.peerAcks,
      peerRows: () => rowsOf(node),
      clock,
      entropy: (n: number) => Uint8Array.from({ length: n }, () => Math.floor(salts() * 256)),
    });
    w.on("flush", (seq, blocks) => trace.push(`${node.id} record ${seq} ${blocks}`));
    w.on("peerReleased", (peer, isReleased) => {
      trace.push(`${node.id} ${isReleased ? "releases" : "holds again"} ${peer} at ${clock.nowMs()}`);
      if (isReleased) released.peersReleased++;
      else released.peersReturned++;
    });
    node.writer = w;
    trace.push(`${node.id} open epoch ${w.epoch} head ${w.headSeq}`);
  };
  const openReaders = async (node: Node): Promise<void> => {
    for (const peer of nodes) {
      if (peer.id === node.id) continue;
      node.readers.set(peer.id, await RingReader.open(peer.region.asVolume(), { nodeId: node.id, start: "head", damageTimeoutMs: 3_600_000 }));
    }
  };
  const visitFor = (node: Node) => (_seq: bigint, type: number, destination: number, bytes: Uint8Array, offset: number, length: number): void => {
    const v = new DataView(bytes.buffer, bytes.byteOffset + offset, Math.min(length, 12));
    const frame: Frame = { id: v.getUint32(0, true), from: v.getUint8(4), to: v.getUint8(5), type: v.getUint8(6) };
    const expected = payloadFor(frame);
    if (length !== expected.length || Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset + offset, length), expected) !== 0) problems.push(`node ${node.id}: garbage for id ${frame.id}`);
    if (destination !== frame.to) problems.push(`node ${node.id}: id ${frame.id} carried destination ${destination}, sent to ${frame.to}`);
    if (type !== frame.type) problems.push(`node ${node.id}: id ${frame.id} of type ${type}, sent as ${frame.type}`);
    if (destination !== BROADCAST && destination !== node.id) return; // another node's frame: skipped
    delivered.get(node.id)!.push(frame);
    trace.push(`${node.id} deliver ${frame.id}`);
  };
  const pollNode = async (node: Node): Promise<void> => {
    for (const [peer, reader] of node.readers) {
      const outcome = await reader.poll(visitFor(node));
      trace.push(`${node.id} poll ${peer} ${outcome} ${reader.seq}`);
    }
  };
  /** Every live writer learns its peers' acks and heartbeats from their status blocks on the volume. */
  const refreshAcks = async (): Promise<void> => {
    for (const node of nodes) {
      if (node.writer === undefined) continue;
      node.peerAcks = await readPeerAcks(volume, header, node.id);
      node.writer.peerAckChanged();
    }
  };

  for (const node of nodes) {
    await openWriter(node);
    await openReaders(node);
  }
  let nextId = 0;
  for (let step = 0; step < options.steps; step++) {
    await clock.advance(1);
    const node = nodes[Math.floor(random() * nodes.length)]!;
    const r = random();
    if (node.crashedAtMs !== undefined) {
      // A crashed node comes back after a while (a new writer epoch, readers from the head).
      if (r < 0.01 && clock.nowMs() - node.crashedAtMs > 2 * PEER_DOWN_MS) {
        node.crashedAtMs = undefined;
        await openWriter(node);
        await openReaders(node);
        faults.rejoins++;
        trace.push(`${node.id} rejoins`);
      }
    } else if (r < 0.4) {
      if (node.pending !== undefined) await pollNode(node);
      else {
        const count = 1 + Math.floor(random() * 4);
        for (let i = 0; i < count; i++) {
          const to = random() < 0.3 ? BROADCAST : nodes.filter((n) => n !== node)[Math.floor(random() * (nodes.length - 1))]!.id;
          const frame: Frame = { id: nextId, from: node.id, to, type: random() < 0.3 ? FrameType.Control : FrameType.Data };
          if (node.writer!.tryAppend(frame.type as FrameType, payloadFor(frame), to) !== "queued") break;
          nextId++;
          appended.push(frame);
        }
        const flushing: Promise<void> = node.writer!.flush().finally(() => {
          if (node.pending === flushing) node.pending = undefined;
        });
        node.pending = flushing;
      }
    } else if (r < 0.85) {
      await pollNode(node);
    } else if (r < 0.88) {
      mem.tearNextWriteAtSector = 1 + Math.floor(random() * 7);
      faults.torn++;
    } else if (r < 0.91) {
      mem.completeTornWrite();
    } else if (r < 0.94) {
      if (node.pending !== undefined) continue;
      mem.completeTornWrite();
      const report = await node.writer!.close();
      trace.push(`${node.id} close ${report.unflushedFrames}`);
      await openWriter(node);
      faults.restarts++;
    } else if (r < 0.95 && options.crashes) {
      // A whole node stops: its writer (nothing buffered) and its readers; at most N - 2 at once.
      if (node.pending !== undefined || nodes.filter((n) => n.crashedAtMs !== undefined).length >= nodes.length - 2) continue;
      mem.completeTornWrite();
      await node.writer!.close();
      node.writer = undefined;
      node.readers.clear();
      node.peerAcks = [];
      node.crashedAtMs = clock.nowMs();
      node.everCrashed = true;
      faults.crashes++;
      trace.push(`${node.id} crashes`);
    }
    await refreshAcks();
  }
  mem.completeTornWrite();
  if (options.crashes) {
    // The end: one node is down for good, and every other writer laps its ring twice with control
    // frames, which may not be overwritten unacked: only releasing the dead peer lets them through.
    const dead = nodes.find((n) => n.crashedAtMs !== undefined) ?? nodes[nodes.length - 1]!;
    if (dead.crashedAtMs === undefined) {
      await closeWriter(dead.writer!);
      dead.writer = undefined;
      dead.readers.clear();
      dead.crashedAtMs = clock.nowMs();
      dead.everCrashed = true;
      faults.crashes++;
      trace.push(`${dead.id} crashes for good`);
    }
    for (const node of nodes) {
      if (node.crashedAtMs !== undefined) continue;
      for (let k = 0; k < 2 * REGION_BLOCKS; k++) {
        const frame: Frame = { id: nextId++, from: node.id, to: BROADCAST, type: FrameType.Control };
        if (node.writer!.tryAppend(FrameType.Control, payloadFor(frame), BROADCAST) !== "queued") throw new Error("the final control frames did not queue");
        appended.push(frame);
      }
    }
  }
  // Drain: every live writer flushes, every live reader catches up with every live writer.
  const live = nodes.filter((n) => n.crashedAtMs === undefined);
  let flushed = 0;
  for (const node of live) void node.writer!.flush().then(() => flushed++);
  let drainSteps = 0;
  for (; drainSteps < DRAIN_STEPS; drainSteps++) {
    for (const node of live) await pollNode(node);
    await refreshAcks();
    const caughtUp = live.every((node) => [...node.readers].every(([peer, reader]) => byId.get(peer)!.writer === undefined || reader.seq >= byId.get(peer)!.writer!.headSeq));
    if (flushed === live.length && caughtUp) break;
    await clock.advance(1);
  }
  const drained = flushed === live.length;
  for (const node of live) await closeWriter(node.writer!);
  const imageHash = createHash("sha256").update(mem.store).digest("hex");
  const lost = nodes.reduce((sum, n) => sum + [...n.readers.values()].reduce((s, reader) => s + reader.counters.lost, 0n), 0n);
  return { appended, delivered, problems, faults, released, trace, imageHash, drained, drainSteps, lost, everCrashed: new Set(nodes.filter((n) => n.everCrashed).map((n) => n.id)) };
}
