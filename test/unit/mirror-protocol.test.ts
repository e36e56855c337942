// The remote mirror's wire codec: every message survives encoding and any split of the byte stream;
// a corrupted frame never decodes to a message (it is refused, or waited on if its length grew).
import test from "ava";
import fc from "fast-check";

import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import { crc32c, crc32cFrom } from "../../lib/format/checksum.ts";
import { FRAME_HEADER_BYTES, MAX_BUFFERED_BYTES, MAX_SUMS_BLOCKS, MessageDecoder, encodeMessage, type Message } from "../../lib/mirror/protocol.ts";
import { logSeed, SEED } from "../helpers/random.ts";


const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u53 = fc.maxSafeNat();
const uuid = fc.uuid({ version: 4 });
const bytes = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max });

const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant("hello" as const), volumeUuid: uuid, pairUuid: uuid, blockBytes: u32, writerNode: u32, volumeBlocks: u53 }),
  fc.record({ type: fc.constant("welcome" as const), destinationBytes: u53, logicalBlockBytes: u32 }),
  fc.record({ type: fc.constant("sumsRequest" as const), requestId: u32, firstBlock: u53, blockCount: fc.integer({ min: 1, max: MAX_SUMS_BLOCKS }) }),
  fc.integer({ min: 1, max: 40 }).chain((blockCount) =>
    fc.record({ type: fc.constant("sums" as const), requestId: u32, firstBlock: u53, blockCount: fc.constant(blockCount), sums: fc.uint8Array({ minLength: blockCount * 16, maxLength: blockCount * 16 }) }),
  ),
  fc.record({ type: fc.constant("write" as const), seq: u53, offsetBytes: u53, data: bytes(3000) }),
  fc.record({ type: fc.constant("ack" as const), seq: u53 }),
  fc.record({ type: fc.constant("error" as const), code: fc.string({ maxLength: 40 }), message: fc.string({ maxLength: 200 }) }),
);

function plain(m: Message): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)));
}

/** Splits `stream` at `cuts` and feeds the pieces, collecting every message. */
function feed(stream: Uint8Array, cuts: number[]): Message[] {
  const decoder = new MessageDecoder();
  const out: Message[] = [];
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  let at = 0;
  for (const p of [...points, stream.length]) {
    decoder.push(stream.subarray(at, p));
    at = p;
    for (let m = decoder.next(); m !== undefined; m = decoder.next()) out.push(m);
  }
  return out;
}

test("messages round-trip through any split of the stream (fast-check)", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (messages, cuts) => {
      const frames = messages.map(encodeMessage);
      const stream = Buffer.concat(frames);
      const got = feed(stream, cuts);
      return JSON.stringify(got.map(plain)) === JSON.stringify(messages.map((m) => plain(m.type === "error" ? { ...m, code: new TextDecoder().decode(new TextEncoder().encode(m.code).subarray(0, 64)) } : m)));
    }),
    { numRuns: 500, seed: SEED },
  );
  t.pass();
});

test("a frame with any one byte changed never decodes to a message (fast-check)", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(message, fc.nat(), fc.integer({ min: 1, max: 255 }), (m, where, flip) => {
      const frame = encodeMessage(m);
      const at = where % frame.length;
      frame[at]! ^= flip;
      const decoder = new MessageDecoder();
      decoder.push(frame);
      try {
        return decoder.next() === undefined; // a grown length: the decoder waits for bytes that never come
      } catch (error) {
        return error instanceof LunlinkError && error.code === ErrorCode.BadPeerMessage;
      }
    }),
    { numRuns: 1000, seed: SEED },
  );
  t.pass();
});

test("the decoder bounds what it holds and names what is wrong", (t) => {
  const decoder = new MessageDecoder();
  const junk = new Uint8Array(FRAME_HEADER_BYTES).fill(0x41);
  decoder.push(junk);
  t.throws(() => decoder.next(), { code: ErrorCode.BadPeerMessage, message: /magic 0x41414141 .*not a lunlink mirror peer/ });
  const greedy = new MessageDecoder();
  greedy.push(new Uint8Array(MAX_BUFFERED_BYTES));
  t.throws(() => greedy.push(new Uint8Array(1)), { code: ErrorCode.BadPeerMessage });
  const huge = encodeMessage({ type: "ack", seq: 1 });
  new DataView(huge.buffer).setUint32(8, 64 * 1024 * 1024, true);
  const lengthy = new MessageDecoder();
  lengthy.push(huge);
  t.throws(() => lengthy.next(), { code: ErrorCode.BadPeerMessage, message: /67108864-byte body/ });
});

test("a write's reserved word (once the unused sync flag) is 0 on the wire and refused otherwise", (t) => {
  const frame = encodeMessage({ type: "write", seq: 7, offsetBytes: 4096, data: new Uint8Array(4096).fill(9) });
  const v = new DataView(frame.buffer);
  t.is(v.getUint32(FRAME_HEADER_BYTES + 16, true), 0, "the bytes a version-1 pusher always sent there");
  v.setUint32(FRAME_HEADER_BYTES + 16, 1, true); // what the removed sync flag would have been
  v.setUint32(12, crc32cFrom(crc32c(frame, 0, 12), frame.subarray(FRAME_HEADER_BYTES)), true);
  const decoder = new MessageDecoder();
  decoder.push(frame);
  t.throws(() => decoder.next(), { code: ErrorCode.BadPeerMessage, message: /reserved word 0x1/ });
});
