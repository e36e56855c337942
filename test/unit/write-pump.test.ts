// WritePump (the mirror's destination writes): order within a segment (payloads, then the first
// header), coalescing while a write is in flight, and a failed write surfacing in add()/drain()
// instead of leaving them waiting forever.
import test from "ava";

import { WritePump } from "../../lib/mirror/write-pump.ts";

const B = 4096;
const block = (seq: number, blocks = 1) => new Uint8Array(blocks * B).fill(seq);
/** The reader's position past record `seq` ending at ring block `block`. */
const past = (seq: bigint, block: number) => ({ seq: seq + 1n, block });

test("records coalesce while a write is in flight; each segment is written payloads first, header last", async (t) => {
  const writes: { offset: number; length: number; first: number }[] = [];
  let release: (() => void) | undefined;
  const sink = {
    write: async (offset: number, bytes: Uint8Array) => {
      writes.push({ offset, length: bytes.length, first: bytes[0]! });
      if (writes.length === 1) await new Promise<void>((r) => (release = r)); // hold the first write
    },
    flush: async () => undefined,
  };
  const written: bigint[] = [];
  const pump = new WritePump(sink, B, (n) => new Uint8Array(n), (seq) => written.push(seq));
  await pump.add(0, block(1), 1n, past(1n, 1)); // written at once (alone)
  await pump.add(B, block(2, 2), 2n, past(2n, 3)); // queued behind it...
  await pump.add(3 * B, block(3), 3n, past(3n, 4)); // ...and coalesced with the previous one
  release!();
  await pump.drain();
  t.deepEqual(written, [1n, 2n, 3n]);
  t.deepEqual(writes, [
    { offset: 0, length: B, first: 1 },
    { offset: 2 * B, length: 2 * B, first: 2 }, // the segment's later blocks (seq 2's second block, seq 3)
    { offset: B, length: B, first: 2 }, // then the segment's first block (seq 2's header)
  ]);
});

test("a failed write is reported by drain() and by the next add(), never a hang", async (t) => {
  const sink = { write: async () => Promise.reject(new Error("EIO")), flush: async () => undefined };
  const pump = new WritePump(sink, B, (n) => new Uint8Array(n), () => undefined);
  await pump.add(0, block(1), 1n, past(1n, 1));
  await pump.add(B, block(2), 2n, past(2n, 2));
  await t.throwsAsync(pump.drain(), { message: "EIO" });
  t.throws(() => pump.throwIfFailed(), { message: "EIO" });
  await t.throwsAsync(pump.add(2 * B, block(3), 3n, past(3n, 3)), { message: "EIO" });
});

test("writtenHead moves only past records whose writes completed; idle once all are written", async (t) => {
  const releases: (() => void)[] = [];
  const sink = { write: () => new Promise<void>((r) => releases.push(r)), flush: async () => undefined };
  const pump = new WritePump(sink, B, (n) => new Uint8Array(n), () => undefined);
  t.true(pump.idle);
  t.is(pump.writtenHead, undefined);
  await pump.add(0, block(1, 2), 1n, past(1n, 2)); // two writes: payload, then header
  await pump.add(2 * B, block(2), 2n, past(2n, 3)); // queued while the first is in flight
  t.false(pump.idle);
  releases.shift()!(); // record 1's payload
  await new Promise((r) => setImmediate(r));
  t.is(pump.writtenHead, undefined, "a record is written only once its header write completed");
  releases.shift()!(); // record 1's header
  await new Promise((r) => setImmediate(r));
  t.deepEqual(pump.writtenHead, past(1n, 2));
  t.false(pump.idle);
  releases.shift()!(); // record 2 (one block: header only)
  await pump.drain();
  t.deepEqual(pump.writtenHead, past(2n, 3));
  t.true(pump.idle);
  t.notThrows(() => pump.throwIfFailed());
});
