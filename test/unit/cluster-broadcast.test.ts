// A cluster broadcast (issue #14): the sending node numbers it once for every peer (message kind 5,
// its own sequence beside each pair's data sequence), sends one UDP datagram per peer on the primary
// and ONE ring frame with destination 0 if any peer's data goes on storage; each receiver delivers it
// once per sender whichever path brings it. The core's rules with a fake clock (no I/O), then four
// ClusterNodes in one process on loopback UDP and one cluster volume file: node 1 reaches 2 on the
// primary and 3 and 4 only over storage; node 2 reaches every peer on the primary.
import { randomBytes } from "node:crypto";
import test, { type ExecutionContext } from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { Volume } from "../../lib/io/volume.ts";
import { decodeHeader, encodeMessage, MessageKind, PathId, RING_FRAME_TYPE, type MessageHeader } from "../../lib/link/message.ts";
import { dataOn } from "../../lib/link/link-status.ts";
import { DEFAULT_TIMERS, LinkCore, type LinkOutput } from "../../lib/link/paths.ts";
import { ClusterNode, type ClusterMemberOptions } from "../../lib/node/cluster-node.ts";
import { openRing } from "../../lib/node/cluster-storage.ts";
import { formatCluster } from "../../lib/ring/cluster.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { ipv4Packet as ipv4 } from "../helpers/ipv4.ts";
import { sparseFile } from "../helpers/scratch.ts";
import { pollUntil } from "../helpers/until.ts";

/** A core's effects, recorded: what it sent (decoded headers) and what it delivered. */
function recorder(): { out: LinkOutput; sent: MessageHeader[]; delivered: { text: string; path: PathId }[] } {
  const sent: MessageHeader[] = [];
  const delivered: { text: string; path: PathId }[] = [];
  const out: LinkOutput = {
    send: (_path, header) => {
      sent.push({ ...header });
      return true;
    },
    data: (payload, path) => delivered.push({ text: Buffer.from(payload).toString("utf8"), path }),
    control: () => undefined,
    peerSession: () => undefined,
    controlRoom: () => undefined,
    transition: () => undefined,
    log: () => undefined,
  };
  return { out, sent, delivered };
}

const message = (header: Omit<MessageHeader, "path">, path: PathId, text: string): Buffer => encodeMessage({ ...header, path }, Buffer.from(text));

test("message kind 5 (broadcast) round-trips and rides a data frame; kind 6 is still refused", (t) => {
  const bytes = encodeMessage({ kind: MessageKind.Broadcast, path: PathId.Storage, node: 7, session: 9n << 16n, seq: 12n, ack: 0n }, Buffer.from("x"));
  const d = decodeHeader(bytes, 0, bytes.length);
  t.true(d.ok && d.header.kind === MessageKind.Broadcast && d.header.seq === 12n && d.header.node === 7);
  t.is(RING_FRAME_TYPE[MessageKind.Broadcast], FrameType.Data);
  const bad = Buffer.from(bytes);
  bad[1] = 6;
  t.deepEqual(decodeHeader(bad, 0, bad.length), { ok: false, reason: "kind" });
});

test("core: a broadcast is delivered once per sender session whichever path brings it, in a window apart from the pair's data", (t) => {
  const receiver = new LinkCore(DEFAULT_TIMERS, { nodeId: 2, peerNodeId: 1, session: 5n << 16n, controlRtoMs: 200 });
  const r = recorder();
  const session = 3n << 16n;
  const from1 = (kind: MessageKind, seq: bigint, path: PathId, text: string, s = session) => {
    const bytes = message({ kind, node: 1, session: s, seq, ack: 0n }, path, text);
    receiver.receive(0, bytes, 0, bytes.length, path, r.out);
  };
  from1(MessageKind.Broadcast, 1n, PathId.Primary, "b1");
  from1(MessageKind.Broadcast, 1n, PathId.Storage, "b1"); // the ring frame, after the UDP copy
  from1(MessageKind.Broadcast, 2n, PathId.Storage, "b2"); // the ring frame first ...
  from1(MessageKind.Broadcast, 2n, PathId.Primary, "b2"); // ... then the UDP copy
  from1(MessageKind.Data, 1n, PathId.Primary, "d1"); // the pair's data seq 1 is not broadcast seq 1
  from1(MessageKind.Broadcast, 3n, PathId.Primary, "b3");
  t.deepEqual(r.delivered, [
    { text: "b1", path: PathId.Primary },
    { text: "b2", path: PathId.Storage },
    { text: "d1", path: PathId.Primary },
    { text: "b3", path: PathId.Primary },
  ]);
  t.is(receiver.counters.dataDuplicates, 2, "both second copies counted as duplicates");
  // The sender restarted: its broadcasts start at 1 again, a new window; the old session's are stale.
  from1(MessageKind.Broadcast, 1n, PathId.Storage, "b1 after restart", session + (1n << 16n));
  from1(MessageKind.Broadcast, 4n, PathId.Primary, "late from the old session");
  t.deepEqual(r.delivered.slice(4).map((d) => d.text), ["b1 after restart"]);
  t.is(receiver.counters.staleSession, 1);
});

test("core: a peer's copy of a broadcast goes on the paths its data goes on, with the node's seq and ack 0", (t) => {
  const sender = new LinkCore(DEFAULT_TIMERS, { nodeId: 1, peerNodeId: 2, session: 3n << 16n, controlRtoMs: 200 });
  const r = recorder();
  // A new link is isolated (nothing heard): data, and so a broadcast, is offered on both paths.
  t.true(sender.sendBroadcast(0, 41n, Buffer.from("b"), true, r.out));
  t.deepEqual(
    r.sent.map((h) => [h.kind, h.path, h.node, h.seq, h.ack]),
    [
      [MessageKind.Broadcast, PathId.Primary, 1, 41n, 0n],
      [MessageKind.Broadcast, PathId.Storage, 1, 41n, 0n],
    ],
  );
  t.true(sender.sendData(0, Buffer.from("d"), true, r.out));
  t.deepEqual(r.sent.slice(2).map((h) => [h.kind, h.seq]), [[MessageKind.Data, 1n], [MessageKind.Data, 1n]], "the pair's data sequence is untouched by broadcasts");
  t.throws(() => sender.sendBroadcast(0, 0n, Buffer.from("b"), true, r.out), { message: /assertion failed/ });
});

// Timers generous enough that a loaded machine does not make a healthy primary suspect (which would put
// data, and broadcasts, on storage too): the counts below are exact.
const TIMERS = {
  primary: { heartbeatMs: 20, suspectMs: 5000, downMs: 10_000 },
  storage: { heartbeatMs: 20, suspectMs: 5000, downMs: 10_000 },
  holdDownMs: 200,
  selfPauseMs: 60_000,
  failbackDrainMs: 200,
};
const NODES = [1, 2, 3, 4];
/** Pairs whose primary is cut: node 1 reaches 3 and 4 only over storage. */
const CUT = new Set(["1-3", "1-4"]);
const cut = (a: number, b: number): boolean => CUT.has(`${Math.min(a, b)}-${Math.max(a, b)}`);

interface Running {
  id: number;
  node: ClusterNode;
  received: string[];
}

const waitUntil = (what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> => pollUntil(what, check, timeoutMs, 20);

async function fourNodes(t: ExecutionContext, file: string): Promise<Running[]> {
  const base = 30_000 + Math.floor(Math.random() * 5_000) * 4;
  const member = (node: number, viewer: number): ClusterMemberOptions => ({
    node,
    address: `198.18.100.${node}`,
    // A cut pair sends each other's datagrams to ports nobody binds.
    primary: { host: "127.0.0.1", port: cut(node, viewer) ? base + 100 + 2 * node : base + 2 * (node - 1) },
    ring: file,
  });
  const running: Running[] = [];
  for (const id of NODES) {
    const received: string[] = [];
    const node = await ClusterNode.open({
      nodeId: id,
      subnet: `198.18.100.${id}/24`,
      members: NODES.map((n) => member(n, id)),
      storage: { dsync: false, pollMaxMs: 2, peerDownMs: 30_000, damageTimeoutMs: 1000 },
      timers: TIMERS,
    });
    t.teardown(() => node.close());
    node.onDataBatch((payloads, lengths, count) => {
      let at = 0;
      for (let i = 0; i < count; i++) {
        received.push(Buffer.from(payloads.subarray(at + 20, at + lengths[i]!)).toString("utf8"));
        at += lengths[i]!;
      }
    });
    running.push({ id, node, received });
  }
  return running;
}

test("four nodes: a broadcast to 3 peers, two on storage, is one ring frame (destination 0) and reaches each peer once; with every peer on the primary, no ring frame", async (t) => {
  const file = await sparseFile(t, 16 * 1024 * 1024, "cluster.img");
  const volume = await Volume.open(file);
  await formatCluster(volume, { nodes: NODES });
  await volume.close();
  const nodes = await fourNodes(t, file);
  const [n1, n2, n3, n4] = nodes as [Running, Running, Running, Running];
  // Active is not enough: after its failback a pair's data (and broadcasts) go on the ring alone for
  // up to failbackDrainMs while the ring holds a record the peer has not acked, and every storage
  // heartbeat (20 ms here) or broadcast ring frame is one (dataPaths). Asked as if the ring were never
  // drained, data goes on the expected path alone only once every drain window is over.
  const dataOnNow = (r: Running, peer: number) => dataOn(r.node.peer(peer)!.core.paths.dataPaths(performance.now(), false));
  const ready = () =>
    NODES.every((a) => NODES.every((b) => a === b || dataOnNow(nodes[a - 1]!, b) === (cut(a, b) ? "storage" : "primary"))) &&
    n2.node.peer(1)!.core.paths.storage.state === "up";
  const what = "1 <-> 2 on the primary, 1 <-> 3 and 1 <-> 4 on storage, 2 <-> every peer on the primary, each with data on that path alone";
  await waitUntil(what, ready);
  // Node 1's ring, read as node 2 reads it, from its head now: which frames the broadcasts add.
  const ring = await RingReader.open(await openRing(file, 1, { readOnly: true }), { nodeId: 2, peerNodeId: 1, start: "head" });
  t.teardown(() => ring.volume.close());
  await waitUntil(what, ready); // again after the open's I/O: the broadcasts below go in the turn of this check
  const tag = randomBytes(4).toString("hex");
  const count = 10;
  const broadcast = (from: Running, i: number) => {
    const packet = ipv4(`198.18.100.${from.id}`, i % 2 === 0 ? "198.18.100.255" : "224.0.0.18", Buffer.from(`${tag} from ${from.id} ${i}`));
    return from.node.sendBatch(packet, Uint32Array.of(packet.length), 1);
  };
  for (let i = 0; i < count; i++) t.is(broadcast(n1, i), 1);
  for (let i = 0; i < count; i++) t.is(broadcast(n2, i), 1);
  const expected = (from: number) => Array.from({ length: count }, (_, i) => `${tag} from ${from} ${i}`);
  const only = (r: Running, from: number) => r.received.filter((s) => s.startsWith(`${tag} from ${from} `));
  // Node 2 also reads node 1's ring: each of node 1's broadcasts reaches it by UDP and by the ring frame.
  const duplicates = () => n2.node.peer(1)!.core.counters.dataDuplicates;
  await waitUntil("every broadcast delivered, and the ring copies read by node 2", () => [n2, n3, n4].every((r) => only(r, 1).length >= count) && [n1, n3, n4].every((r) => only(r, 2).length >= count) && duplicates() >= count).catch((error: unknown) => {
    t.log(JSON.stringify(nodes.map((r) => ({ received: r.received.length, status: r.node.status() })), (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v), 1).slice(0, 20_000));
    throw error;
  });
  await new Promise((resolve) => setTimeout(resolve, 300)); // late duplicates would show up here
  for (const r of [n2, n3, n4]) t.deepEqual(only(r, 1).sort(), expected(1).sort(), `node ${r.id} got each of node 1's broadcasts once`);
  for (const r of [n1, n3, n4]) t.deepEqual(only(r, 2).sort(), expected(2).sort(), `node ${r.id} got each of node 2's broadcasts once`);
  t.is(duplicates(), count, "node 2 dropped exactly one copy of each of node 1's broadcasts (the UDP copy and the ring frame both arrived)");
  t.is(n1.node.routeCounters.broadcastRingFrames, count, "one ring frame per broadcast for node 1's two peers on storage");
  t.is(n2.node.routeCounters.broadcastRingFrames, 0, "no ring frame while every peer of node 2 is on the primary");
  t.is(n1.node.routeCounters.broadcasts, count);
  // What node 1's ring holds: the broadcasts' data frames, each once, for everyone; none addressed to one peer.
  const frames: { type: number; destination: number; text: string }[] = [];
  const data = () => frames.filter((f) => f.type === FrameType.Data);
  const deadline = Date.now() + 10_000;
  // Up to the broadcasts' frames, then on to the head (a second copy would follow them there).
  for (let seenHead = false; !(seenHead && data().length >= count) && Date.now() < deadline; ) {
    const outcome = await ring.poll((_seq, type, flags, bytes, offset, length) => {
      const d = decodeHeader(bytes, offset, length);
      frames.push({ type, destination: flags, text: d.ok ? Buffer.from(bytes.subarray(d.payloadOffset + 20, offset + length)).toString("utf8") : "" });
    });
    seenHead = outcome === "waiting";
    if (seenHead) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.deepEqual(data().map((f) => f.destination), Array.from({ length: count }, () => 0), "every data frame is a broadcast frame (destination 0)");
  t.deepEqual(data().map((f) => f.text), expected(1), "one frame per broadcast, in order");
});
