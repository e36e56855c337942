// Superblock and status block codecs: round trip, bit flips rejected, geometry rules, slot choice.
import test from "ava";
import fc from "fast-check";

import { decodeStatus, encodeStatus, pickStatus, STATUS_BYTES } from "../../lib/format/status.ts";
import { SUPERBLOCK_BYTES, decodeSuperblock, encodeSuperblock } from "../../lib/format/superblock.ts";
import { statusFixture, superblockFixture } from "../helpers/blocks.ts";
import { acceptedFlips } from "../helpers/flips.ts";
import { logSeed, SEED } from "../helpers/random.ts";

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

const superblock = superblockFixture;

test("superblocks round-trip (fast-check)", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(fc.constantFrom(4096, 8192, 65536), fc.bigInt({ min: 8n, max: 2n ** 40n }), u64, u64, fc.integer({ min: 1, max: 2 ** 32 - 2 }), (blockBytes, ringBlocks, epoch, seq, node) => {
      const sb = superblock({ blockBytes, ringBlocks, volumeBlocks: ringBlocks + 4n, epoch, epochStartSeq: seq, epochStartBlock: ringBlocks - 1n, writerNode: node, peerNode: node + 1 });
      const out = new Uint8Array(blockBytes);
      encodeSuperblock(sb, out);
      const back = decodeSuperblock(out);
      return back.ok && JSON.stringify(back.superblock, replacer) === JSON.stringify(sb, replacer);
    }),
    { numRuns: 200, seed: SEED },
  );
  t.pass();
});

function replacer(_k: string, v: unknown): unknown {
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  return v;
}

test("every single-bit flip of a superblock is rejected", (t) => {
  const out = new Uint8Array(4096);
  encodeSuperblock(superblock(), out);
  t.true(decodeSuperblock(out).ok);
  t.is(acceptedFlips(out, SUPERBLOCK_BYTES, (b) => decodeSuperblock(b).ok), 0);
});

test("superblock decode says why it failed", (t) => {
  t.is(decodeSuperblock(new Uint8Array(4096)).ok ? "ok" : (decodeSuperblock(new Uint8Array(4096)) as { reason: string }).reason, "blank");
  const out = new Uint8Array(4096);
  encodeSuperblock(superblock({ ringBlocks: 100n }), out); // does not match volumeBlocks
  const bad = decodeSuperblock(out);
  t.false(bad.ok);
  if (!bad.ok) {
    t.is(bad.reason, "geometry");
    t.regex(bad.detail, /does not end one block before the last block/);
  }
  encodeSuperblock(superblock({ writerNode: 5, peerNode: 5 }), out);
  const same = decodeSuperblock(out);
  t.false(same.ok);
  out.fill(0x41, 0, 4);
  const magic = decodeSuperblock(out);
  t.false(magic.ok);
  if (!magic.ok) t.is(magic.reason, "magic");
});

const status = statusFixture;

test("status blocks round-trip and every bit flip is rejected", (t) => {
  const s = status({ headSeq: 2n ** 64n - 1n });
  const out = new Uint8Array(4096);
  encodeStatus(s, out);
  const back = decodeStatus(out);
  t.true(back.ok);
  if (back.ok) t.deepEqual(back.status, s);
  t.is(acceptedFlips(out, STATUS_BYTES, (b) => decodeStatus(b).ok), 0);
});

test("pickStatus takes the valid slot with the higher (epoch, generation)", (t) => {
  const a = new Uint8Array(4096);
  const b = new Uint8Array(4096);
  encodeStatus(status({ slot: 0, generation: 7n }), a);
  encodeStatus(status({ slot: 1, generation: 8n }), b);
  t.is(pickStatus(decodeStatus(a), decodeStatus(b))?.generation, 8n);
  encodeStatus(status({ slot: 0, epoch: 2n, generation: 1n }), a);
  t.is(pickStatus(decodeStatus(a), decodeStatus(b))?.epoch, 2n);
  b[50]! ^= 1; // torn rewrite of slot 1
  t.is(pickStatus(decodeStatus(b), decodeStatus(a))?.slot, 0);
  t.is(pickStatus(decodeStatus(b), decodeStatus(new Uint8Array(4096))), undefined);
});
