// Record codec properties: round trip, every single-bit flip rejected, every truncation rejected.
import test from "ava";
import fc from "fast-check";

import { FrameType, MAX_FRAME_BYTES, RecordFlag, RecordKind, payloadCapacity } from "../../lib/format/layout.ts";
import { RecordBuilder, checkBody, checkFirstBlock, encodePad, forEachFrame, type RecordHeader } from "../../lib/format/record.ts";
import { newUuid, uuidBytes } from "../../lib/format/uuid.ts";
import { acceptedFlips } from "../helpers/flips.ts";
import { logSeed, SEED } from "../helpers/random.ts";

const UUID = uuidBytes(newUuid());

test.before(async () => {
});

interface Frame {
  type: number;
  flags: number;
  bytes: Uint8Array;
}

const frameArb = fc.record({
  type: fc.constantFrom(FrameType.Heartbeat, FrameType.Control, FrameType.Data),
  flags: fc.integer({ min: 0, max: 255 }),
  bytes: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 900, maxLength: 1100 }), fc.uint8Array({ minLength: 8900, maxLength: 9100 })),
});

function build(blockBytes: number, maxBlocks: number, frames: Frame[], seq: bigint) {
  const buffer = new Uint8Array(maxBlocks * blockBytes).fill(0xee); // stale garbage must not leak into the record
  const builder = new RecordBuilder(buffer, blockBytes, maxBlocks);
  const accepted: Frame[] = [];
  for (const f of frames) {
    if (!builder.append(f.type, f.flags, f.bytes, f.type === FrameType.Control)) break;
    accepted.push(f);
  }
  const blocks = builder.finish({ volumeUuid: UUID, epoch: 3n, seq, timestampMs: 1_700_000_000_000n });
  return { buffer, blocks, accepted };
}

function validate(record: Uint8Array, blockBytes: number, seq: bigint): { ok: true; header: RecordHeader } | { ok: false; why: string } {
  const first = checkFirstBlock(record, blockBytes, seq, UUID);
  if (first.kind !== "header") return { ok: false, why: first.kind };
  if (record.length < first.header.blockCount * blockBytes) return { ok: false, why: "short" };
  const body = checkBody(record, blockBytes, first.header);
  if (body.kind !== "valid") return { ok: false, why: body.kind };
  return { ok: true, header: first.header };
}

function framesOf(record: Uint8Array, blockBytes: number, header: RecordHeader): Frame[] | string {
  const out: Frame[] = [];
  const problem = forEachFrame(record, blockBytes, header, new Uint8Array(MAX_FRAME_BYTES), (type, flags, bytes, offset, length) => {
    out.push({ type, flags, bytes: bytes.slice(offset, offset + length) });
  });
  return problem ?? out;
}

test("frames round-trip through records of any size, straddling stamps", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(fc.constantFrom(4096, 8192), fc.integer({ min: 1, max: 24 }), fc.array(frameArb, { maxLength: 40 }), fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }), (blockBytes, maxBlocks, frames, seq) => {
      const { buffer, blocks, accepted } = build(blockBytes, maxBlocks, frames, seq);
      const result = validate(buffer, blockBytes, seq);
      if (!result.ok) return false;
      const h = result.header;
      const expectedBytes = accepted.reduce((n, f) => n + 4 + f.bytes.length, 0);
      if (h.blockCount !== blocks || h.frameCount !== accepted.length || h.payloadBytes !== expectedBytes || h.epoch !== 3n || h.seq !== seq) return false;
      if (h.kind !== RecordKind.Batch) return false;
      if (((h.flags & RecordFlag.NoOverwrite) !== 0) !== accepted.some((f) => f.type === FrameType.Control)) return false;
      const back = framesOf(buffer, blockBytes, h);
      if (typeof back === "string") return false;
      return back.length === accepted.length && back.every((f, i) => f.type === accepted[i]!.type && f.flags === accepted[i]!.flags && Buffer.compare(f.bytes, accepted[i]!.bytes) === 0);
    }),
    { numRuns: 300, seed: SEED },
  );
  t.pass();
});

test("a full record refuses the frame that does not fit and stays valid", (t) => {
  const blockBytes = 4096;
  const buffer = new Uint8Array(2 * blockBytes);
  const builder = new RecordBuilder(buffer, blockBytes, 2);
  const capacity = payloadCapacity(blockBytes, 2);
  t.true(builder.append(FrameType.Data, 0, new Uint8Array(capacity - 4)));
  t.false(builder.append(FrameType.Data, 0, new Uint8Array(0)));
  t.is(builder.finish({ volumeUuid: UUID, epoch: 1n, seq: 9n, timestampMs: 0n }), 2);
  t.true(validate(buffer, blockBytes, 9n).ok);
});

test("every single-bit flip in a record is rejected (exhaustive over 1- and 2-block records)", (t) => {
  for (const frames of [
    [{ type: FrameType.Data, flags: 0, bytes: new Uint8Array(100).fill(7) }],
    [
      { type: FrameType.Control, flags: 1, bytes: new Uint8Array(3000).fill(1) },
      { type: FrameType.Heartbeat, flags: 0, bytes: new Uint8Array(2000).fill(2) },
    ],
  ]) {
    const { buffer, blocks } = build(4096, 4, frames, 77n);
    const record = buffer.subarray(0, blocks * 4096);
    t.true(validate(record, 4096, 77n).ok);
    const accepted = acceptedFlips(record, record.length, (b) => validate(b, 4096, 77n).ok);
    t.is(accepted, 0, `${blocks}-block record: ${accepted} flipped copies validated`);
  }
});

test("every truncation of a record is rejected (sector-granular and random cut points)", (t) => {
  const blockBytes = 4096;
  const frames = Array.from({ length: 6 }, (_, i) => ({ type: FrameType.Data, flags: 0, bytes: new Uint8Array(2500).fill(i + 1) }));
  const older = build(blockBytes, 8, frames.slice(0, 5).map((f) => ({ ...f, bytes: f.bytes.map((b) => b ^ 0x55) })), 40n);
  const { buffer, blocks } = build(blockBytes, 8, frames, 41n);
  const total = blocks * blockBytes;
  t.true(blocks >= 3);
  const cuts = new Set<number>();
  for (let c = 512; c < total; c += 512) cuts.add(c); // 512e devices and mirrors tear at sectors
  for (let c = 1; c < total; c += 97) cuts.add(c);
  let checked = 0;
  for (const background of [new Uint8Array(total), new Uint8Array(total).fill(0xff), older.buffer.subarray(0, total)]) {
    for (const cut of cuts) {
      const torn = new Uint8Array(background.length);
      torn.set(background);
      torn.set(buffer.subarray(0, cut), 0);
      // A cut inside the zeroed tail over a zero background leaves the very same bytes: not a truncation.
      if (Buffer.compare(torn.subarray(0, total), buffer.subarray(0, total)) === 0) continue;
      checked++;
      const result = validate(torn, blockBytes, 41n);
      t.false(result.ok, `cut at ${cut} validated`);
    }
  }
  t.true(checked > cuts.size * 2, `${checked} distinct truncations checked`);
});

test("stamps classify what the reader finds at its expected position", (t) => {
  const { buffer } = build(4096, 2, [{ type: FrameType.Data, flags: 0, bytes: new Uint8Array(10) }], 100n);
  t.deepEqual(checkFirstBlock(buffer, 4096, 101n, UUID), { kind: "older", seq: 100n });
  t.deepEqual(checkFirstBlock(buffer, 4096, 99n, UUID), { kind: "newer", seq: 100n });
  t.deepEqual(checkFirstBlock(new Uint8Array(4096), 4096, 1n, UUID), { kind: "empty" });
  const other = uuidBytes(newUuid());
  t.is(checkFirstBlock(buffer, 4096, 100n, other).kind, "foreign");
});

test("a later block from a newer lap is reported as an overrun, an older one as torn", (t) => {
  const frames = [{ type: FrameType.Data, flags: 0, bytes: new Uint8Array(6000).fill(3) }];
  const { buffer } = build(4096, 2, frames, 50n);
  const newer = build(4096, 2, frames, 60n).buffer;
  const mixed = buffer.slice();
  mixed.set(newer.subarray(4096, 8192), 4096);
  const first = checkFirstBlock(mixed, 4096, 50n, UUID);
  if (first.kind !== "header") return t.fail(first.kind);
  t.deepEqual(checkBody(mixed, 4096, first.header), { kind: "newer", seq: 60n, blockIndex: 1 });
  const stale = build(4096, 2, frames, 40n).buffer;
  mixed.set(stale.subarray(4096, 8192), 4096);
  t.is(checkBody(mixed, 4096, first.header).kind, "torn");
});

test("pad records are one block with no payload", (t) => {
  const buffer = new Uint8Array(4096).fill(9);
  encodePad(buffer, 4096, { volumeUuid: UUID, epoch: 2n, seq: 5n, timestampMs: 0n });
  const result = validate(buffer, 4096, 5n);
  if (!result.ok) return t.fail(result.why);
  t.is(result.header.kind, RecordKind.Pad);
  t.is(result.header.frameCount, 0);
  t.is(result.header.blockCount, 1);
});
