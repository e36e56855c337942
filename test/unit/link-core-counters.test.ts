// LinkCore at its edges, one node driven by hand with a fake clock: what each received message is
// counted as (malformed, stray, per path, delivered, too old), the payload bounds of a message inside a
// larger buffer, which paths data and control go on in each active state and what sendData answers,
// what a send the path refused is counted as, controlRoom only for an ack that released something,
// and the refusal log's rate limit at exactly REFUSAL_LOG_INTERVAL_MS (1000 ms).
import test from "ava";

import { encodeMessage, MessageKind, PathId, type MessageHeader } from "../../lib/link/message.ts";
import { DEFAULT_TIMERS, LinkCore, type LinkOutput } from "../../lib/link/paths.ts";
import { WINDOW_BITS } from "../../lib/link/window.ts";

const PEER = 1;
const PEER_SESSION = 9n;

interface Sent {
  path: PathId;
  kind: MessageKind;
  seq: bigint;
}

/** A core of node 2 and an output that records everything; `takes` says which paths accept a send. */
function node(takes: (path: PathId, kind: MessageKind) => boolean = () => true) {
  const core = new LinkCore(DEFAULT_TIMERS, { nodeId: 2, peerNodeId: PEER, session: 5n, controlRtoMs: 200 });
  const r = { sent: [] as Sent[], data: [] as [string, PathId][], control: [] as string[], rooms: 0, logs: [] as [string, Record<string, unknown>][] };
  const text = (payload: Uint8Array): string => new TextDecoder().decode(payload);
  const out: LinkOutput = {
    send: (path, header) => {
      if (!takes(path, header.kind)) return false;
      r.sent.push({ path, kind: header.kind, seq: header.seq });
      return true;
    },
    data: (payload, path) => r.data.push([text(payload), path]),
    control: (payload) => r.control.push(text(payload)),
    peerSession: () => undefined,
    controlRoom: () => r.rooms++,
    transition: () => undefined,
    log: (event, fields) => r.logs.push([event, fields]),
  };
  const message = (kind: MessageKind, seq: bigint, ack = 0n, payload = "", sender = PEER): Buffer =>
    encodeMessage({ kind, path: PathId.Primary, node: sender, session: PEER_SESSION, seq, ack } satisfies MessageHeader, new TextEncoder().encode(payload));
  const receive = (nowMs: number, path: PathId, bytes: Uint8Array): void => core.receive(nowMs, bytes, 0, bytes.length, path, out);
  /** Heartbeats both ways on `path` at `nowMs`, then a tick: the first healthy path becomes active at once. */
  const up = (nowMs: number, path: PathId): void => {
    core.heartbeat(path, out);
    receive(nowMs, path, message(MessageKind.Heartbeat, 1n, 1n));
    core.tick(nowMs, out);
  };
  return { core, r, out, message, receive, up };
}

test("received messages are counted by what they are: malformed, stray, per path, delivered, duplicate, too old", (t) => {
  const { core, r, message, receive } = node();
  receive(0, PathId.Primary, new Uint8Array(10));
  t.is(core.counters.malformed, 1, "shorter than a header");
  receive(0, PathId.Primary, message(MessageKind.Data, 1n, 0n, "stray", 7));
  t.is(core.counters.strays, 1, "another node's message");
  t.deepEqual(core.counters.received, { primary: 0, storage: 0 }, "neither is counted as received");
  t.deepEqual(r.data, []);

  receive(1, PathId.Storage, message(MessageKind.Data, 1n, 0n, "one"));
  receive(2, PathId.Primary, message(MessageKind.Data, 1n, 0n, "one"));
  receive(3, PathId.Primary, message(MessageKind.Data, BigInt(WINDOW_BITS) + 1n, 0n, "far"));
  receive(4, PathId.Storage, message(MessageKind.Data, 2n, 0n, "too old"));
  t.deepEqual(core.counters.received, { primary: 2, storage: 2 });
  t.deepEqual(r.data, [["one", PathId.Storage], ["far", PathId.Primary]]);
  t.deepEqual([core.counters.dataDelivered, core.counters.dataDuplicates, core.counters.dataTooOld], [2, 1, 1]);

  receive(5, PathId.Primary, message(MessageKind.Control, 1n, 0n, "c1"));
  receive(6, PathId.Primary, message(MessageKind.Control, 1n, 0n, "c1"));
  t.deepEqual(r.control, ["c1"]);
  t.is(core.counters.controlDelivered, 1, "a retransmitted control message is delivered and counted once");
});

test("a message inside a larger buffer: the payload ends where the message ends", (t) => {
  const { r, message, core, out } = node();
  const one = message(MessageKind.Data, 1n, 0n, "inner");
  const buffer = new Uint8Array(7 + one.length + 9).fill(0x2e);
  buffer.set(one, 7);
  core.receive(0, buffer, 7, one.length, PathId.Storage, out);
  t.deepEqual(r.data, [["inner", PathId.Storage]]);
});

test("sendData: numbered 1, 2, 3; on both paths while isolated, on the active one after; true if any path took it", (t) => {
  let primaryTakes = true;
  let storageTakes = true;
  const { core, r, out, up } = node((path) => (path === PathId.Primary ? primaryTakes : storageTakes));
  const payload = new TextEncoder().encode("d");
  t.is(core.paths.active, "isolated");
  t.true(core.sendData(0, payload, true, out));
  t.deepEqual(r.sent, [{ path: PathId.Primary, kind: MessageKind.Data, seq: 1n }, { path: PathId.Storage, kind: MessageKind.Data, seq: 1n }], "isolated: offered on both");
  primaryTakes = false;
  t.true(core.sendData(0, payload, true, out), "storage took it");
  primaryTakes = true;
  storageTakes = false;
  t.true(core.sendData(0, payload, true, out), "the primary took it");
  primaryTakes = false;
  t.false(core.sendData(0, payload, true, out), "no path took it");
  t.deepEqual(r.sent.map((s) => s.seq), [1n, 1n, 2n, 3n], "one number per message, taken or not");

  primaryTakes = storageTakes = true;
  up(10, PathId.Primary);
  t.is(core.paths.active, "primary");
  r.sent.length = 0;
  t.true(core.sendData(10, payload, true, out));
  t.deepEqual(r.sent, [{ path: PathId.Primary, kind: MessageKind.Data, seq: 5n }], "the primary only");
  primaryTakes = false;
  t.false(core.sendData(10, payload, true, out), "the only data path refused it");
});

test("sendData and control on storage only when storage is the active path", (t) => {
  const { core, r, out, up } = node();
  up(0, PathId.Storage);
  t.is(core.paths.active, "storage");
  r.sent.length = 0;
  t.true(core.sendData(0, Uint8Array.of(1), true, out));
  t.true(core.submitControl(0, Uint8Array.of(2), out));
  t.deepEqual(r.sent.map((s) => [s.path, s.kind]), [[PathId.Storage, MessageKind.Data], [PathId.Storage, MessageKind.Control]]);
});

test("control goes on the primary only while the primary is active", (t) => {
  const { core, r, out, up } = node();
  up(0, PathId.Primary);
  r.sent.length = 0;
  t.true(core.submitControl(0, Uint8Array.of(2), out));
  t.deepEqual(r.sent.map((s) => [s.path, s.kind]), [[PathId.Primary, MessageKind.Control]]);
});

test("sent counts what a path took; a refused data message on storage is counted as dropped, nothing else is", (t) => {
  let takes = true;
  const { core, out } = node(() => takes);
  core.sendData(0, Uint8Array.of(1), true, out); // isolated: both paths
  core.heartbeat(PathId.Storage, out);
  t.deepEqual(core.counters.sent, { primary: 1, storage: 2 });
  takes = false;
  core.sendData(0, Uint8Array.of(1), true, out);
  t.deepEqual(core.counters.sent, { primary: 1, storage: 2 }, "refused sends are not counted as sent");
  t.is(core.counters.dataDroppedStorage, 1, "the data storage refused (ring down or full), not the primary's");
  core.heartbeat(PathId.Storage, out);
  core.submitControl(0, Uint8Array.of(2), out);
  t.is(core.counters.dataDroppedStorage, 1, "a refused heartbeat or control message is no dropped data");
});

test("controlRoom: only when an ack released messages", (t) => {
  const { core, r, out, message, receive } = node();
  t.true(core.submitControl(0, Uint8Array.of(1), out));
  t.true(core.submitControl(0, Uint8Array.of(2), out));
  receive(1, PathId.Primary, message(MessageKind.ControlAck, 0n, 0n));
  t.is(r.rooms, 0, "ack 0 released nothing");
  receive(2, PathId.Primary, message(MessageKind.Control, 1n, 0n, "c"));
  t.is(r.rooms, 0, "a control message whose ack released nothing");
  receive(3, PathId.Primary, message(MessageKind.ControlAck, 0n, 1n));
  t.is(r.rooms, 1);
  t.is(core.controlOut.pending, 1);
});

test("refusals: each counted, each reason logged at most once per 1000 ms (again at exactly 1000 ms), with the sender and the total", (t) => {
  const { core, r, out } = node();
  for (const nowMs of [0, 999, 1000, 1999, 2000]) core.receiveSealed(nowMs, { ok: false, reason: "auth" }, "198.18.1.1:7410", out);
  core.receiveSealed(999, { ok: false, reason: "replay" }, "198.18.1.2:7410", out);
  core.receiveSealed(999, { ok: false, reason: "version" }, "198.18.1.3:7410", out);
  t.is(core.refused.authFailures, 5);
  // suppressed: how many the limiter held back since the last line of that reason (999 and 1999).
  const auth = (total: number, suppressed: number) => ["udp-refused", { from: "198.18.1.1:7410", reason: "authentication failed (forged, corrupted or another key)", total, suppressed }];
  t.deepEqual(r.logs, [
    auth(1, 0),
    auth(3, 1),
    auth(5, 1),
    ["udp-refused", { from: "198.18.1.2:7410", reason: "replayed or from an older session", total: 1, suppressed: 0 }],
    ["udp-refused", { from: "198.18.1.3:7410", reason: "not sealed although keys are configured (downgrade)", total: 1, suppressed: 0 }],
  ]);
});
