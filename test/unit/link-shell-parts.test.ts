// The Link shell's pure parts: the delivery batch (its two bounds at exactly their limits, one
// scheduled flush per batch, the payload layout), the waiting control calls (call order, admitted
// while the window takes them, the bound, rejection at close), and the status and counters
// projection on a fake `now` (ages, null for never heard / not up, strings for 64-bit values).
import test from "ava";

import { ControlWaiting, MAX_CONTROL_WAITING } from "../../lib/link/control-waiting.ts";
import { DELIVERY_BATCH_BYTES, DELIVERY_BATCH_PACKETS, DeliveryBatch } from "../../lib/link/delivery-batch.ts";
import { linkCounters, linkStatus, pathStatus, type StorageView } from "../../lib/link/link-status.ts";
import { DEFAULT_TIMERS, LinkCore } from "../../lib/link/paths.ts";
import { newReaderCounters } from "../../lib/ring/reader-api.ts";
import type { RingWriterCounters } from "../../lib/ring/writer.ts";

test("DeliveryBatch: payloads back to back with their lengths; one flush scheduled per batch; take empties it", (t) => {
  const batch = new DeliveryBatch();
  t.true(batch.push(new Uint8Array([1, 2, 3]), false), "the first payload schedules a flush");
  t.false(batch.push(new Uint8Array([4, 5]), true), "already scheduled");
  t.deepEqual([...batch.bytes.subarray(0, 5)], [1, 2, 3, 4, 5]);
  t.deepEqual([...batch.lengths.subarray(0, 2)], [3, 2]);
  t.deepEqual([...batch.framed.subarray(0, 2)], [0, 1], "each payload's framed flag");
  t.is(batch.take(), 2);
  t.is(batch.take(), 0, "taken: empty");
  t.true(batch.push(new Uint8Array([9]), false), "after a take the next payload schedules again");
  t.is(batch.bytes[0], 9, "a new batch starts at the buffer's start");
});

test("DeliveryBatch: exactly DELIVERY_BATCH_PACKETS payloads fit, not one more", (t) => {
  const batch = new DeliveryBatch();
  const one = new Uint8Array(1);
  for (let i = 0; i < DELIVERY_BATCH_PACKETS - 1; i++) batch.push(one, false);
  t.true(batch.fits(1));
  batch.push(one, false);
  t.false(batch.fits(0));
  t.throws(() => batch.push(one, false), { message: /assertion failed/ });
  t.is(batch.take(), DELIVERY_BATCH_PACKETS);
});

test("DeliveryBatch: exactly DELIVERY_BATCH_BYTES fit, not one byte more", (t) => {
  const batch = new DeliveryBatch();
  const chunk = new Uint8Array(DELIVERY_BATCH_BYTES / 4);
  for (let i = 0; i < 3; i++) batch.push(chunk, false);
  t.true(batch.fits(chunk.length));
  t.false(batch.fits(chunk.length + 1));
  batch.push(chunk, false);
  t.false(batch.fits(1));
  t.true(batch.fits(0), "full to the byte: an empty payload still fits (4 of 256 packets)");
});

test("ControlWaiting: admitted in call order while the window takes them; a copy of each payload", (t) => {
  const waiting = new ControlWaiting();
  const log: string[] = [];
  const payloads = ["a", "b", "c"].map((s) => new TextEncoder().encode(s));
  for (const [i, p] of payloads.entries()) waiting.add(p, () => log.push(`resolved ${i}`), () => log.push(`rejected ${i}`));
  payloads[0]![0] = 0x7a; // the caller reuses its buffer: the queued copy is unchanged
  let room = 2;
  const submitted: string[] = [];
  waiting.admit((p) => {
    if (room === 0) return false;
    room--;
    submitted.push(new TextDecoder().decode(p));
    return true;
  });
  t.deepEqual(submitted, ["a", "b"]);
  t.deepEqual(log, ["resolved 0", "resolved 1"]);
  t.is(waiting.length, 1);
  waiting.rejectAll(new Error("closed"));
  t.deepEqual(log, ["resolved 0", "resolved 1", "rejected 2"]);
  t.is(waiting.length, 0);
});

test("ControlWaiting: at most MAX_CONTROL_WAITING calls wait", (t) => {
  const waiting = new ControlWaiting();
  const noop = (): void => undefined;
  for (let i = 0; i < MAX_CONTROL_WAITING; i++) t.true(waiting.add(new Uint8Array(1), noop, noop));
  t.false(waiting.add(new Uint8Array(1), noop, noop));
  t.is(waiting.length, MAX_CONTROL_WAITING);
});

const PATHS: { name: string; lastHeardMs: number; upSinceMs: number; heard: number | null; up: number | null }[] = [
  { name: "never heard, not up", lastHeardMs: Number.NEGATIVE_INFINITY, upSinceMs: Number.NaN, heard: null, up: null },
  { name: "heard, not up", lastHeardMs: 900.4, upSinceMs: Number.NaN, heard: 100, up: null },
  { name: "heard and up", lastHeardMs: 999, upSinceMs: 250, heard: 1, up: 750 },
  { name: "up since now", lastHeardMs: 1000, upSinceMs: 1000, heard: 0, up: 0 },
];

for (const row of PATHS) {
  test(`pathStatus at 1000 ms: ${row.name}`, (t) => {
    const p = { state: "up", reason: "rx", lastHeardMs: row.lastHeardMs, upSinceMs: row.upSinceMs } as Parameters<typeof pathStatus>[1];
    t.deepEqual(pathStatus(1000, p), { state: "up", reason: "rx", lastHeardAgoMs: row.heard, upForMs: row.up });
  });
}

function core(): LinkCore {
  return new LinkCore(DEFAULT_TIMERS, { nodeId: 2, peerNodeId: 1, session: 5n, controlRtoMs: 200 });
}

const udp = () => ({
  data: { datagramsIn: 10, batchesIn: 2, datagramsOut: 7, sendDrops: 0, sendCalls: 3 },
  control: { datagramsIn: 5, batchesIn: 4, datagramsOut: 6, sendDrops: 1, sendCalls: 6 },
});

test("linkCounters: the UDP batches summed over both sockets; copies that share nothing with the core", (t) => {
  const c = core();
  const counters = linkCounters(c, udp(), 3);
  t.deepEqual(counters.udpBatches, { sendCalls: 9, datagramsOut: 13, receiveBatches: 6, datagramsIn: 15 });
  t.like(counters, { udpSendErrors: 3, controlRetransmits: 0, controlDuplicates: 0, authFailures: 0 });
  counters.sent.primary = 99;
  counters.received.storage = 99;
  t.deepEqual([c.counters.sent.primary, c.counters.received.storage], [0, 0]);
});

test("linkStatus: ids, the core's path state, the ring's 64-bit values as strings (no peer ack: null), copied transitions", (t) => {
  const c = core();
  const storage: StorageView = {
    report: { state: "up" } as StorageView["report"],
    headSeq: 2n ** 60n,
    peerAck: undefined,
    lagRecords: 4n,
    queuedBytes: 512,
    writerCounters: { records: 3 } as RingWriterCounters,
    readerCounters: { ...newReaderCounters(), lost: 7n },
    drained: true,
  };
  const status = linkStatus(1000, { nodeId: 2, peerNodeId: 1 }, c, storage, linkCounters(c, udp(), 0), { p50: 1, p99: 2, max: 3 });
  t.like(status, { node: 2, peer: 1, active: c.paths.active, controlPending: 0, failovers: 0, eventLoopDelayMs: { p50: 1, p99: 2, max: 3 } });
  t.deepEqual(status.ring, { headSeq: "1152921504606846976", peerAckSeq: null, receiveLagRecords: "4", writerQueuedBytes: 512, writerCounters: storage.writerCounters, readerCounters: { ...newReaderCounters(), lost: "7" } });
  t.deepEqual(status.paths.primary, { state: c.paths.primary.state, reason: c.paths.primary.reason, lastHeardAgoMs: null, upForMs: null });
  t.not(status.transitions, c.paths.transitions);
  t.is(linkStatus(1000, { nodeId: 2, peerNodeId: 1 }, c, { ...storage, peerAck: { epoch: 1n, seq: 41n } }, status.counters, status.eventLoopDelayMs).ring.peerAckSeq, "41");
});

test("linkStatus dataOn: where data sent now goes, as the send decides it (isolated both, storage while a failback drains an unacked ring)", (t) => {
  const c = core();
  const storage = { report: { state: "up" }, headSeq: 1n, peerAck: undefined, lagRecords: 0n, queuedBytes: 0, writerCounters: {}, readerCounters: { ...newReaderCounters(), lost: 0n } } as unknown as StorageView;
  const dataOn = (drained: boolean) => linkStatus(1000, { nodeId: 2, peerNodeId: 1 }, c, { ...storage, drained }, linkCounters(c, udp(), 0), { p50: 0, p99: 0, max: 0 }).dataOn;
  t.is(dataOn(true), "both", "isolated: offered on both");
  c.paths.active = "storage";
  t.is(dataOn(true), "storage");
  c.paths.active = "primary";
  c.paths.drainUntilMs = 1500; // a failback at 1000 drains until 1500
  t.is(dataOn(false), "storage", "failback drain: the ring holds records the peer has not acked");
  t.is(dataOn(true), "primary", "drain over once the peer acked the ring");
  c.paths.drainUntilMs = 900;
  t.is(dataOn(false), "primary", "drain over after failbackDrainMs");
});
