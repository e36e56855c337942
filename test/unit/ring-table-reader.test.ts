// The decision table through the real RingReader shell, on an in-memory volume with a fake clock:
// each scenario lays out blocks by hand, polls, and checks the row that decided (reader.lastRow), the
// outcome and the counters. damageTimeoutMs is exercised without a sleep. Also issue 11: a read that
// rejects as stalled and completes later into its buffer never changes a record between its
// authentication and its delivery.
import test from "ava";

import { FrameType, RING_START_BLOCK, RecordKind, STAMP_BYTES, STATUS_SLOT_BLOCKS } from "../../lib/format/layout.ts";
import { RecordBuilder } from "../../lib/format/record.ts";
import type { StatusBlock } from "../../lib/format/status.ts";
import type { Superblock } from "../../lib/format/superblock.ts";
import { newUuid, uuidBytes } from "../../lib/format/uuid.ts";
import { ErrorCode, LunlinkError } from "../../lib/index.ts";
import { RingKeys } from "../../lib/ring/keys.ts";
import { RingReader, type PollOutcome, type RingReaderOptions } from "../../lib/ring/reader.ts";
import { formatVolume, openSuperblock, writeSuperblock } from "../../lib/ring/superblocks.ts";
import { statusBlockBytes, statusFixture } from "../helpers/blocks.ts";
import { MemVolume } from "../helpers/memvolume.ts";

const B = 4096;
const RING_BLOCKS = 32;

interface Put {
  epoch?: bigint;
  frames?: string[];
  /** Pad each frame so the record spans this many blocks at least. */
  bytes?: number;
  kind?: RecordKind;
  volumeUuid?: string;
  /** Keyed: seal under this epoch's cipher (default: the lab's key, if any). */
  keyless?: boolean;
}

interface LabOptions {
  key?: Uint8Array;
  reader?: Partial<RingReaderOptions>;
  /** Lays out blocks before the reader opens. */
  prepare?: (put: (seq: bigint, block: number, p?: Put) => Uint8Array, status: (fields: Partial<StatusBlock>) => void) => void;
}

async function lab(options: LabOptions = {}) {
  const volume = new MemVolume((RING_BLOCKS + 4) * B);
  const auth = options.key === undefined ? undefined : { key: options.key };
  await formatVolume(volume.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS), ...(auth === undefined ? {} : { auth }) });
  const keys = auth === undefined ? undefined : new RingKeys(auth);
  let superblock: Superblock = (await openSuperblock(volume.asVolume(), keys)).superblock;
  const clock = { nowMs: 0 };
  const scratch = new Uint8Array(8 * B);
  let generation = 10n;
  const put = (seq: bigint, block: number, p: Put = {}): Uint8Array => {
    scratch.fill(0);
    const builder = new RecordBuilder(scratch, B, 8);
    for (const text of p.frames ?? [`seq ${seq}`]) builder.append(FrameType.Data, 0, new TextEncoder().encode(text.padEnd(p.bytes ?? 0, ".")));
    const epoch = p.epoch ?? superblock.epoch;
    const cipher = keys === undefined || p.keyless === true ? undefined : { cipher: keys.recordCipher({ salt: superblock.salt, epoch }), ringBlock: block };
    if (p.kind === RecordKind.Pad) builder.reset();
    const blocks = builder.finish({ volumeUuid: uuidBytes(p.volumeUuid ?? superblock.volumeUuid), epoch, seq, timestampMs: 0n }, p.kind ?? RecordKind.Batch, cipher);
    const bytes = scratch.slice(0, blocks * B);
    volume.store.set(bytes, (RING_START_BLOCK + block) * B);
    return bytes;
  };
  const status = (fields: Partial<StatusBlock>): void => {
    const base = { volumeUuid: superblock.volumeUuid, epoch: superblock.epoch, generation: generation++, headSeq: superblock.epochStartSeq, headBlock: 0n, oldestSeq: superblock.epochStartSeq };
    volume.store.set(statusBlockBytes(statusFixture({ ...base, ...fields }), B, keys?.statusMac), STATUS_SLOT_BLOCKS[0] * B);
  };
  const newEpoch = async (epochStartSeq: bigint, epochStartBlock: number): Promise<void> => {
    superblock = { ...superblock, epoch: superblock.epoch + 1n, epochStartSeq, epochStartBlock: BigInt(epochStartBlock), salt: new Uint8Array(32).fill(Number(superblock.epoch)) };
    await writeSuperblock(volume.asVolume(), superblock, keys);
  };
  options.prepare?.(put, status);
  const reader = await RingReader.open(volume.asVolume(), { nodeId: 2, damageTimeoutMs: 1000, now: () => clock.nowMs, ...(auth === undefined ? {} : { auth }), ...options.reader });
  const frames: string[] = [];
  const poll = (onRecord?: () => void): Promise<PollOutcome> =>
    reader.poll((_seq, _type, _flags, bytes, offset, length) => frames.push(new TextDecoder().decode(bytes.subarray(offset, offset + length)).replace(/\.+$/, "")), false, onRecord);
  return { volume, reader, clock, put, status, newEpoch, frames, poll, superblock: () => superblock };
}

test("E3, V3, V2: nothing yet waits; a record is delivered; a pad ends the lap", async (t) => {
  const { reader, put, poll, frames } = await lab();
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "E3");
  put(1n, 0, { frames: ["one", "two"] });
  t.is(await poll(), "delivered");
  t.is(reader.lastRow, "V3");
  t.deepEqual(frames, ["one", "two"]);
  put(2n, 1, { kind: RecordKind.Pad });
  t.is(await poll(), "pad");
  t.is(reader.lastRow, "V2");
  t.deepEqual([reader.seq, reader.block, reader.counters.pads], [3n, 0, 1]);
});

test("T1 on a fake clock: a torn slot waits strictly below damageTimeoutMs, then is skipped once the writer is past it", async (t) => {
  const { volume, reader, clock, put, status, poll, frames } = await lab();
  const torn = put(1n, 0, { bytes: 5000 });
  torn[92]! ^= 0xff; // header CRC
  volume.store.set(torn, RING_START_BLOCK * B);
  put(2n, 2, { frames: ["after"] });
  status({ headSeq: 3n, headBlock: 3n });
  clock.nowMs = 50_000;
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "T1");
  clock.nowMs = 50_999;
  t.is(await poll(), "waiting");
  t.is(reader.counters.damaged, 0);
  clock.nowMs = 51_000;
  t.is(await poll(), "damaged");
  // Three polls of the same torn record: tornSeen counts the record once (issue 15), not each look.
  t.deepEqual([reader.seq, reader.block, reader.counters.lost, reader.counters.tornSeen, reader.counters.damaged], [2n, 2, 0n, 1, 1]);
  t.is(await poll(), "delivered");
  t.deepEqual(frames, ["after"]);
});

test("T1: past the timeout, a slot the writer is not past keeps waiting (head = seq + 1: still being written)", async (t) => {
  const { volume, reader, clock, put, status, poll } = await lab();
  put(1n, 0); // the record of seq 1 whose header is not written yet: its stamp only
  volume.store.fill(0, RING_START_BLOCK * B + STAMP_BYTES, (RING_START_BLOCK + 1) * B);
  status({ headSeq: 2n, headBlock: 1n });
  t.is(await poll(), "waiting");
  clock.nowMs = 10_000;
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "T1");
  t.deepEqual([reader.counters.damaged, reader.counters.tornSeen], [0, 1], "two looks at one torn slot: counted once");
});

test("E2: an empty slot the writer is past is damaged after the timeout (status head, gap lost)", async (t) => {
  const { reader, clock, status, poll } = await lab();
  status({ headSeq: 5n, headBlock: 4n });
  await reader.refresh();
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "E2");
  clock.nowMs = 1000;
  t.is(await poll(), "damaged");
  t.deepEqual([reader.seq, reader.block, reader.counters.lost], [5n, 4, 3n]);
});

test("N1 and B1 keyless: a newer stamp at the slot or in a later block is an overrun", async (t) => {
  const { reader, put, poll } = await lab();
  put(6n, 0);
  t.is(await poll(), "overrun");
  t.is(reader.lastRow, "N1");
  t.deepEqual([reader.seq, reader.block, reader.counters.lost, reader.counters.overruns], [6n, 0, 5n, 1]);
  put(6n, 0, { bytes: 5000 });
  put(9n, 1);
  t.is(await poll(), "overrun");
  t.is(reader.lastRow, "B1");
  t.is(reader.counters.overruns, 2);
});

test("B4: a later block still holding an older seq is torn: waits", async (t) => {
  const { volume, reader, put, poll, frames } = await lab();
  const record = put(1n, 0, { bytes: 5000, frames: ["long"] });
  volume.store.fill(0, (RING_START_BLOCK + 1) * B, (RING_START_BLOCK + 2) * B);
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "B4");
  t.is(reader.counters.tornSeen, 1);
  volume.store.set(record, RING_START_BLOCK * B); // the write completes
  t.is(await poll(), "delivered");
  t.deepEqual(frames, ["long"]);
});

test("F1 keyless: a record of another volume is ERR_LUNLINK_WRONG_PAIR", async (t) => {
  const { reader, put, poll } = await lab();
  put(1n, 0, { volumeUuid: newUuid() });
  const error = await t.throwsAsync(poll());
  t.is((error as LunlinkError).code, ErrorCode.WrongPair);
  t.is(reader.lastRow, "F1");
});

test("H2: a header of a newer epoch makes the reader adopt it (verified superblock), then read on", async (t) => {
  const { reader, put, newEpoch, poll, frames } = await lab();
  put(1n, 0, { frames: ["old epoch"] });
  t.is(await poll(), "delivered");
  await newEpoch(2n, 1); // the writer restarted: epoch 2 starts at seq 2, block 1
  put(2n, 1, { epoch: 2n, frames: ["new epoch"] });
  t.is(await poll(), "epoch");
  t.is(reader.lastRow, "H2");
  t.deepEqual([reader.epoch, reader.seq, reader.block, reader.counters.epochChanges], [2n, 2n, 1, 1]);
  t.is(await poll(), "delivered");
  t.deepEqual(frames, ["old epoch", "new epoch"]);
});

test("E1 and H3: below the new epoch's first seq an absent record is given up after the timeout; an older epoch's record at or above it is suspect", async (t) => {
  const { reader, clock, put, status, newEpoch, poll, frames } = await lab();
  put(1n, 0);
  t.is(await poll(), "delivered");
  // The superblock of epoch 2 (first seq 4 at block 5) arrived, seqs 2 and 3 never will (a mirror lagging, then cut).
  await newEpoch(4n, 5);
  status({ epoch: 2n, headSeq: 6n, headBlock: 7n });
  t.is(await reader.refresh(), "epoch");
  t.deepEqual([reader.epoch, reader.seq], [2n, 2n], "the position is kept below epochStartSeq");
  clock.nowMs = 7000;
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "E1");
  clock.nowMs = 7999;
  t.is(await poll(), "waiting");
  clock.nowMs = 8000;
  t.is(await poll(), "epoch");
  t.is(reader.lastRow, "E1");
  t.deepEqual([reader.seq, reader.block, reader.counters.lost], [4n, 5, 2n]);
  put(4n, 5, { epoch: 1n, frames: ["stale"] });
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "H3");
  put(4n, 5, { epoch: 2n, frames: ["new epoch"] });
  t.is(await poll(), "delivered");
  t.deepEqual(frames, ["seq 1", "new epoch"]);
});

test("H4: a record that would run past the ring end is suspect", async (t) => {
  const { reader, poll } = await lab({
    reader: { start: { seq: 1n } },
    prepare: (put) => void put(1n, RING_BLOCKS - 1, { bytes: 5000 }), // two blocks from the last ring block
  });
  t.is(reader.block, RING_BLOCKS - 1);
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "H4");
});

test("V1 keyed: a record at the anti-replay mark is refused, the next delivered (kills seq <= mark -> seq < mark)", async (t) => {
  const key = new Uint8Array(32).fill(7);
  const { reader, put, poll, frames } = await lab({ key, reader: { start: { seq: 1n }, notBefore: { epoch: 1n, seq: 2n } } });
  put(1n, 0, { frames: ["below the mark"] });
  put(2n, 1, { frames: ["at the mark"] });
  put(3n, 2, { frames: ["after the mark"] });
  t.is(await poll(), "refused");
  t.is(reader.lastRow, "V1");
  t.is(await poll(), "refused");
  t.is(reader.lastRow, "V1");
  t.is(await poll(), "delivered");
  t.is(reader.lastRow, "V3");
  t.deepEqual(frames, ["after the mark"]);
  t.is(reader.counters.replays, 2);
  t.deepEqual(reader.delivered, { epoch: 1n, seq: 3n });
});

test("keyed H1, B2, F1: an unflagged record, a flipped ciphertext and another volume's header are counted and never delivered", async (t) => {
  const key = new Uint8Array(32).fill(9);
  const { volume, reader, put, poll, frames } = await lab({ key });
  put(1n, 0, { keyless: true });
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "H1");
  t.is(reader.counters.downgrades, 1);
  const sealed = put(1n, 0, { frames: ["secret"] });
  volume.store[RING_START_BLOCK * B + 200]! ^= 1;
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "B2");
  t.is(reader.counters.authFailures, 1);
  volume.store.set(sealed, RING_START_BLOCK * B);
  put(2n, 1, { volumeUuid: newUuid() });
  t.is(await poll(), "delivered");
  t.is(await poll(), "waiting", "keyed: a foreign header proves nothing, no throw");
  t.is(reader.lastRow, "F1");
  t.is(reader.counters.authFailures, 2);
  t.deepEqual(frames, ["secret"]);
});

for (const keyed of [false, true]) {
  test(`issue 11${keyed ? " (keyed)" : ""}: a stalled read that completes late into its buffer never changes a record between authentication and delivery`, async (t) => {
    const { volume, reader, put, poll, frames } = await lab(keyed ? { key: new Uint8Array(32).fill(3) } : {});
    put(1n, 0, { frames: ["authentic record"], bytes: 6000 });
    // The read of the record's later blocks stalls (the request stays parked with the buffer it was given).
    volume.stallRead = (offsetBytes) => offsetBytes === (RING_START_BLOCK + 1) * B;
    const stalled = await t.throwsAsync(poll());
    t.is((stalled as LunlinkError).code, ErrorCode.IoStalled);
    t.is(volume.parked.length, 1);
    // The next poll succeeds; the parked read completes while the record is between its check and
    // its delivery (the onRecord hook runs exactly there), writing other bytes into its old buffer.
    let completed = 0;
    t.is(await poll(() => void (completed = volume.completeParkedReads(0xee))), "delivered");
    t.is(completed, 1);
    t.deepEqual(frames, ["authentic record"]);
  });
}

test("issue 11: a stalled read of the expected block leaves no buffer of it in use", async (t) => {
  const { volume, reader, put, poll, frames } = await lab();
  volume.stallRead = (offsetBytes) => offsetBytes === RING_START_BLOCK * B;
  await t.throwsAsync(poll());
  const parked = volume.parked[0]!.buffer;
  t.not(reader.firstBlock.buffer, parked.buffer, "the expected block is read into a fresh buffer");
  put(1n, 0, { frames: ["fresh"] });
  t.is(await poll(() => void volume.completeParkedReads(0xee)), "delivered");
  t.deepEqual(frames, ["fresh"]);
  volume.stallRead = (offsetBytes) => offsetBytes === STATUS_SLOT_BLOCKS[0] * B;
  await t.throwsAsync(reader.readStatus());
  volume.completeParkedReads(0xee);
  t.not(await reader.readStatus(), undefined, "the status slots are read into a fresh buffer");
});

test("N1 keyed: a newer stamp is believed only when its record verifies at its own slot; a forged one is torn", async (t) => {
  const key = new Uint8Array(32).fill(5);
  const { reader, put, poll } = await lab({ key });
  put(5n, 0, { keyless: true }); // a newer stamp whose record does not verify (no tag): no evidence
  t.is(await poll(), "waiting");
  t.is(reader.lastRow, "N1");
  t.deepEqual([reader.seq, reader.counters.overruns, reader.counters.tornSeen], [1n, 0, 1]);
  put(5n, 0); // the writer's own record: it lapped us
  t.is(await poll(), "overrun");
  t.deepEqual([reader.seq, reader.block, reader.counters.lost, reader.counters.overruns], [5n, 0, 4n, 1]);
});

test("K1 keyed: a record of an epoch whose superblock the reader never saw is given up for the current epoch's start", async (t) => {
  const key = new Uint8Array(32).fill(6);
  const { reader, put, status, newEpoch, poll, frames } = await lab({ key });
  put(1n, 0, { frames: ["epoch 1"] }); // (records are sealed under the latest superblock's salt: epoch by epoch)
  await newEpoch(2n, 1); // epoch 2 from seq 2: the reader never reads this superblock
  put(2n, 1, { frames: ["epoch 2"] });
  await newEpoch(6n, 5); // epoch 3 from seq 6
  put(6n, 5, { frames: ["epoch 3"] });
  status({ epoch: 3n, headSeq: 7n, headBlock: 6n });
  t.is(await poll(), "delivered");
  t.is(await reader.refresh(), "epoch");
  t.deepEqual([reader.epoch, reader.seq], [3n, 2n]);
  t.is(await poll(), "epoch");
  t.is(reader.lastRow, "K1");
  t.deepEqual([reader.seq, reader.block, reader.counters.lost, reader.counters.tornSeen], [6n, 5, 4n, 1]);
  t.is(await poll(), "delivered");
  t.deepEqual(frames, ["epoch 1", "epoch 3"]);
});

test("issue 11: reader.watch waits in the reader's own buffer, and a watch that stalls leaves it to the kernel", async (t) => {
  const { volume, reader, put, frames } = await lab();
  const visit = (_seq: bigint, _type: number, _flags: number, bytes: Uint8Array, offset: number, length: number): void => {
    frames.push(new TextDecoder().decode(bytes.subarray(offset, offset + length)));
  };
  const options = { compareBytes: 96, sleepUs: 0, timeoutMs: 1 };
  t.false(await reader.watch(options), "nothing written yet");
  put(1n, 0, { frames: ["watched"] });
  t.true(await reader.watch(options));
  t.is(await reader.poll(visit, true), "delivered");
  volume.stallRead = (offsetBytes) => offsetBytes === reader.expectedOffset;
  await t.throwsAsync(reader.watch(options));
  t.not(reader.firstBlock.buffer, volume.parked[0]!.buffer.buffer);
  put(2n, 1, { frames: ["after the stall"] });
  t.is(await reader.poll(visit, false, () => void volume.completeParkedReads(0xee)), "delivered");
  t.deepEqual(frames, ["watched", "after the stall"]);
});

test("N1 keyed: a newer record that verifies as a pad at its own slot is evidence of an overrun too", async (t) => {
  const { reader, put, poll } = await lab({ key: new Uint8Array(32).fill(4) });
  put(5n, 0, { kind: RecordKind.Pad }); // the writer lapped us and ended its lap here
  t.is(await poll(), "overrun");
  t.is(reader.lastRow, "N1");
  t.deepEqual([reader.seq, reader.block, reader.counters.lost, reader.counters.overruns], [5n, 0, 4n, 1]);
  t.is(await poll(), "pad");
});

test("N1 keyed: an authentic newer record below the anti-replay mark still proves the writer lapped us", async (t) => {
  const { reader, put, poll } = await lab({ key: new Uint8Array(32).fill(8), reader: { start: { seq: 1n }, notBefore: { epoch: 1n, seq: 5n } } });
  put(5n, 0); // authentic, at the mark: never delivered, yet it is where the writer has been
  t.is(await poll(), "overrun");
  t.deepEqual([reader.seq, reader.block, reader.counters.overruns], [5n, 0, 1]);
  t.is(await poll(), "refused");
});
