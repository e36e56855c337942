// The on-disk codecs at their edges. Bit flips (the other format tests) are caught by the CRCs before
// any field check runs, so here fields are forged under a recomputed CRC, as a writer bug or a
// keyless forger would: every bound of the record header, the superblock geometry and the status slot
// is hit exactly at and one past its limit. Known answers computed independently from docs/format.md
// (HKDF labels, the record AEAD's nonce and associated data, the HMAC check area) pin what a round
// trip cannot, since a symmetric change would still round-trip.
import { createCipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import test from "ava";

import { bodyCheck, bodyCheckMatches, crc32c, crc32cFrom } from "../../lib/format/checksum.ts";
import { deriveKey, KEY_BYTES } from "../../lib/format/kdf.ts";
import {
  AuthMode,
  blocksForPayload,
  FrameType,
  isValidBlockSize,
  MAX_FRAME_BYTES,
  MAX_RECORD_BLOCKS,
  MIN_RING_BLOCKS,
  MIN_VOLUME_BLOCKS,
  payloadCapacity,
  RING_START_BLOCK,
  RecordFlag,
  RecordKind,
  STATUS_MAGIC,
  STATUS_SLOT_BLOCKS,
} from "../../lib/format/layout.ts";
import { RecordCipher } from "../../lib/format/record-cipher.ts";
import { addonAead } from "../../lib/io/aead.ts";
import { checkBody, checkFirstBlock, encodePad, forEachFrame, readRecordStart, readStamp, RecordBuilder, type RecordHeader } from "../../lib/format/record.ts";
import { CHECK_BYTES, isSealProblem, seal, unseal } from "../../lib/format/sealed.ts";
import { decodeStatus, encodeStatus, pickStatus, STATUS_BYTES, type StatusDecode } from "../../lib/format/status.ts";
import { decodeSuperblock, encodeSuperblock, geometryProblem, SUPERBLOCK_BYTES, type Superblock } from "../../lib/format/superblock.ts";
import { isUuid, newUuid, readUuid, uuidBytes, uuidEquals, writeUuid } from "../../lib/format/uuid.ts";
import { statusFixture, superblockFixture } from "../helpers/blocks.ts";

const B = 4096;
const UUID_TEXT = newUuid();
const UUID = uuidBytes(UUID_TEXT);
const HEADER_CRC_AT = 92;

test.before(async () => {
});

// --- helpers -------------------------------------------------------------------------------------

/** A record of `frames` (payload lengths) at seq, in a buffer of maxBlocks blocks. */
function record(frames: number[], seq = 10n, maxBlocks = 4, blockBytes = B) {
  const buffer = new Uint8Array(maxBlocks * blockBytes).fill(0xee);
  const builder = new RecordBuilder(buffer, blockBytes, maxBlocks);
  frames.forEach((length, i) => {
    if (!builder.append(FrameType.Data, i & 0xff, new Uint8Array(length).fill(i + 1))) throw new Error(`frame ${i} does not fit`);
  });
  const blocks = builder.finish({ volumeUuid: UUID, epoch: 3n, seq, timestampMs: 1_700_000_000_123n });
  return { buffer, blocks };
}

/** Rewrites header fields of block 0 and recomputes the header CRC (a forgery the CRC cannot see). */
function forge(buffer: Uint8Array, edit: (v: DataView) => void): Uint8Array {
  const copy = buffer.slice();
  const v = new DataView(copy.buffer, copy.byteOffset, copy.byteLength);
  edit(v);
  v.setUint32(HEADER_CRC_AT, crc32c(copy, 0, HEADER_CRC_AT), true);
  return copy;
}

function firstKind(block: Uint8Array, seq = 10n): string {
  const verdict = checkFirstBlock(block, B, seq, UUID);
  return verdict.kind === "torn" ? `torn: ${verdict.detail}` : verdict.kind;
}

function frames(buffer: Uint8Array, header: RecordHeader, blockBytes = B): { type: number; flags: number; bytes: number[] }[] | string {
  const out: { type: number; flags: number; bytes: number[] }[] = [];
  const problem = forEachFrame(buffer, blockBytes, header, new Uint8Array(MAX_FRAME_BYTES), (type, flags, bytes, offset, length) => {
    out.push({ type, flags, bytes: [...bytes.subarray(offset, offset + length)] });
  });
  return problem ?? out;
}

function headerOf(buffer: Uint8Array, seq = 10n, blockBytes = B): RecordHeader {
  const verdict = checkFirstBlock(buffer, blockBytes, seq, UUID);
  if (verdict.kind !== "header") throw new Error(`expected a header, got ${JSON.stringify(verdict)}`);
  return verdict.header;
}

// --- layout --------------------------------------------------------------------------------------

test("layout: payload capacity and blocks needed meet exactly at block edges", (t) => {
  t.is(payloadCapacity(B, 1), B - 96);
  t.is(payloadCapacity(B, 2), 2 * B - 96 - 16);
  t.is(blocksForPayload(B, 0), 1);
  t.is(blocksForPayload(B, payloadCapacity(B, 1)), 1, "a full first block");
  t.is(blocksForPayload(B, payloadCapacity(B, 1) + 1), 2, "one byte more");
  t.is(blocksForPayload(B, payloadCapacity(B, 2)), 2);
  t.is(blocksForPayload(B, payloadCapacity(B, 2) + 1), 3);
  t.is(blocksForPayload(8192, payloadCapacity(8192, 5)), 5);
});

test("layout: the block table of docs/format.md (superblock A, two status slots, ring of at least 8, superblock B)", (t) => {
  t.is(STATUS_SLOT_BLOCKS[0] - 1, 0, "superblock A is block 0, before the status slots");
  t.deepEqual(STATUS_SLOT_BLOCKS, [1, 2]);
  t.is(RING_START_BLOCK, 3);
  t.is(MIN_RING_BLOCKS, 8);
  t.is(MIN_VOLUME_BLOCKS, 12, "3 blocks before the ring, 8 of ring, superblock B");
});

test("layout: a block size is a power of two from 4096 to 65536", (t) => {
  for (const ok of [4096, 8192, 65536]) t.true(isValidBlockSize(ok), `${ok}`);
  for (const bad of [2048, 4095, 4097, 12288, 131072, 4096.5, Number.NaN, 0]) t.false(isValidBlockSize(bad), `${bad}`);
});

// --- checksums and key derivation ----------------------------------------------------------------

test("checksum: CRC32C of the standard check string, of ranges, and continued", (t) => {
  const text = Buffer.from("123456789");
  t.is(crc32c(text), 0xe3069283, "the CRC-32C check value");
  const framed = Buffer.concat([Buffer.from("xx"), text, Buffer.from("yyy")]);
  t.is(crc32c(framed, 2, 11), 0xe3069283, "a range");
  t.is(crc32c(framed, 2), crc32c(framed.subarray(2)), "from start to the end");
  t.is(crc32c(framed, 0, 11), crc32c(framed.subarray(0, 11)), "from 0 to before the end");
  t.is(crc32cFrom(crc32c(text.subarray(0, 4)), text.subarray(4)), 0xe3069283, "continued over two parts");
  t.is(crc32c(new Uint8Array(0)), 0);
});

test("checksum: the body check matches its own digest only, over exactly its range", (t) => {
  const bytes = new Uint8Array(100).map((_, i) => i);
  const out = new Uint8Array(40).fill(0xaa);
  bodyCheck(bytes, 10, 90, out, 8);
  t.deepEqual([...out.subarray(0, 8)], new Array(8).fill(0xaa), "nothing written before `at`");
  t.deepEqual([...out.subarray(24)], new Array(16).fill(0xaa), "nothing written after 16 bytes");
  t.true(bodyCheckMatches(bytes, 10, 90, out, 8));
  t.false(bodyCheckMatches(bytes, 10, 91, out, 8), "another range");
  t.false(bodyCheckMatches(bytes, 11, 90, out, 8), "another start");
  for (const i of [0, 15]) {
    const wrong = out.slice();
    wrong[8 + i]! ^= 1;
    t.false(bodyCheckMatches(bytes, 10, 90, wrong, 8), `digest byte ${i} differs`);
  }
});

test("kdf: deriveKey is HKDF-SHA256 with info 'lunlink v1 <label>' and 32 bytes (docs/format.md)", (t) => {
  const secret = randomBytes(32);
  const salt = randomBytes(16);
  const key = deriveKey(secret, salt, "ring superblock");
  t.is(KEY_BYTES, 32);
  t.is(key.length, 32);
  t.deepEqual(key, Buffer.from(hkdfSync("sha256", secret, salt, "lunlink v1 ring superblock", 32)));
  t.notDeepEqual(deriveKey(secret, salt, "ring status"), key, "another label, another key");
});

// --- uuids ---------------------------------------------------------------------------------------

test("uuid: lower-case RFC 4122 text only, 16 raw bytes with leading zeros kept, compared over all 16", (t) => {
  t.true(isUuid(UUID_TEXT));
  t.false(isUuid(UUID_TEXT.toUpperCase()));
  t.false(isUuid(`${UUID_TEXT}0`));
  t.false(isUuid(`x${UUID_TEXT}`));
  t.false(isUuid(UUID_TEXT.replaceAll("-", "")));
  t.throws(() => writeUuid(new Uint8Array(16), 0, "not-a-uuid"), { message: /is not a lower-case UUID/ });
  const small = "00000000-0000-0000-0000-00000000000f";
  const buffer = new Uint8Array(40).fill(0xff);
  writeUuid(buffer, 4, small);
  t.deepEqual([...buffer.subarray(4, 20)], [...new Array(15).fill(0), 15]);
  t.is(buffer[3], 0xff, "nothing before");
  t.is(buffer[20], 0xff, "nothing after");
  t.is(readUuid(buffer, 4), small);
  t.true(uuidEquals(buffer, 4, uuidBytes(small)), "equal although other bytes follow");
  const last = uuidBytes(small);
  last[15] = 14;
  t.false(uuidEquals(buffer, 4, last), "the 16th byte counts");
  const first = uuidBytes(small);
  first[0] = 1;
  t.false(uuidEquals(buffer, 4, first), "the first byte counts");
});

// --- record header: each field bound under a valid CRC -------------------------------------------

test("record header: version, kind and seq are checked after the CRC", (t) => {
  const { buffer } = record([10]);
  t.is(firstKind(buffer), "header");
  t.is(firstKind(forge(buffer, (v) => v.setUint8(20, 2))), "torn: record version 2");
  t.is(firstKind(forge(buffer, (v) => v.setUint8(21, 0))), "torn: record kind 0");
  t.is(firstKind(forge(buffer, (v) => v.setUint8(21, 3))), "torn: record kind 3");
  t.is(firstKind(forge(buffer, (v) => v.setBigUint64(48, 11n, true))), "torn: header seq 11 under stamp seq 10");
  t.is(firstKind(forge(buffer, (v) => v.setUint16(4, 1, true))), "torn: block 1 of seq 10 where its first block belongs");
  t.is(firstKind(forge(buffer, (v) => v.setUint32(16, 0, true))), "torn: stamp without a record header");
  const badCrc = buffer.slice();
  badCrc[HEADER_CRC_AT]! ^= 1;
  t.regex(firstKind(badCrc), /^torn: header CRC32C 0x[0-9a-f]+, computed 0x[0-9a-f]+$/);
});

test("record header: the block count is 1..MAX_RECORD_BLOCKS and must match the payload", (t) => {
  const { buffer } = record([10]);
  const withBlocks = (count: number, payloadBytes: number, frameCount = 1) =>
    forge(buffer, (v) => {
      v.setUint16(6, count, true);
      v.setUint32(56, payloadBytes, true);
      v.setUint16(60, frameCount, true);
    });
  t.is(firstKind(withBlocks(0, 14)), "torn: block count 0");
  t.is(firstKind(withBlocks(MAX_RECORD_BLOCKS + 1, payloadCapacity(B, MAX_RECORD_BLOCKS + 1))), `torn: block count ${MAX_RECORD_BLOCKS + 1}`);
  const largest = checkFirstBlock(withBlocks(MAX_RECORD_BLOCKS, payloadCapacity(B, MAX_RECORD_BLOCKS)), B, 10n, UUID);
  t.is(largest.kind, "header", "the largest record's first block passes");
  if (largest.kind === "header") t.is(largest.header.blockCount, MAX_RECORD_BLOCKS);
  t.is(firstKind(withBlocks(2, 14)), "torn: payload of 14 bytes in 2 blocks", "too many blocks for the payload");
  t.is(firstKind(withBlocks(1, payloadCapacity(B, 1))), "header", "a full first block");
  t.is(firstKind(withBlocks(1, payloadCapacity(B, 1) + 1)), `torn: payload of ${payloadCapacity(B, 1) + 1} bytes in 1 blocks`);
  t.is(firstKind(withBlocks(2, payloadCapacity(B, 1) + 1)), "header");
});

test("record header: frames need 4 header bytes each within the payload; a pad carries nothing", (t) => {
  const { buffer } = record([10]);
  const withFrames = (frameCount: number, payloadBytes: number, kind: number = RecordKind.Batch) =>
    forge(buffer, (v) => {
      v.setUint16(60, frameCount, true);
      v.setUint32(56, payloadBytes, true);
      v.setUint8(21, kind);
    });
  t.is(firstKind(withFrames(3, 12)), "header", "3 empty frames in 12 bytes");
  t.is(firstKind(withFrames(4, 12)), "torn: 4 frames in 12 bytes");
  t.is(firstKind(withFrames(0, 0, RecordKind.Pad)), "header");
  t.is(firstKind(withFrames(1, 14, RecordKind.Pad)), "torn: pad record with payload");
  t.is(firstKind(withFrames(0, 4, RecordKind.Pad)), "torn: pad record with payload");
  const pad = new Uint8Array(B).fill(0x77);
  encodePad(pad, B, { volumeUuid: UUID, epoch: 2n, seq: 5n, timestampMs: 9n });
  const verdict = checkFirstBlock(pad, B, 5n, UUID);
  t.deepEqual(verdict, { kind: "header", header: { kind: RecordKind.Pad, flags: 0, epoch: 2n, seq: 5n, blockCount: 1, payloadBytes: 0, frameCount: 0, timestampMs: 9n } });
  t.deepEqual(checkBody(pad, B, headerOf(pad, 5n)), { kind: "valid" });
});

test("record header: every field of a valid header is returned as written", (t) => {
  const { buffer } = record([10, 0, 3000, 2000], 12n);
  t.deepEqual(checkFirstBlock(buffer, B, 12n, UUID), {
    kind: "header",
    header: { kind: RecordKind.Batch, flags: 0, epoch: 3n, seq: 12n, blockCount: 2, payloadBytes: 4 * 4 + 5010, frameCount: 4, timestampMs: 1_700_000_000_123n },
  });
  const other = uuidBytes(newUuid());
  t.deepEqual(checkFirstBlock(buffer, B, 12n, other), { kind: "foreign", volumeUuid: UUID_TEXT });
});

test("record start: the writer's scan reads block count and no-overwrite only under an intact header CRC", (t) => {
  const ring = new Uint8Array(5 * B);
  const buffer = new Uint8Array(3 * B);
  const b = new RecordBuilder(buffer, B, 3);
  t.true(b.append(FrameType.Control, 0, new Uint8Array(5000), true));
  t.is(b.finish({ volumeUuid: UUID, epoch: 1n, seq: 4n, timestampMs: 0n }), 2);
  ring.set(buffer.subarray(0, 2 * B), B);
  t.deepEqual(readRecordStart(ring, B), { blockCount: 2, noOverwrite: true });
  t.is(readRecordStart(ring, 0), undefined, "an empty block");
  t.is(readRecordStart(ring, 2 * B), undefined, "a later block of the record (stamp, no header)");
  const plain = record([10]).buffer;
  t.deepEqual(readRecordStart(plain, 0), { blockCount: 1, noOverwrite: false });
  t.is(readRecordStart(forge(plain, (v) => v.setUint16(6, 0, true)), 0), undefined, "block count 0");
  t.is(readRecordStart(forge(plain, (v) => v.setUint16(6, MAX_RECORD_BLOCKS + 1, true)), 0), undefined, "block count past the bound");
  t.deepEqual(readRecordStart(forge(plain, (v) => v.setUint16(6, MAX_RECORD_BLOCKS, true)), 0), { blockCount: MAX_RECORD_BLOCKS, noOverwrite: false });
  const torn = plain.slice();
  torn[40]! ^= 1;
  t.is(readRecordStart(torn, 0), undefined, "header CRC broken");
  t.is(readRecordStart(forge(plain, (v) => v.setUint32(16, 0x12345678, true)), 0), undefined, "no record magic");
  t.is(readRecordStart(forge(plain, (v) => v.setUint32(0, 0x12345678, true)), 0), undefined, "no stamp magic");
});

test("stamps: read at any offset; a block without the stamp magic has none", (t) => {
  const { buffer } = record([5000], 33n);
  t.deepEqual(readStamp(buffer, 0), { blockIndex: 0, blockCount: 2, seq: 33n });
  t.deepEqual(readStamp(buffer, B), { blockIndex: 1, blockCount: 2, seq: 33n });
  t.deepEqual(readStamp(buffer), { blockIndex: 0, blockCount: 2, seq: 33n });
  t.is(readStamp(buffer, 2 * B), undefined, "past the record: stale bytes");
});

// --- record body ---------------------------------------------------------------------------------

test("record body: a later block must carry the record's own index and count", (t) => {
  const { buffer } = record([5000, 3000, 2000], 20n);
  const header = headerOf(buffer, 20n);
  t.is(header.blockCount, 3);
  t.deepEqual(checkBody(buffer, B, header), { kind: "valid" });
  const restamp = (block: number, edit: (v: DataView) => void) => {
    const copy = buffer.slice();
    edit(new DataView(copy.buffer, block * B, 16));
    return checkBody(copy, B, header);
  };
  t.deepEqual(
    restamp(1, (v) => v.setUint16(4, 2, true)),
    { kind: "torn", detail: "block 1 stamped 2/3" },
  );
  t.deepEqual(
    restamp(2, (v) => v.setUint16(6, 4, true)),
    { kind: "torn", detail: "block 2 stamped 2/4" },
  );
  t.deepEqual(
    restamp(2, (v) => v.setUint32(0, 0, true)),
    { kind: "torn", detail: "block 2 has no stamp" },
  );
  t.deepEqual(
    restamp(2, (v) => v.setBigUint64(8, 19n, true)),
    { kind: "torn", detail: "block 2 still holds seq 19" },
  );
  t.deepEqual(
    restamp(2, (v) => v.setBigUint64(8, 21n, true)),
    { kind: "newer", seq: 21n, blockIndex: 2 },
  );
  t.throws(() => checkBody(buffer.subarray(0, 3 * B - 1), B, header), { message: /assertion failed: record buffer 12287 < 12288/ });
  const body = buffer.slice();
  body[3 * B - 1]! ^= 1; // the zeroed tail is covered by the body check too
  t.deepEqual(checkBody(body, B, header), { kind: "torn", detail: "body check (XXH3-128) mismatch" });
});

// --- record builder ------------------------------------------------------------------------------

test("record builder: its bounds are checked at construction", (t) => {
  t.throws(() => new RecordBuilder(new Uint8Array(B), B, 0), { message: /maxBlocks 0/ });
  t.throws(() => new RecordBuilder(new Uint8Array((MAX_RECORD_BLOCKS + 1) * B), B, MAX_RECORD_BLOCKS + 1), { message: /maxBlocks 1025/ });
  t.throws(() => new RecordBuilder(new Uint8Array(2 * B - 1), B, 2), { message: /smaller than maxBlocks/ });
  const exact = new RecordBuilder(new Uint8Array(MAX_RECORD_BLOCKS * B), B, MAX_RECORD_BLOCKS);
  t.is(exact.maxBlocks, MAX_RECORD_BLOCKS);
  t.is(exact.blockBytes, B);
});

test("record builder: fits exactly up to its capacity; counts frames, bytes, blocks and no-overwrite; reset empties it", (t) => {
  const buffer = new Uint8Array(2 * B);
  const builder = new RecordBuilder(buffer, B, 2);
  const capacity = payloadCapacity(B, 2);
  t.true(builder.fits(capacity - 4));
  t.false(builder.fits(capacity - 3));
  t.is(builder.blocks, 1, "an empty record is one block");
  t.true(builder.append(FrameType.Data, 0, new Uint8Array(100)));
  t.false(builder.noOverwrite);
  t.true(builder.append(FrameType.Control, 0, new Uint8Array(payloadCapacity(B, 1) - 108), true));
  t.is(builder.frames, 2);
  t.is(builder.bytes, payloadCapacity(B, 1));
  t.is(builder.blocks, 1, "exactly a full first block");
  t.true(builder.noOverwrite);
  t.true(builder.append(FrameType.Data, 0, new Uint8Array(0)));
  t.is(builder.blocks, 2, "one empty frame more needs a second block");
  t.true(builder.fits(capacity - builder.bytes - 4));
  t.false(builder.fits(capacity - builder.bytes - 3));
  t.throws(() => builder.append(FrameType.Data, 0, new Uint8Array(MAX_FRAME_BYTES + 1)), { message: /frame of 65536 bytes/ });
  builder.reset();
  t.is(builder.frames, 0);
  t.is(builder.bytes, 0);
  t.false(builder.noOverwrite, "reset clears the flags");
  t.true(builder.append(FrameType.Data, 0, Uint8Array.of(1, 2, 3)));
  t.is(builder.finish({ volumeUuid: UUID, epoch: 1n, seq: 2n, timestampMs: 0n }), 1);
  const header = headerOf(buffer, 2n);
  t.is(header.flags, 0);
  t.is(header.frameCount, 1);
  t.deepEqual(frames(buffer, header), [{ type: FrameType.Data, flags: 0, bytes: [1, 2, 3] }]);
});

test("record builder: at most 65535 frames in a record, and a frame of MAX_FRAME_BYTES fits", (t) => {
  const buffer = new Uint8Array(MAX_RECORD_BLOCKS * B);
  const builder = new RecordBuilder(buffer, B, MAX_RECORD_BLOCKS);
  t.true(builder.append(FrameType.Data, 0, new Uint8Array(MAX_FRAME_BYTES).fill(5)), "the largest frame");
  for (let i = 1; i < 0xffff; i++) if (!builder.append(FrameType.Heartbeat, 0, new Uint8Array(0))) return t.fail(`frame ${i} refused`);
  t.is(builder.frames, 0xffff);
  t.false(builder.fits(0), "the frame count field is full");
  t.false(builder.append(FrameType.Heartbeat, 0, new Uint8Array(0)));
  const blocks = builder.finish({ volumeUuid: UUID, epoch: 1n, seq: 8n, timestampMs: 0n });
  const header = headerOf(buffer.subarray(0, blocks * B), 8n);
  t.is(header.frameCount, 0xffff);
  t.deepEqual(checkBody(buffer, B, header), { kind: "valid" });
  let count = 0;
  let firstLength = -1;
  const problem = forEachFrame(buffer, B, header, new Uint8Array(MAX_FRAME_BYTES), (_type, _flags, bytes, offset, length) => {
    if (count === 0) firstLength = bytes.subarray(offset, offset + length).filter((b) => b === 5).length;
    count++;
  });
  t.is(problem, undefined);
  t.is(count, 0xffff);
  t.is(firstLength, MAX_FRAME_BYTES);
});

test("record builder: a frame header with 4, 3, 2, 1 or 0 bytes left in the block round-trips", (t) => {
  const room = payloadCapacity(B, 1); // payload bytes in block 0
  for (const left of [5, 4, 3, 2, 1, 0]) {
    const firstLength = room - 4 - left; // the second frame's header starts `left` bytes before the block end
    const buffer = new Uint8Array(3 * B).fill(0xee);
    const builder = new RecordBuilder(buffer, B, 3);
    builder.append(FrameType.Data, 1, new Uint8Array(firstLength).fill(1));
    builder.append(FrameType.Control, 0xab, new Uint8Array(300).map((_, i) => i & 0xff));
    builder.append(FrameType.Heartbeat, 2, new Uint8Array(0));
    builder.append(FrameType.Data, 3, Uint8Array.of(9));
    const blocks = builder.finish({ volumeUuid: UUID, epoch: 1n, seq: 6n, timestampMs: 0n });
    t.is(blocks, 2);
    const header = headerOf(buffer, 6n);
    t.deepEqual(checkBody(buffer, B, header), { kind: "valid" }, `left ${left}`);
    const got = frames(buffer, header);
    if (typeof got === "string") return t.fail(got);
    t.deepEqual(
      got.map((f) => [f.type, f.flags, f.bytes.length]),
      [
        [FrameType.Data, 1, firstLength],
        [FrameType.Control, 0xab, 300],
        [FrameType.Heartbeat, 2, 0],
        [FrameType.Data, 3, 1],
      ],
      `left ${left}`,
    );
    t.deepEqual(got[1]!.bytes, [...new Uint8Array(300).map((_, i) => i & 0xff)], `left ${left}: the straddling frame's bytes`);
    t.deepEqual(readStamp(buffer, B), { blockIndex: 1, blockCount: 2, seq: 6n }, `left ${left}: the stamp of block 1 is intact`);
  }
});

test("record builder: finish zeroes the unused tail and stamps every block over stale bytes", (t) => {
  const { buffer, blocks } = record([5000], 44n, 3);
  t.is(blocks, 2);
  t.true(buffer.subarray(B + 16 + (4 + 5000 - (B - 96)), 2 * B).every((b) => b === 0), "tail after the payload is zero");
  t.true(buffer.subarray(2 * B).every((b) => b === 0xee), "blocks past the record are not touched");
  t.deepEqual(readStamp(buffer, B), { blockIndex: 1, blockCount: 2, seq: 44n });
  const v = new DataView(buffer.buffer);
  t.is(v.getUint32(88, true), 0, "reserved word zero");
  t.is(v.getUint16(62, true), 0, "reserved half-word zero");
});

// --- frames --------------------------------------------------------------------------------------

test("frames: a header that promises more frames or bytes than the payload holds is reported", (t) => {
  const { buffer } = record([10, 0]);
  const header = headerOf(buffer);
  t.is(header.payloadBytes, 18);
  t.deepEqual(frames(buffer, header), [
    { type: FrameType.Data, flags: 0, bytes: new Array(10).fill(1) },
    { type: FrameType.Data, flags: 1, bytes: [] },
  ]);
  t.is(frames(buffer, { ...header, frameCount: 3 }), "frame 2 header at 18 runs past the payload (18 bytes)");
  t.is(frames(buffer, { ...header, payloadBytes: 17 }), "frame 1 header at 14 runs past the payload (17 bytes)");
  t.is(frames(buffer, { ...header, payloadBytes: 13 }), "frame 0 of 10 bytes at 4 runs past the payload (13 bytes)");
  t.is(frames(buffer, { ...header, frameCount: 1 }), "4 bytes after the last of 1 frames");
  t.is(frames(buffer, { ...header, frameCount: 0 }), "18 bytes after the last of 0 frames");
  t.throws(() => forEachFrame(buffer, B, header, new Uint8Array(MAX_FRAME_BYTES - 1), () => {}), { message: /scratch smaller than a frame/ });
});

// --- superblock ----------------------------------------------------------------------------------

function sbReason(sb: Superblock, out = new Uint8Array(Math.max(B, sb.blockBytes))): string {
  encodeSuperblock(sb, out);
  const d = decodeSuperblock(out);
  return d.ok ? "ok" : `${d.reason}: ${d.detail}`;
}

test("superblock geometry: every rule at its edge", (t) => {
  const sb = superblockFixture;
  t.is(sbReason(sb()), "ok");
  t.is(sbReason(sb({ blockBytes: 65536 })), "ok");
  t.is(sbReason(sb({ blockBytes: 2048 })), "geometry: block size 2048 is not a power of two in 4096..65536");
  t.is(sbReason(sb({ blockBytes: 131072 })), "geometry: block size 131072 is not a power of two in 4096..65536");
  t.is(sbReason(sb({ ringStartBlock: 4n, volumeBlocks: 1025n })), "geometry: ring starts at block 4, expected 3");
  t.is(sbReason(sb({ ringBlocks: 8n, volumeBlocks: 12n, epochStartBlock: 7n })), "ok", "the smallest ring, epoch at its last block");
  t.is(sbReason(sb({ ringBlocks: 7n, volumeBlocks: 11n })), "geometry: ring of 7 blocks, at least 8 needed");
  t.is(sbReason(sb({ volumeBlocks: 1025n })), "geometry: ring 3+1020 does not end one block before the last block 1024");
  t.is(sbReason(sb({ volumeBlocks: 1023n })), "geometry: ring 3+1020 does not end one block before the last block 1022");
  t.is(sbReason(sb({ epochStartBlock: 1019n })), "ok");
  t.is(sbReason(sb({ epochStartBlock: 1020n })), "geometry: epoch start block 1020 is outside the ring of 1020 blocks");
  t.is(sbReason(sb({ authMode: 2 as AuthMode })), "geometry: unknown authMode 2");
  t.is(sbReason(sb({ writerNode: 0 })), "geometry: node ids must be non-zero and different (writer 0, peer 2)");
  t.is(sbReason(sb({ peerNode: 0, writerNode: 1 })), "geometry: node ids must be non-zero and different (writer 1, peer 0)");
  t.is(sbReason(sb({ writerNode: 7, peerNode: 7 })), "geometry: node ids must be non-zero and different (writer 7, peer 7)");
  t.is(geometryProblem(sb({ blockBytes: 4096.5 })), "block size 4096.5 is not a power of two in 4096..65536");
});

test("superblock: buffer bounds, the version, and authMode against the MAC area", (t) => {
  const sb = superblockFixture();
  const out = new Uint8Array(B);
  encodeSuperblock(sb, out);
  t.true(decodeSuperblock(out.subarray(0, SUPERBLOCK_BYTES)).ok, "exactly SUPERBLOCK_BYTES");
  const short = decodeSuperblock(out.subarray(0, SUPERBLOCK_BYTES - 1));
  t.deepEqual(short, { ok: false, reason: "geometry", detail: "block of 199 bytes" });
  t.throws(() => encodeSuperblock(sb, new Uint8Array(SUPERBLOCK_BYTES)), { message: /superblock buffer too small/ }, "smaller than the block size");
  t.throws(() => encodeSuperblock(superblockFixture({ salt: new Uint8Array(31) }), new Uint8Array(B)), { message: /salt must be 32 bytes/ });
  t.throws(() => encodeSuperblock(superblockFixture({ blockBytes: 100 }), new Uint8Array(150)), { message: /superblock buffer too small/ }, "smaller than the superblock");
  t.deepEqual([out[6], out[7]], [SUPERBLOCK_BYTES, 0], "encoded bytes field: 200, little-endian (docs/format.md)");
  t.throws(() => encodeSuperblock(sb, new Uint8Array(B), new Uint8Array(32)), { message: /a MAC key exactly when authMode is keyed/ });
  t.throws(() => encodeSuperblock(superblockFixture({ authMode: AuthMode.Keyed }), new Uint8Array(B)), { message: /a MAC key exactly when authMode is keyed/ });
  const dirty = new Uint8Array(B).fill(0xcd);
  encodeSuperblock(sb, dirty);
  t.true(dirty.subarray(SUPERBLOCK_BYTES).every((b) => b === 0), "the rest of the block is zeroed");
  t.true(decodeSuperblock(dirty).ok);
  const resealed = (edit: (v: DataView) => void, macKey?: Uint8Array) => {
    const copy = out.slice();
    edit(new DataView(copy.buffer));
    seal(copy, 168, macKey);
    return copy;
  };
  const v3 = decodeSuperblock(resealed((v) => v.setUint16(4, 3, true)));
  t.deepEqual(v3, { ok: false, reason: "version", detail: "format version 3; this lunlink reads version 2" });
  // A version 1 superblock (check at 152) is named by its version, not reported as a bad checksum.
  const v1 = out.slice();
  new DataView(v1.buffer).setUint16(4, 1, true);
  v1.fill(0, 152, 200);
  seal(v1, 152);
  t.deepEqual(decodeSuperblock(v1), { ok: false, reason: "version", detail: "format version 1; this lunlink reads version 2" });
  const macKey = randomBytes(32);
  const noneWithMac = resealed(() => {}, macKey);
  t.deepEqual(decodeSuperblock(noneWithMac), { ok: false, reason: "checksum", detail: "check area holds a MAC but authMode is none" });
  t.deepEqual(decodeSuperblock(noneWithMac, macKey), { ok: false, reason: "downgrade", detail: "authMode none under a valid MAC" });
  const keyedWithout = resealed((v) => v.setUint8(104, AuthMode.Keyed));
  t.deepEqual(decodeSuperblock(keyedWithout), { ok: false, reason: "checksum", detail: "authMode keyed without a MAC" });
});

// --- check area (sealed.ts) ----------------------------------------------------------------------

test("check area: blank versus foreign magic over exactly the checked bytes", (t) => {
  const checkAt = 40;
  const end = checkAt + CHECK_BYTES;
  const zero = new Uint8Array(128);
  t.deepEqual(unseal(zero, STATUS_MAGIC, checkAt), { reason: "blank", detail: "all zero" });
  const after = zero.slice();
  after[end] = 1;
  t.deepEqual(unseal(after, STATUS_MAGIC, checkAt), { reason: "blank", detail: "all zero" }, "bytes after the check area do not count");
  const inside = zero.slice();
  inside[end - 1] = 1;
  t.deepEqual(unseal(inside, STATUS_MAGIC, checkAt), { reason: "magic", detail: `magic 0x0, expected 0x${STATUS_MAGIC.toString(16)}` });
  const other = zero.slice();
  new DataView(other.buffer).setUint32(0, 0x41414141, true);
  t.deepEqual(unseal(other, STATUS_MAGIC, checkAt), { reason: "magic", detail: `magic 0x41414141, expected 0x${STATUS_MAGIC.toString(16)}` });
});

test("check area: seal writes CRC then MAC (or zeros) over stale bytes; unseal checks each part", (t) => {
  const checkAt = 40;
  const block = new Uint8Array(128).fill(0xff);
  new DataView(block.buffer).setUint32(0, STATUS_MAGIC, true);
  seal(block, checkAt);
  t.is(new DataView(block.buffer).getUint32(checkAt, true), crc32c(block, 0, checkAt), "CRC32C of the bytes before the check area");
  t.true(block.subarray(checkAt + 4, checkAt + CHECK_BYTES).every((b) => b === 0), "no key: the MAC area is zero");
  t.is(block[checkAt + CHECK_BYTES], 0xff, "nothing written past the check area");
  t.deepEqual(unseal(block, STATUS_MAGIC, checkAt), { macPresent: false });
  t.deepEqual(unseal(block, STATUS_MAGIC, checkAt, "unverified"), { macPresent: false });
  const macKey = randomBytes(32);
  t.deepEqual(unseal(block, STATUS_MAGIC, checkAt, macKey), { reason: "downgrade", detail: "no MAC (written without a ring key, authMode none), a keyed block expected" });
  const keyed = block.slice();
  seal(keyed, checkAt, macKey);
  const expected = createHmac("sha256", macKey).update(keyed.subarray(0, checkAt)).digest().subarray(0, 28);
  t.deepEqual(Buffer.from(keyed.subarray(checkAt + 4, checkAt + CHECK_BYTES)), expected, "HMAC-SHA256 truncated to 28 bytes (docs/format.md)");
  t.deepEqual(unseal(keyed, STATUS_MAGIC, checkAt, macKey), { macPresent: true });
  t.deepEqual(unseal(keyed, STATUS_MAGIC, checkAt, "unverified"), { macPresent: true });
  t.deepEqual(unseal(keyed, STATUS_MAGIC, checkAt), { reason: "checksum", detail: `check byte ${checkAt + 4 + expected.findIndex((b) => b !== 0)} is not zero (authMode none)` });
  const lastOnly = block.slice();
  lastOnly[checkAt + CHECK_BYTES - 1] = 1; // not covered by the CRC: only the MAC-area rule catches it
  t.deepEqual(unseal(lastOnly, STATUS_MAGIC, checkAt), { reason: "checksum", detail: `check byte ${checkAt + CHECK_BYTES - 1} is not zero (authMode none)` });
  t.deepEqual(unseal(lastOnly, STATUS_MAGIC, checkAt, "unverified"), { macPresent: true });
  t.deepEqual(unseal(lastOnly, STATUS_MAGIC, checkAt, macKey), { reason: "auth", detail: "HMAC-SHA256 does not verify under the configured ring key" });
  const crc = block.slice();
  crc[checkAt]! ^= 1;
  const problem = unseal(crc, STATUS_MAGIC, checkAt);
  t.true(isSealProblem(problem));
  t.is(isSealProblem(problem) ? problem.reason : "", "checksum");
  t.regex(isSealProblem(problem) ? problem.detail : "", /^CRC32C 0x[0-9a-f]+, computed 0x[0-9a-f]+$/);
  t.false(isSealProblem({ macPresent: true }));
});

// --- status --------------------------------------------------------------------------------------

test("status: buffer bounds, version and slot under a valid CRC", (t) => {
  const out = new Uint8Array(B).fill(0x5a);
  const s = statusFixture({ slot: 1 });
  encodeStatus(s, out);
  t.true(out.subarray(STATUS_BYTES).every((b) => b === 0), "the rest of the block is zeroed");
  const exact = decodeStatus(out.subarray(0, STATUS_BYTES));
  t.deepEqual(exact, { ok: true, status: s }, "exactly STATUS_BYTES");
  t.deepEqual(decodeStatus(out.subarray(0, STATUS_BYTES - 1)), { ok: false, reason: "checksum", detail: "block of 719 bytes" });
  t.throws(() => encodeStatus(s, new Uint8Array(STATUS_BYTES - 1)), { message: /status buffer too small/ });
  t.notThrows(() => encodeStatus(s, new Uint8Array(STATUS_BYTES)));
  const resealed = (edit: (v: DataView) => void) => {
    const copy = out.slice();
    edit(new DataView(copy.buffer));
    seal(copy, 688);
    return decodeStatus(copy);
  };
  t.deepEqual(
    resealed((v) => v.setUint16(4, 1, true)),
    { ok: false, reason: "version", detail: "format version 1" },
  );
  t.deepEqual(
    resealed((v) => v.setUint16(6, 2, true)),
    { ok: false, reason: "checksum", detail: "slot 2" },
  );
  const zeroSlot = resealed((v) => v.setUint16(6, 0, true));
  t.true(zeroSlot.ok && zeroSlot.status.slot === 0);
});

test("status: pickStatus orders by epoch first, then generation, whichever argument holds it", (t) => {
  const decoded = (overrides: Parameters<typeof statusFixture>[0]): StatusDecode => {
    const out = new Uint8Array(STATUS_BYTES);
    encodeStatus(statusFixture(overrides), out);
    return decodeStatus(out);
  };
  const newerEpoch = decoded({ slot: 0, epoch: 3n, generation: 1n });
  const olderEpoch = decoded({ slot: 1, epoch: 2n, generation: 50n });
  t.is(pickStatus(newerEpoch, olderEpoch)?.epoch, 3n);
  t.is(pickStatus(olderEpoch, newerEpoch)?.epoch, 3n);
  const gen7 = decoded({ slot: 0, epoch: 2n, generation: 7n });
  const gen8 = decoded({ slot: 1, epoch: 2n, generation: 8n });
  t.is(pickStatus(gen7, gen8)?.generation, 8n);
  t.is(pickStatus(gen8, gen7)?.generation, 8n);
  const invalid = decodeStatus(new Uint8Array(STATUS_BYTES));
  t.is(pickStatus(invalid, gen7)?.generation, 7n);
  t.is(pickStatus(gen7, invalid)?.generation, 7n);
  t.is(pickStatus(invalid, invalid), undefined);
});

// --- record AEAD against the spec ----------------------------------------------------------------

test("record cipher: nonce, associated data and plaintext are exactly those of docs/format.md", (t) => {
  const key = randomBytes(32);
  const epoch = 0x1_2345_6789n; // the nonce takes the low 32 bits
  const seq = 0x0102_0304_0506_0708n;
  const ringBlock = 77;
  const cipher = new RecordCipher(addonAead, key, epoch);
  const buffer = new Uint8Array(2 * B).fill(0xee);
  const builder = new RecordBuilder(buffer, B, 2);
  builder.append(FrameType.Data, 0, new Uint8Array(5000).map((_, i) => i & 0xff));
  const blocks = builder.finish({ volumeUuid: UUID, epoch, seq, timestampMs: 5n }, RecordKind.Batch, { cipher, ringBlock });
  t.is(blocks, 2);
  const v = new DataView(buffer.buffer);
  t.is(v.getUint16(22, true) & RecordFlag.Authenticated, RecordFlag.Authenticated);

  // Rebuild the plaintext record (unkeyed builder, same frames) and encrypt it per the spec.
  const plain = new Uint8Array(2 * B).fill(0xee);
  const p = new RecordBuilder(plain, B, 2);
  p.append(FrameType.Data, 0, new Uint8Array(5000).map((_, i) => i & 0xff));
  p.finish({ volumeUuid: UUID, epoch, seq, timestampMs: 5n });
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(Number(epoch & 0xffffffffn), 0);
  nonce.writeBigUInt64LE(seq, 4);
  const aad = Buffer.alloc(84);
  aad.set(buffer.subarray(0, 72), 0); // stamp 0 and the header up to bodyCheck, as written (flags included)
  aad.set(buffer.subarray(88, 92), 72);
  aad.writeBigUInt64LE(BigInt(ringBlock), 76);
  const reference = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  reference.setAAD(aad, { plaintextLength: 2 * B - 96 - 16 });
  const stream = Buffer.concat([plain.subarray(96, B), plain.subarray(B + 16, 2 * B)]);
  const encrypted = Buffer.concat([reference.update(stream), reference.final()]);
  t.deepEqual(Buffer.concat([Buffer.from(buffer.subarray(96, B)), Buffer.from(buffer.subarray(B + 16, 2 * B))]), encrypted, "ciphertext in place");
  t.deepEqual(Buffer.from(buffer.subarray(72, 88)), reference.getAuthTag(), "the tag at bodyCheck");
  t.deepEqual(Buffer.from(buffer.subarray(B, B + 16)), Buffer.from(plain.subarray(B, B + 16)), "later stamps stay plaintext");
  t.is(v.getUint32(HEADER_CRC_AT, true), crc32c(buffer, 0, HEADER_CRC_AT), "header CRC computed last, over the tag");

  const header = headerOf(buffer, seq);
  const opened = buffer.slice();
  t.deepEqual(checkBody(opened, B, header, { cipher, ringBlock }), { kind: "valid" });
  t.deepEqual(Buffer.from(opened.subarray(96, B)), Buffer.from(plain.subarray(96, B)), "decrypted in place: block 0");
  t.deepEqual(Buffer.from(opened.subarray(B + 16)), Buffer.from(plain.subarray(B + 16)), "and block 1");
  t.throws(() => new RecordCipher(addonAead, randomBytes(31), 1n), { message: /a record key is 32 bytes/ });
});

test("record cipher: open says false for a forgery, and the reserved header word is authenticated", (t) => {
  const cipher = new RecordCipher(addonAead, randomBytes(32), 4n);
  const buffer = new Uint8Array(B);
  const builder = new RecordBuilder(buffer, B, 1);
  builder.append(FrameType.Data, 0, new Uint8Array(40).fill(6));
  builder.finish({ volumeUuid: UUID, epoch: 4n, seq: 9n, timestampMs: 0n }, RecordKind.Batch, { cipher, ringBlock: 3 });
  t.is(cipher.open(buffer.slice(), B, 1, 3), true);
  const tag = buffer.slice();
  tag[72]! ^= 1;
  t.is(cipher.open(tag, B, 1, 3), false, "a wrong tag: false, not an exception");
  const reserved = buffer.slice();
  reserved[90] = 1; // bytes [88, 92) are in the associated data (docs/format.md)
  t.is(cipher.open(reserved, B, 1, 3), false, "a changed reserved word does not verify");
  t.is(cipher.open(buffer.slice(), B, 1, 4), false, "another ring block does not verify");
});

test("record cipher: an authenticated record without a key is 'auth', an unkeyed one under a key a downgrade", (t) => {
  const cipher = new RecordCipher(addonAead, randomBytes(32), 1n);
  const buffer = new Uint8Array(B);
  const builder = new RecordBuilder(buffer, B, 1);
  builder.append(FrameType.Data, 0, Uint8Array.of(1));
  builder.finish({ volumeUuid: UUID, epoch: 1n, seq: 3n, timestampMs: 0n }, RecordKind.Batch, { cipher, ringBlock: 0 });
  const header = headerOf(buffer, 3n);
  t.deepEqual(checkBody(buffer.slice(), B, header), { kind: "auth", detail: "record seq 3 is authenticated and no key was given to verify it" });
  t.deepEqual(checkBody(buffer.slice(), B, header, "framing"), { kind: "valid" });
  const forged = buffer.slice();
  forged[200]! ^= 1;
  t.deepEqual(checkBody(forged, B, header, { cipher, ringBlock: 0 }), { kind: "auth", detail: "record seq 3 epoch 1: AEAD tag does not verify" });
  const { buffer: unkeyed } = record([1], 3n, 1);
  t.deepEqual(checkBody(unkeyed, B, headerOf(unkeyed, 3n), { cipher, ringBlock: 0 }), {
    kind: "downgrade",
    detail: "record seq 3 is not authenticated (flag clear), a keyed record expected",
  });
  t.deepEqual(checkBody(unkeyed, B, headerOf(unkeyed, 3n), "framing"), { kind: "valid" }, "framing still checks an unkeyed body");
});
