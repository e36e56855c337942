// ReaderCursor, the RingReader's position and delivery state as a pure object: tables of moves,
// accepted outcomes, start plans and epoch adoptions, each checked against the expected position,
// counters, damage timer and high-water mark. No volume, no clock.
import test from "ava";

import { AuthMode, RecordKind } from "../../lib/format/layout.ts";
import type { RecordHeader } from "../../lib/format/record.ts";
import type { Superblock } from "../../lib/format/superblock.ts";
import { ReaderCursor, type CursorCounters } from "../../lib/ring/reader-cursor.ts";

const RING_BLOCKS = 16;

function superblock(epoch: bigint, epochStartSeq: bigint, epochStartBlock: bigint): Superblock {
  return {
    volumeUuid: "00000000-0000-4000-8000-000000000001",
    pairUuid: "00000000-0000-4000-8000-000000000002",
    writerNode: 2,
    peerNode: 1,
    blockBytes: 4096,
    volumeBlocks: BigInt(RING_BLOCKS + 4),
    ringStartBlock: 3n,
    ringBlocks: BigInt(RING_BLOCKS),
    epoch,
    epochStartSeq,
    epochStartBlock,
    authMode: AuthMode.None,
    keyId: 0,
    salt: new Uint8Array(32),
    createdAtMs: 0n,
  };
}

function cursor(notBefore?: { epoch: bigint; seq: bigint }): { c: ReaderCursor; counters: CursorCounters } {
  const counters: CursorCounters = { lost: 0n, epochChanges: 0, pads: 0, records: 0 };
  return { c: new ReaderCursor(superblock(3n, 10n, 4n), 500, notBefore, counters), counters };
}

function header(kind: RecordKind, blockCount: number, epoch = 3n): RecordHeader {
  return { kind, flags: 0, epoch, seq: 0n, blockCount, payloadBytes: 0, frameCount: 0, timestampMs: 0n };
}

test("a new cursor stands at the superblock's epoch start, acks the seq before it, and has delivered notBefore", (t) => {
  const { c } = cursor({ epoch: 2n, seq: 7n });
  t.deepEqual([c.epoch, c.seq, c.block], [3n, 10n, 4]);
  t.deepEqual(c.ack, { epoch: 3n, seq: 9n });
  t.deepEqual(c.delivered, { epoch: 2n, seq: 7n });
  t.like(c.state, { epoch: 3n, seq: 10n, block: 4, ringBlocks: RING_BLOCKS, epochStartSeq: 10n, epochStartBlock: 4, damageTimeoutMs: 500, invalidSinceMs: undefined });
  t.deepEqual(cursor().c.delivered, { epoch: 0n, seq: 0n });
});

const MOVES: { name: string; to: { seq: bigint; block: number; lost?: bigint }; block: number; lost: bigint }[] = [
  { name: "inside the ring", to: { seq: 12n, block: 9 }, block: 9, lost: 0n },
  { name: "the last block", to: { seq: 12n, block: RING_BLOCKS - 1 }, block: RING_BLOCKS - 1, lost: 0n },
  { name: "exactly the ring end wraps", to: { seq: 12n, block: RING_BLOCKS }, block: 0, lost: 0n },
  { name: "past the ring end wraps", to: { seq: 12n, block: RING_BLOCKS + 3 }, block: 0, lost: 0n },
  { name: "a skip counts what it skipped as lost", to: { seq: 15n, block: 2, lost: 5n }, block: 2, lost: 5n },
];

for (const row of MOVES) {
  test(`moveTo: ${row.name}; the damage timer restarts`, (t) => {
    const { c, counters } = cursor();
    c.invalidSinceMs = 1234;
    c.moveTo(row.to);
    t.deepEqual([c.seq, c.block, c.invalidSinceMs, counters.lost], [row.to.seq, row.block, undefined, row.lost]);
  });
}

test("moveTo: lost accumulates over moves", (t) => {
  const { c, counters } = cursor();
  c.moveTo({ seq: 12n, block: 5, lost: 2n });
  c.moveTo({ seq: 20n, block: 6, lost: 8n });
  t.is(counters.lost, 10n);
});

const OUTCOMES: { outcome: "delivered" | "pad" | "refused" | "damaged"; kind: RecordKind; blocks: number; antiReplay: boolean; records: number; pads: number; highWater: bigint; block: number }[] = [
  { outcome: "delivered", kind: RecordKind.Batch, blocks: 3, antiReplay: true, records: 1, pads: 0, highWater: 10n, block: 7 },
  { outcome: "delivered", kind: RecordKind.Batch, blocks: 3, antiReplay: false, records: 1, pads: 0, highWater: 0n, block: 7 },
  { outcome: "pad", kind: RecordKind.Pad, blocks: 1, antiReplay: true, records: 0, pads: 1, highWater: 0n, block: 0 },
  { outcome: "refused", kind: RecordKind.Batch, blocks: 2, antiReplay: true, records: 0, pads: 0, highWater: 0n, block: 6 },
  { outcome: "damaged", kind: RecordKind.Batch, blocks: 2, antiReplay: true, records: 0, pads: 0, highWater: 0n, block: 6 },
];

for (const row of OUTCOMES) {
  test(`pass: ${row.outcome}${row.antiReplay ? " (anti-replay)" : ""} counts ${row.records} record(s), ${row.pads} pad(s), high-water ${row.highWater}, next block ${row.block}`, (t) => {
    const { c, counters } = cursor();
    c.pass(header(row.kind, row.blocks), row.outcome, row.antiReplay);
    t.deepEqual([counters.records, counters.pads, c.delivered.seq, c.seq, c.block, counters.lost], [row.records, row.pads, row.highWater, 11n, row.block, 0n]);
    if (row.highWater > 0n) t.deepEqual(c.delivered, { epoch: 3n, seq: 10n });
  });
}

test("pass: a record that ends at the ring end continues at block 0", (t) => {
  const { c } = cursor();
  c.moveTo({ seq: 10n, block: RING_BLOCKS - 2 });
  c.pass(header(RecordKind.Batch, 2), "delivered", false);
  t.deepEqual([c.seq, c.block], [11n, 0]);
});

test("stale: data of records strictly below the drop floor is stale; at the floor it is not", (t) => {
  const { c } = cursor();
  t.false(c.stale(1n), "no restart: nothing is stale");
  c.start({ seek: 10n, dropDataBelow: 15n }, undefined, undefined);
  t.deepEqual([c.stale(14n), c.stale(15n), c.stale(16n)], [true, false, false]);
});

const STARTS: { name: string; plan: Parameters<ReaderCursor["start"]>[0]; highest?: bigint; found?: { seq: bigint; block: number }; seq: bigint; block: number; lost: bigint; dropBelow: bigint }[] = [
  { name: "no plan (head unknown): the epoch start", plan: {}, seq: 10n, block: 4, lost: 0n, dropBelow: 0n },
  { name: "at the status head", plan: { at: { seq: 30n, block: 11 } }, seq: 30n, block: 11, lost: 0n, dropBelow: 0n },
  { name: "seek found its seq", plan: { seek: 20n }, found: { seq: 20n, block: 8 }, seq: 20n, block: 8, lost: 0n, dropBelow: 0n },
  { name: "seek found a later record: the gap is lost", plan: { seek: 20n }, found: { seq: 23n, block: 12 }, seq: 23n, block: 12, lost: 3n, dropBelow: 0n },
  { name: "seek found nothing: the seq, here", plan: { seek: 20n }, seq: 20n, block: 4, lost: 0n, dropBelow: 0n },
  { name: "after an ack, keyless: data below the highest stamp + 1 is stale", plan: { seek: 6n, dropDataBelow: "stamps" }, highest: 41n, found: { seq: 6n, block: 1 }, seq: 6n, block: 1, lost: 0n, dropBelow: 42n },
  { name: "after an ack, keyed: data below the status head is stale", plan: { seek: 6n, dropDataBelow: 33n }, found: { seq: 6n, block: 1 }, seq: 6n, block: 1, lost: 0n, dropBelow: 33n },
];

for (const row of STARTS) {
  test(`start: ${row.name}`, (t) => {
    const { c, counters } = cursor();
    c.start(row.plan, row.highest, row.found);
    t.deepEqual([c.seq, c.block, counters.lost, c.dropDataBelowSeq], [row.seq, row.block, row.lost, row.dropBelow]);
  });
}

test("start: a plan that drops below the stamps without a stamp scan is an assertion", (t) => {
  t.throws(() => cursor().c.start({ seek: 1n, dropDataBelow: "stamps" }, undefined, undefined), { message: /assertion failed/ });
});

test("adopt: a newer epoch is followed, counted, and its epoch start is judged by the new superblock", (t) => {
  const { c, counters } = cursor();
  c.moveTo({ seq: 12n, block: 7 });
  c.invalidSinceMs = 99;
  c.adopt(superblock(4n, 12n, 9n), { seq: 12n, block: 9 });
  t.deepEqual([c.epoch, c.seq, c.block, c.invalidSinceMs, counters.epochChanges], [4n, 12n, 9, undefined, 1]);
  t.like(c.state, { epoch: 4n, epochStartSeq: 12n, epochStartBlock: 9 });
  t.deepEqual(c.ack, { epoch: 4n, seq: 11n });
});

test("adopt without a jump keeps the position (and the damage timer): the older epoch's records are still read in order", (t) => {
  const { c, counters } = cursor();
  c.moveTo({ seq: 12n, block: 7 });
  c.invalidSinceMs = 99;
  c.adopt(superblock(4n, 20n, 13n), undefined);
  t.deepEqual([c.epoch, c.seq, c.block, c.invalidSinceMs, counters.epochChanges], [4n, 12n, 7, 99, 1]);
});
