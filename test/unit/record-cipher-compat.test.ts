// The record AEAD moved from node:crypto to the addon (lib/io/aead.ts through the format layer's
// SegmentAead): the on-disk format must not change. A copy of the node:crypto implementation as it
// was (below, "legacy") opens records the new cipher sealed, seals the same plaintext to the very
// same bytes, and the new cipher opens records the legacy one sealed (fast-check over frames, block
// counts, epochs, seqs and ring blocks). Also: the SegmentAead contract itself (forged tag -> false
// and ranges zeroed, argument checks).
import test from "ava";
import fc from "fast-check";
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

import { FrameType, RECORD_HEADER_END, STAMP_BYTES } from "../../lib/format/layout.ts";
import { RecordCipher } from "../../lib/format/record-cipher.ts";
import { RecordBuilder, checkBody, checkFirstBlock } from "../../lib/format/record.ts";
import { newUuid, uuidBytes } from "../../lib/format/uuid.ts";
import { addonAead } from "../../lib/io/aead.ts";
import { logSeed, SEED } from "../helpers/random.ts";

const UUID = uuidBytes(newUuid());

/** The pre-addon RecordCipher's nonce and AAD, verbatim. */
function legacyParams(record: Uint8Array, epoch: bigint, ringBlock: number): { nonce: Buffer; aad: Buffer } {
  const v = new DataView(record.buffer, record.byteOffset, RECORD_HEADER_END);
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(Number(epoch & 0xffffffffn), 0);
  nonce.writeBigUInt64LE(v.getBigUint64(48, true), 4);
  const aad = Buffer.alloc(84);
  aad.set(record.subarray(0, 72), 0);
  aad.set(record.subarray(88, 92), 72);
  aad.writeBigUInt64LE(BigInt(ringBlock), 76);
  return { nonce, aad };
}

function legacySeal(key: Uint8Array, epoch: bigint, record: Uint8Array, blockBytes: number, blockCount: number, ringBlock: number): void {
  const { nonce, aad } = legacyParams(record, epoch, ringBlock);
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  cipher.setAAD(aad, { plaintextLength: blockCount * blockBytes - RECORD_HEADER_END - (blockCount - 1) * STAMP_BYTES });
  for (let i = 0; i < blockCount; i++) {
    const start = i === 0 ? RECORD_HEADER_END : i * blockBytes + STAMP_BYTES;
    record.set(cipher.update(record.subarray(start, (i + 1) * blockBytes)), start);
  }
  cipher.final();
  record.set(cipher.getAuthTag(), 72);
}

function legacyOpen(key: Uint8Array, epoch: bigint, record: Uint8Array, blockBytes: number, blockCount: number, ringBlock: number): boolean {
  const { nonce, aad } = legacyParams(record, epoch, ringBlock);
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  decipher.setAAD(aad, { plaintextLength: blockCount * blockBytes - RECORD_HEADER_END - (blockCount - 1) * STAMP_BYTES });
  decipher.setAuthTag(record.subarray(72, 88));
  for (let i = 0; i < blockCount; i++) {
    const start = i === 0 ? RECORD_HEADER_END : i * blockBytes + STAMP_BYTES;
    record.set(decipher.update(record.subarray(start, (i + 1) * blockBytes)), start);
  }
  try {
    decipher.final();
    return true;
  } catch {
    return false;
  }
}

test("records sealed by the addon cipher and by the old node:crypto cipher are byte-identical and open either way (fast-check)", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(
      fc.constantFrom(4096, 8192),
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 9000 }), { minLength: 0, maxLength: 12 }),
      fc.bigInt({ min: 1n, max: 2n ** 40n }),
      fc.bigInt({ min: 1n, max: 2n ** 63n }),
      fc.nat(1_000_000),
      (blockBytes, frames, epoch, seq, ringBlock) => {
        const key = new Uint8Array(randomBytes(32));
        const cipher = new RecordCipher(addonAead, key, epoch);
        const maxBlocks = 8;
        const buffer = new Uint8Array(maxBlocks * blockBytes);
        const builder = new RecordBuilder(buffer, blockBytes, maxBlocks);
        for (const f of frames) builder.append(FrameType.Data, 0, f);
        const blocks = builder.finish({ volumeUuid: UUID, epoch, seq, timestampMs: 5n }, undefined, { cipher, ringBlock });
        const sealedNew = buffer.slice(0, blocks * blockBytes);
        // new -> old: the legacy cipher opens it.
        const plain = sealedNew.slice();
        if (!legacyOpen(key, epoch, plain, blockBytes, blocks, ringBlock)) return false;
        // old seal of the same plaintext = the same bytes.
        const sealedOld = plain.slice();
        legacySeal(key, epoch, sealedOld, blockBytes, blocks, ringBlock);
        if (Buffer.compare(sealedOld, sealedNew) !== 0) return false;
        // old -> new: the record decoder with the addon cipher accepts it and sees the same plaintext.
        const first = checkFirstBlock(sealedOld, blockBytes, seq, UUID);
        if (first.kind !== "header") return false;
        if (checkBody(sealedOld, blockBytes, first.header, { cipher, ringBlock }).kind !== "valid") return false;
        return Buffer.compare(sealedOld, plain) === 0;
      },
    ),
    { seed: SEED, numRuns: 150 },
  );
  t.pass();
});

test("segment AEAD: a forged tag is refused and every range zeroed; ranges are checked before any byte moves", (t) => {
  const key = new Uint8Array(randomBytes(32));
  const nonce = new Uint8Array(12);
  const aad = new Uint8Array([1, 2, 3]);
  const buffer = new Uint8Array(randomBytes(256));
  const original = buffer.slice();
  const segments = new Uint32Array([16, 64, 80, 256, 0, 0]);
  const tag = new Uint8Array(16);
  addonAead.sealSegments(key, nonce, aad, buffer, segments, 2, tag);
  t.deepEqual(buffer.subarray(0, 16), original.subarray(0, 16), "bytes outside the ranges stay");
  t.deepEqual(buffer.subarray(64, 80), original.subarray(64, 80));
  t.notDeepEqual(buffer.subarray(16, 64), original.subarray(16, 64), "ranges are encrypted");
  const copy = buffer.slice();
  t.true(addonAead.openSegments(key, nonce, aad, copy, segments, 2, tag));
  t.deepEqual(copy, original);
  tag[0]! ^= 1;
  t.false(addonAead.openSegments(key, nonce, aad, buffer, segments, 2, tag));
  t.true(buffer.subarray(16, 64).every((b) => b === 0) && buffer.subarray(80).every((b) => b === 0), "no unauthenticated plaintext left");
  t.throws(() => addonAead.sealSegments(key, nonce, aad, buffer, new Uint32Array([64, 16]), 1, tag), { message: /ordered, non-overlapping/ });
  t.throws(() => addonAead.sealSegments(key, nonce, aad, buffer, new Uint32Array([16, 300]), 1, tag), { message: /within the buffer/ });
  t.throws(() => addonAead.sealSegments(key, nonce, aad, buffer, segments, 4, tag), { message: /count must be/ });
  t.throws(() => addonAead.sealSegments(key, nonce, aad, buffer, segments, 1, buffer.subarray(20, 36)), { message: /tag must not overlap/ });
});
