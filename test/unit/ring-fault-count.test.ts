// Issue 15: ring faults count records, not looks at them, and are logged at most once per reason per
// interval. A real forged record (a sealed record with one ciphertext byte flipped: its header CRC
// still passes, its AEAD tag does not) and a forged status slot sit on an in-memory volume while the
// reader polls and re-reads the status many times, as the poller does ~50 times a second.
import test from "ava";
import pino from "pino";

import { FrameType, RING_START_BLOCK, STATUS_SLOT_BLOCKS } from "../../lib/format/layout.ts";
import { RecordBuilder } from "../../lib/format/record.ts";
import { encodeStatus, type StatusBlock } from "../../lib/format/status.ts";
import { uuidBytes } from "../../lib/format/uuid.ts";
import { LogLimiter } from "../../lib/link/log-limiter.ts";
import { NodeObservability } from "../../lib/node/observe.ts";
import { FaultMemory, type RingFault } from "../../lib/ring/fault-memory.ts";
import { RingKeys } from "../../lib/ring/keys.ts";
import { RingReader, type RingReaderOptions } from "../../lib/ring/reader.ts";
import { formatVolume, openSuperblock } from "../../lib/ring/superblocks.ts";
import { MemVolume } from "../helpers/memvolume.ts";

const B = 4096;
const RING_BLOCKS = 32;
const KEY = new Uint8Array(32).fill(7);
const POLLS = 200;

async function keyedRing(observer?: RingReaderOptions["observer"]) {
  const volume = new MemVolume((RING_BLOCKS + 4) * B);
  await formatVolume(volume.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS), auth: { key: KEY } });
  const keys = new RingKeys({ key: KEY });
  const { superblock } = await openSuperblock(volume.asVolume(), keys);
  const clock = { nowMs: 0 };
  /** A sealed record of `seq` at ring block `block`, as the writer would put it. */
  const put = (seq: bigint, block: number, text: string): Uint8Array => {
    const scratch = new Uint8Array(2 * B);
    const builder = new RecordBuilder(scratch, B, 2);
    builder.append(FrameType.Data, 0, new TextEncoder().encode(text));
    const blocks = builder.finish({ volumeUuid: uuidBytes(superblock.volumeUuid), epoch: superblock.epoch, seq, timestampMs: 1_000n }, undefined, { cipher: keys.recordCipher({ salt: superblock.salt, epoch: superblock.epoch }), ringBlock: block });
    const bytes = scratch.slice(0, blocks * B);
    volume.store.set(bytes, (RING_START_BLOCK + block) * B);
    return bytes;
  };
  /** A status slot, MACed with `macKey` (another key: a forgery). */
  const status = (slot: 0 | 1, fields: Partial<StatusBlock>, macKey: Uint8Array): void => {
    const block = new Uint8Array(B);
    encodeStatus({ slot, volumeUuid: superblock.volumeUuid, epoch: superblock.epoch, generation: 5n, headSeq: superblock.epochStartSeq, headBlock: 0n, oldestSeq: superblock.epochStartSeq, ackEpoch: 0n, ackSeq: 0n, heartbeat: 0n, deliveredEpoch: 0n, deliveredSeq: 0n, wallClockMs: 0n, ...fields }, block, macKey);
    volume.store.set(block, STATUS_SLOT_BLOCKS[slot] * B);
  };
  const reader = await RingReader.open(volume.asVolume(), { nodeId: 2, auth: { key: KEY }, damageTimeoutMs: 1000, now: () => clock.nowMs, ...(observer === undefined ? {} : { observer }) });
  const frames: string[] = [];
  const poll = () => reader.poll((_seq, _type, _flags, bytes, offset, length) => frames.push(new TextDecoder().decode(bytes.subarray(offset, offset + length))));
  return { volume, reader, clock, put, status, poll, frames, keys, superblock };
}

test("one forged record at the reader's slot is one authFailure after 200 polls and 200 status reads, and one fault told", async (t) => {
  const faults: RingFault[] = [];
  const { volume, reader, put, poll, frames } = await keyedRing({ fault: (f) => faults.push(f) });
  const seq = reader.seq;
  const sealed = put(seq, reader.block, "legitimate");
  volume.store[(RING_START_BLOCK + reader.block) * B + 200]! ^= 0x01; // forged: header CRC passes, tag fails
  for (let i = 0; i < POLLS; i++) {
    t.is(await poll(), "waiting");
    await reader.refresh();
  }
  t.is(reader.lastRow, "B2");
  t.is(reader.counters.authFailures, 1, "counted once per forged record, not per look");
  t.is(faults.length, 1);
  t.like(faults[0], { reason: "authFailures", source: "record", seq, total: 1, offsetBytes: (RING_START_BLOCK + reader.block) * B });

  // Another forgery in the same slot (another header and tag) is another record: counted. A forgery
  // is known by its header and tag: a failed open zeroes the payload it decrypted in place (no
  // unauthenticated plaintext is kept), so payload-only variations under one header count once.
  put(seq, reader.block, "another forgery attempt");
  volume.store[(RING_START_BLOCK + reader.block) * B + 200]! ^= 0x01;
  for (let i = 0; i < 20; i++) {
    await poll();
    await reader.refresh();
  }
  t.is(reader.counters.authFailures, 2);
  // The legitimate record replaces it: delivered, and nothing more counted.
  volume.store.set(sealed, (RING_START_BLOCK + reader.block) * B);
  t.is(await poll(), "delivered");
  t.deepEqual(frames, ["legitimate"]);
  t.is(reader.counters.authFailures, 2);
});

test("a forged status slot is one authFailure however often the status is re-read", async (t) => {
  const { reader, status } = await keyedRing();
  const before = reader.counters.authFailures;
  status(1, { generation: 99n }, new Uint8Array(32).fill(1)); // MACed under another key
  for (let i = 0; i < POLLS; i++) await reader.refresh();
  t.is(reader.counters.authFailures - before, 1);
  status(1, { generation: 100n }, new Uint8Array(32).fill(2)); // a new forgery
  for (let i = 0; i < 10; i++) await reader.refresh();
  t.is(reader.counters.authFailures - before, 2);
});

test("FaultMemory: an identity counts once while remembered; forgetting a source counts it again; the memory is bounded", (t) => {
  const memory = new FaultMemory();
  const id = FaultMemory.identity("record", 4096, 1n, 5n, new Uint8Array([1, 2, 3]));
  t.true(memory.isNew("authFailures", id));
  t.false(memory.isNew("authFailures", id));
  t.true(memory.isNew("tornSeen", id), "per reason");
  t.not(id, FaultMemory.identity("record", 4096, 1n, 5n, new Uint8Array([1, 2, 4])), "other bytes, other identity");
  memory.forget("record");
  t.true(memory.isNew("authFailures", id));
  for (let i = 0; i < 100; i++) memory.isNew("authFailures", `status:${i}`);
  t.true(memory.isNew("authFailures", id), "pushed out of the bounded memory");
});

test("LogLimiter: one line per key per interval, with the count held back", (t) => {
  const limiter = new LogLimiter(1000);
  t.deepEqual(limiter.admit("a", 0), { log: true, suppressed: 0 });
  t.deepEqual(limiter.admit("a", 999), { log: false });
  t.deepEqual(limiter.admit("b", 999), { log: true, suppressed: 0 }, "keys are independent");
  t.deepEqual(limiter.admit("a", 1000), { log: true, suppressed: 1 });
});

function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

test("ring faults are logged at most once per reason per interval, with seq, offset, total and how many were held back", (t) => {
  const { log, lines } = capture();
  const clock = { nowMs: 0 };
  const observe = new NodeObservability(log, { defaultMetrics: false, nowMs: () => clock.nowMs });
  const fault = (reason: RingFault["reason"], total: number): RingFault => ({ reason, source: "record", offsetBytes: 12 * B, seq: BigInt(100 + total), epoch: 3n, detail: "row B2", total });
  for (let i = 1; i <= 5; i++) {
    clock.nowMs = i * 100;
    observe.ringFault(fault("authFailures", i));
  }
  observe.ringFault(fault("damaged", 1));
  t.deepEqual(
    lines.map((l) => [l.reason, l.total, l.level]),
    [
      ["authFailures", 1, 40],
      ["damaged", 1, 40],
    ],
  );
  clock.nowMs = 1100;
  observe.ringFault(fault("authFailures", 6));
  t.like(lines[2], { event: "ring-fault", reason: "authFailures", seq: "106", offsetBytes: 12 * B, epoch: "3", total: 6, suppressed: 4 });
  t.regex(String(lines[2]!.msg), /failed authentication.*offset 49152, seq 106.*total 6 \(4 more since the last line\)/);
});

test("end to end: a forged record polled 200 times gives one log line and authFailures 1", async (t) => {
  const { log, lines } = capture();
  const clock = { nowMs: 0 };
  const observe = new NodeObservability(log, { defaultMetrics: false, nowMs: () => clock.nowMs });
  const { volume, reader, put, poll } = await keyedRing(observe.ringObserver);
  put(reader.seq, reader.block, "x");
  volume.store[(RING_START_BLOCK + reader.block) * B + 150]! ^= 0x80;
  for (let i = 0; i < POLLS; i++) {
    clock.nowMs += 5_000; // past the log interval every time: only the count keeps lines down
    await poll();
    await reader.refresh();
  }
  t.is(reader.counters.authFailures, 1);
  t.is(lines.filter((l) => l.event === "ring-fault").length, 1);
});
