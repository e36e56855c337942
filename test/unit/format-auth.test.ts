// Keyed mode of the format (authMode keyed): AEAD records, MACed superblock and status. Properties:
// round trip; every single-bit flip rejected; content sealed under another key, epoch or ring block
// rejected; unkeyed content refused as a downgrade by a keyed decoder; keyless decoders see framing only.
import test from "ava";
import fc from "fast-check";
import { randomBytes } from "node:crypto";

import { AuthMode, FrameType, MAX_FRAME_BYTES, RecordFlag } from "../../lib/format/layout.ts";
import { RecordCipher } from "../../lib/format/record-cipher.ts";
import { addonAead } from "../../lib/io/aead.ts";
import { RecordBuilder, checkBody, checkFirstBlock, forEachFrame, type BodyVerdict } from "../../lib/format/record.ts";
import { STATUS_BYTES, decodeStatus, encodeStatus, type StatusBlock } from "../../lib/format/status.ts";
import { SUPERBLOCK_BYTES, decodeSuperblock, encodeSuperblock, type Superblock } from "../../lib/format/superblock.ts";
import { newUuid, uuidBytes } from "../../lib/format/uuid.ts";
import { RingKeys } from "../../lib/ring/keys.ts";
import { statusFixture, superblockFixture } from "../helpers/blocks.ts";
import { acceptedFlips } from "../helpers/flips.ts";
import { logSeed, SEED } from "../helpers/random.ts";

const UUID = uuidBytes(newUuid());
const B = 4096;

test.before(async () => {
});

const key = (): Uint8Array => new Uint8Array(randomBytes(32));

const frameArb = fc.record({
  type: fc.constantFrom(FrameType.Heartbeat, FrameType.Control, FrameType.Data),
  flags: fc.integer({ min: 0, max: 255 }),
  bytes: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 900, maxLength: 1100 }), fc.uint8Array({ minLength: 8900, maxLength: 9100 })),
});

function seal(cipher: RecordCipher, frames: { type: number; flags: number; bytes: Uint8Array }[], seq: bigint, ringBlock: number, maxBlocks = 8) {
  const buffer = new Uint8Array(maxBlocks * B).fill(0xee);
  const builder = new RecordBuilder(buffer, B, maxBlocks);
  const accepted = frames.filter((f) => builder.append(f.type, f.flags, f.bytes));
  const blocks = builder.finish({ volumeUuid: UUID, epoch: cipher.epoch, seq, timestampMs: 1_700_000_000_000n }, undefined, { cipher, ringBlock });
  return { buffer: buffer.subarray(0, blocks * B), accepted };
}

/** Opens a copy (opening decrypts in place): the body verdict under `cipher` at `ringBlock`. */
function open(record: Uint8Array, cipher: RecordCipher, seq: bigint, ringBlock: number): BodyVerdict | string {
  const copy = record.slice();
  const first = checkFirstBlock(copy, B, seq, UUID);
  if (first.kind !== "header") return first.kind;
  if (copy.length < first.header.blockCount * B) return "short";
  return checkBody(copy, B, first.header, { cipher, ringBlock });
}

function kindOf(v: BodyVerdict | string): string {
  return typeof v === "string" ? v : v.kind;
}

test("keyed records round-trip: encrypted on disk, authenticated and decrypted (fast-check)", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 30 }), fc.bigInt({ min: 1n, max: 2n ** 63n }), fc.bigInt({ min: 1n, max: 2n ** 40n }), fc.nat(10_000), (frames, seq, epoch, ringBlock) => {
      const cipher = new RecordCipher(addonAead, key(), epoch);
      const { buffer, accepted } = seal(cipher, frames, seq, ringBlock);
      const first = checkFirstBlock(buffer, B, seq, UUID);
      if (first.kind !== "header") return false;
      if ((first.header.flags & RecordFlag.Authenticated) === 0) return false;
      // The payload is not on disk in the clear (a 64-byte frame of zeros would be, in an unkeyed record).
      const copy = buffer.slice();
      if (checkBody(copy, B, first.header, { cipher, ringBlock }).kind !== "valid") return false;
      const out: Uint8Array[] = [];
      const problem = forEachFrame(copy, B, first.header, new Uint8Array(MAX_FRAME_BYTES), (_type, _flags, bytes, offset, length) => out.push(bytes.slice(offset, offset + length)));
      return problem === undefined && out.length === accepted.length && out.every((b, i) => Buffer.compare(b, accepted[i]!.bytes) === 0);
    }),
    { seed: SEED, numRuns: 200 },
  );
  t.pass();
});

test("keyed record: every single-bit flip (header, stamps, ciphertext, tag) is rejected", (t) => {
  const cipher = new RecordCipher(addonAead, key(), 5n);
  const frames = [0, 1, 2, 3, 4].map((i) => ({ type: FrameType.Data, flags: 0, bytes: new Uint8Array(1500).fill(i) }));
  const { buffer } = seal(cipher, frames, 77n, 12);
  t.is(buffer.length, 2 * B);
  const valid = (b: Uint8Array): boolean => kindOf(open(b, cipher, 77n, 12)) === "valid";
  t.true(valid(buffer));
  t.is(acceptedFlips(buffer, buffer.length, valid), 0);
});

test("keyed records sealed under another key, epoch or ring block, or without the key, are rejected (fast-check)", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), fc.bigInt({ min: 1n, max: 2n ** 63n }), fc.nat(1000), (frames, seq, ringBlock) => {
      const k = key();
      const cipher = new RecordCipher(addonAead, k, 9n);
      const { buffer } = seal(cipher, frames, seq, ringBlock);
      const first = checkFirstBlock(buffer, B, seq, UUID);
      return (
        kindOf(open(buffer, new RecordCipher(addonAead, key(), 9n), seq, ringBlock)) === "auth" && // another key
        kindOf(open(buffer, new RecordCipher(addonAead, k, 10n), seq, ringBlock)) === "auth" && // same key, another epoch's nonce
        kindOf(open(buffer, cipher, seq, ringBlock + 1)) === "auth" && // replayed into another slot
        first.kind === "header" &&
        checkBody(buffer.slice(), B, first.header).kind === "auth" // keyless and not framing-only
      );
    }),
    { seed: SEED, numRuns: 100 },
  );
  t.pass();
});

test("an unkeyed record given to a keyed check is a downgrade; framing-only passes a keyed record", (t) => {
  const buffer = new Uint8Array(B);
  const builder = new RecordBuilder(buffer, B, 1);
  builder.append(FrameType.Data, 0, new Uint8Array(10));
  builder.finish({ volumeUuid: UUID, epoch: 1n, seq: 3n, timestampMs: 0n });
  const cipher = new RecordCipher(addonAead, key(), 1n);
  t.is(kindOf(open(buffer, cipher, 3n, 0)), "downgrade");
  const keyed = seal(cipher, [{ type: FrameType.Data, flags: 0, bytes: new Uint8Array(10) }], 4n, 1).buffer;
  const first = checkFirstBlock(keyed, B, 4n, UUID);
  t.is(first.kind, "header");
  if (first.kind === "header") t.is(checkBody(keyed.slice(), B, first.header, "framing").kind, "valid");
});

const superblock = (overrides: Partial<Superblock>): Superblock => superblockFixture({ authMode: AuthMode.Keyed, epoch: 4n, epochStartSeq: 100n, epochStartBlock: 7n, ...overrides });
const status = (): StatusBlock => statusFixture({ slot: 1, epoch: 4n, generation: 9n, headSeq: 120n, headBlock: 30n, oldestSeq: 100n });

test("keyed superblock: round trip under the key, every single-bit flip rejected, wrong key and downgrade named", (t) => {
  const keys = new RingKeys({ key: key() });
  const other = new RingKeys({ key: key() });
  const sb = superblock({ keyId: keys.keyId });
  const out = new Uint8Array(B);
  encodeSuperblock(sb, out, keys.superblockMac);
  const back = decodeSuperblock(out, keys.superblockMac);
  t.true(back.ok);
  if (back.ok) t.deepEqual(back.superblock, sb);
  t.is(acceptedFlips(out, SUPERBLOCK_BYTES, (b) => decodeSuperblock(b, keys.superblockMac).ok), 0);
  // A keyless decoder (mirror) checks the CRC only and still sees a keyed superblock.
  const unverified = decodeSuperblock(out);
  t.true(unverified.ok && unverified.superblock.authMode === AuthMode.Keyed);
  const wrong = decodeSuperblock(out, other.superblockMac);
  t.deepEqual(wrong.ok ? "ok" : wrong.reason, "auth");
  const plain = new Uint8Array(B);
  encodeSuperblock({ ...sb, authMode: AuthMode.None, keyId: 0 }, plain);
  const downgrade = decodeSuperblock(plain, keys.superblockMac);
  t.deepEqual(downgrade.ok ? "ok" : downgrade.reason, "downgrade");
  // The status key is not the superblock key: a MAC cannot be moved between the two.
  t.false(decodeSuperblock(out, keys.statusMac).ok);
});

test("keyed status: round trip, every single-bit flip rejected, wrong key and downgrade named", (t) => {
  const keys = new RingKeys({ key: key() });
  const s = status();
  const out = new Uint8Array(B);
  encodeStatus(s, out, keys.statusMac);
  const back = decodeStatus(out, keys.statusMac);
  t.true(back.ok);
  if (back.ok) t.deepEqual(back.status, s);
  t.is(acceptedFlips(out, STATUS_BYTES, (b) => decodeStatus(b, keys.statusMac).ok), 0);
  t.true(decodeStatus(out, "unverified").ok);
  t.false(decodeStatus(out).ok, "an unkeyed decoder refuses a MAC it was not told to expect");
  const wrong = decodeStatus(out, new RingKeys({ key: key() }).statusMac);
  t.is(wrong.ok ? "ok" : wrong.reason, "auth");
  const plain = new Uint8Array(B);
  encodeStatus(s, plain);
  const downgrade = decodeStatus(plain, keys.statusMac);
  t.is(downgrade.ok ? "ok" : downgrade.reason, "downgrade");
});

test("RingKeys refuses a key that is not 32 bytes", (t) => {
  t.throws(() => new RingKeys({ key: new Uint8Array(16) }), { code: "ERR_LUNLINK_INVALID_ARGUMENT" });
});
