// Keyed rings on real file volumes (O_DIRECT): a legitimate writer streams frames while an attacker
// with its own O_DIRECT handle on the receive volume forges, replays, flips, reorders, truncates and
// restores an old epoch. The reader must deliver exactly the legitimate frames (by hash), count each
// attack and never throw. Also: wrong key / downgrade / wrong pair errors, key rotation, a keyed mirror.
import test from "ava";
import { createHash, randomBytes } from "node:crypto";

import { crc32c } from "../../lib/format/checksum.ts";
import { FrameType, RING_START_BLOCK } from "../../lib/format/layout.ts";
import { RecordBuilder } from "../../lib/format/record.ts";
import { ErrorCode, LunlinkError, Poller, RingReader, RingWriter, Volume, formatVolume, type PollOutcome } from "../../lib/index.ts";
import { LocalMirror } from "../../lib/mirror/local.ts";
import { sparseFile } from "../helpers/scratch.ts";

const B = 4096;
const MiB = 1024 * 1024;
const key = (): Uint8Array => new Uint8Array(randomBytes(32));

async function keyedVolume(t: Parameters<typeof sparseFile>[0], ringKey: Uint8Array | undefined, ringBlocks = 64n) {
  const path = await sparseFile(t, 2 * MiB);
  const formatter = await Volume.open(path, { dsync: true });
  await formatVolume(formatter, { writerNode: 1, peerNode: 2, ringBlocks, ...(ringKey === undefined ? {} : { auth: { key: ringKey } }) });
  await formatter.close();
  const send = await Volume.open(path, { dsync: true });
  const receive = await Volume.open(path, { readOnly: true });
  const attacker = await Volume.open(path, { dsync: true });
  t.teardown(async () => {
    await send.close();
    await receive.close();
    await attacker.close();
  });
  return { path, send, receive, attacker };
}

function payload(i: number): Uint8Array {
  const b = new Uint8Array(200 + (i % 7) * 1100); // some records span two blocks
  new DataView(b.buffer).setUint32(0, i, true);
  for (let k = 4; k < b.length; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

const hash = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** Polls until the reader has nothing more (a few consecutive waits), collecting frame hashes. */
async function drain(reader: RingReader, into: string[], outcomes: PollOutcome[] = []): Promise<void> {
  let waits = 0;
  for (let i = 0; i < 2000 && waits < 3; i++) {
    const outcome = await reader.poll((_seq, _type, _flags, bytes, offset, length) => into.push(hash(bytes.subarray(offset, offset + length))));
    outcomes.push(outcome);
    if (outcome === "waiting") {
      waits++;
      await new Promise((r) => setTimeout(r, 5));
    } else waits = 0;
  }
}

/** Rewrites a record's seq (stamps and header) and fixes the header CRC: what a keyless attacker can do. */
function reseq(record: Uint8Array, seq: bigint): Uint8Array {
  const out = record.slice();
  const v = new DataView(out.buffer);
  for (let at = 0; at < out.length; at += B) v.setBigUint64(at + 8, seq, true);
  v.setBigUint64(48, seq, true);
  v.setUint32(92, crc32c(out, 0, 92), true);
  return out;
}

async function readAt(volume: Volume, ringBlock: number, blocks: number): Promise<Uint8Array> {
  const buffer = volume.alloc(blocks * B);
  await volume.read((RING_START_BLOCK + ringBlock) * B, buffer);
  return buffer;
}

async function writeAt(volume: Volume, ringBlock: number, bytes: Uint8Array): Promise<void> {
  const buffer = volume.alloc(bytes.length);
  buffer.set(bytes);
  await volume.write((RING_START_BLOCK + ringBlock) * B, buffer);
}

test("hostile writer on the receive volume: forged, replayed, flipped, reordered, truncated and restored content is refused and counted; the legitimate stream arrives intact", async (t) => {
  const ringKey = key();
  const { send, receive, attacker } = await keyedVolume(t, ringKey);
  const writerOptions = { nodeId: 1, auth: { key: ringKey }, maxDelayMs: 0, maxRecordBlocks: 4, statusIntervalMs: 20, ownerCheckMs: 600_000 };
  let writer = await RingWriter.open(send, writerOptions);
  const reader = await RingReader.open(receive, { nodeId: 2, auth: { key: ringKey }, start: "head", damageTimeoutMs: 30 });
  const sent: string[] = [];
  const got: string[] = [];
  let next = 0;
  // The reader is drained before each record, so the writer's head is where the reader waits.
  const sendRecord = async (frames = 1): Promise<{ block: number; seq: bigint }> => {
    const block = reader.block;
    const seq = writer.headSeq;
    for (let i = 0; i < frames; i++) {
      const p = payload(next++);
      sent.push(hash(p));
      writer.tryAppend(FrameType.Data, p);
    }
    await writer.flush();
    return { block, seq };
  };

  // Phase 1: legitimate traffic.
  for (let i = 0; i < 6; i++) await sendRecord(2);
  await drain(reader, got);
  t.deepEqual(got, sent);
  const captured = await readAt(attacker, 0, 1); // the first record: the attacker keeps a copy
  // The payload is not on the volume in the clear.
  t.false(Buffer.from(captured).includes(Buffer.from(payload(0).subarray(4, 64))), "frames are encrypted on disk");

  // Attack 1, forgery: a record with a valid header CRC and the authenticated flag, but no key, at the
  // slot the reader expects; then an unkeyed record (valid XXH3, flag clear) there: a downgrade.
  const counters = { ...reader.counters };
  await writeAt(attacker, reader.block, reseq(captured, reader.seq));
  await drain(reader, got);
  t.true(reader.counters.authFailures > counters.authFailures, "forgery counted");
  const plain = attacker.alloc(B);
  const builder = new RecordBuilder(plain, B, 1);
  builder.append(FrameType.Data, 0, new TextEncoder().encode("forged"));
  builder.finish({ volumeUuid: captured.slice(24, 40), epoch: reader.epoch, seq: reader.seq, timestampMs: 0n });
  await writeAt(attacker, reader.block, plain);
  await drain(reader, got);
  t.true(reader.counters.downgrades > counters.downgrades, "unauthenticated record counted as a downgrade");

  // Attack 2, replay: the captured record verbatim in the expected slot (an older seq: never read as
  // new), and re-sequenced to the expected seq (its tag no longer verifies).
  await writeAt(attacker, reader.block, captured);
  await drain(reader, got);
  const before2 = reader.counters.authFailures;
  await writeAt(attacker, reader.block, reseq(captured, reader.seq));
  await drain(reader, got);
  t.true(reader.counters.authFailures > before2, "re-sequenced replay counted");
  // The legitimate writer overwrites the slot: its record is delivered.
  await sendRecord(1);
  await drain(reader, got);
  t.deepEqual(got, sent);

  // Attack 3, bit flip (then undone) and truncation (tail zeroed, then restored) before the reader polls.
  for (const damage of ["flip", "truncate"] as const) {
    writer.tryAppend(FrameType.Data, payload(next));
    sent.push(hash(payload(next++)));
    writer.tryAppend(FrameType.Data, payload(next));
    sent.push(hash(payload(next++)));
    const block = reader.block;
    await writer.flush();
    const original = await readAt(attacker, block, 2);
    const blocks = new DataView(original.buffer, original.byteOffset).getUint16(6, true); // stamp blockCount
    const damaged = original.slice();
    if (damage === "flip") damaged[500]! ^= 0x10;
    else damaged.fill(0, blocks * B - 1000, blocks * B); // the record's last 1000 bytes zeroed
    const failures = reader.counters.authFailures + reader.counters.tornSeen;
    await writeAt(attacker, block, damaged);
    t.is(await reader.poll(() => t.fail("damaged record delivered")), "waiting");
    t.true(reader.counters.authFailures + reader.counters.tornSeen > failures, `${damage} counted`);
    await writeAt(attacker, block, original);
    await drain(reader, got);
    t.deepEqual(got, sent, `after ${damage}`);
  }

  // Attack 4, reorder: two one-block records swapped before the reader sees them, then put back.
  const r1 = await sendRecord(1);
  const first = await readAt(attacker, r1.block, 1);
  const r2Block = r1.block + new DataView(first.buffer, first.byteOffset).getUint16(6, true);
  writer.tryAppend(FrameType.Data, payload(next));
  sent.push(hash(payload(next++)));
  await writer.flush();
  const second = await readAt(attacker, r2Block, 1);
  const beforeSwap = reader.counters.authFailures + reader.counters.tornSeen;
  await writeAt(attacker, r1.block, second);
  await writeAt(attacker, r2Block, first);
  t.is(await reader.poll(() => t.fail("reordered record delivered")), "waiting");
  // A record moved to another slot fails authentication (its ring block is associated data), or its
  // stamps no longer line up (torn).
  t.true(reader.counters.authFailures + reader.counters.tornSeen > beforeSwap, "reorder counted");
  await writeAt(attacker, r1.block, first);
  await writeAt(attacker, r2Block, second);
  await drain(reader, got);
  t.deepEqual(got, sent);

  // Attack 5, permanent damage: a flipped record the writer is past is skipped after damageTimeoutMs
  // (to an authenticated position); its frames are lost (denial of service), nothing false arrives.
  const lostRecord = await sendRecord(1);
  const lostHash = sent[sent.length - 1]!;
  const victim = await readAt(attacker, lostRecord.block, 1);
  victim[300]! ^= 1;
  await writeAt(attacker, lostRecord.block, victim);
  await sendRecord(1);
  await sendRecord(1);
  await drain(reader, got); // sees the bad record: waits for damageTimeoutMs in case it is being written
  await new Promise((r) => setTimeout(r, 40));
  await drain(reader, got);
  t.true(reader.counters.damaged >= 1);
  t.deepEqual(got, sent.filter((h) => h !== lostHash));
  sent.splice(sent.indexOf(lostHash), 1);

  // Attack 6, old epoch restored: the attacker saves the whole volume now, the writer restarts (new
  // epoch) and sends more, then the attacker writes the saved image back.
  const image = attacker.alloc(Number(attacker.geometry.sizeBytes));
  await attacker.read(0, image);
  await writer.close();
  writer = await RingWriter.open(send, writerOptions);
  for (let i = 0; i < 3; i++) await sendRecord(1);
  await drain(reader, got);
  t.deepEqual(got, sent);
  await reader.refresh(); // (the poller does this every statusPollMs)
  const persisted = reader.delivered; // what the link keeps in its own status block
  t.is(persisted.epoch, writer.epoch);
  await writer.close(); // (a live writer would overwrite the restored status within statusIntervalMs)
  const current = attacker.alloc(image.length);
  await attacker.read(0, current);
  await attacker.write(0, image);
  const replays = reader.counters.replays;
  await reader.refresh(); // the running reader: an older (authentic) status is ignored
  await drain(reader, got);
  t.true(reader.counters.replays > replays, "restored older status counted");
  // A reader restarted on the restored image, with the persisted mark, refuses every old record.
  const restarted = await RingReader.open(receive, { nodeId: 2, auth: { key: ringKey }, start: "oldest", notBefore: persisted, damageTimeoutMs: 30 });
  const stale: string[] = [];
  const outcomes: PollOutcome[] = [];
  await drain(restarted, stale, outcomes);
  t.deepEqual(stale, [], "no frame of the restored epoch delivered");
  t.true(restarted.counters.replays > 0 && outcomes.includes("refused"), `replays ${restarted.counters.replays}`);
  // The volume comes back; the legitimate writer goes on; both readers get exactly the new frames.
  await attacker.write(0, current);
  writer = await RingWriter.open(send, writerOptions);
  const newFrom = sent.length;
  for (let i = 0; i < 3; i++) await sendRecord(1);
  await drain(reader, got);
  await restarted.refresh();
  await drain(restarted, stale);
  t.deepEqual(got, sent);
  t.deepEqual(stale, sent.slice(newFrom));
  await writer.close();
  t.log(`reader: ${JSON.stringify(reader.counters, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}; restarted: replays ${restarted.counters.replays}`);
});

test("keyed writer rotates its key (a new epoch) before rekeyAfterRecords; the reader follows without loss", async (t) => {
  const ringKey = key();
  const { send, receive } = await keyedVolume(t, ringKey);
  const writer = await RingWriter.open(send, { nodeId: 1, auth: { key: ringKey }, maxDelayMs: 0, rekeyAfterRecords: 3n, ownerCheckMs: 20 });
  const reader = await RingReader.open(receive, { nodeId: 2, auth: { key: ringKey }, start: "head" });
  const sent: string[] = [];
  const got: string[] = [];
  for (let i = 0; i < 40; i++) {
    const p = payload(i);
    sent.push(hash(p));
    await writer.append(FrameType.Data, p);
    await writer.flush();
    if (i % 2 === 0) await drain(reader, got); // the reader lags a record (at most one epoch) behind
  }
  await drain(reader, got);
  t.deepEqual(got, sent);
  t.true(writer.counters.rekeys >= 10, `rekeys ${writer.counters.rekeys}`);
  t.true(reader.counters.epochChanges >= 10);
  t.is(reader.counters.authFailures, 0);
  t.is(writer.error, undefined, "the owner check does not mistake its own new epoch for a take-over");
  await writer.close();
});

test("wrong key, downgrade, missing key and wrong pair are refused with coded errors naming expected and found", async (t) => {
  const ringKey = key();
  const keyed = await keyedVolume(t, ringKey);
  const wrongKey = await t.throwsAsync(RingReader.open(keyed.receive, { nodeId: 2, auth: { key: key() } }));
  t.is((wrongKey as LunlinkError).code, ErrorCode.WrongKey);
  t.regex(wrongKey.message, /MAC does not verify under the configured ring key \(key id 0x[0-9a-f]{8}\).*key id 0x[0-9a-f]{8}, pair .*wrong key, or another pair's volume/);
  const wrongWriter = await t.throwsAsync(RingWriter.open(keyed.send, { nodeId: 1, auth: { key: key() } }));
  t.is((wrongWriter as LunlinkError).code, ErrorCode.WrongKey);
  const keyless = await t.throwsAsync(RingReader.open(keyed.receive, { nodeId: 2 }));
  t.is((keyless as LunlinkError).code, ErrorCode.KeyRequired);
  const keylessWriter = await t.throwsAsync(RingWriter.open(keyed.send, { nodeId: 1 }));
  t.is((keylessWriter as LunlinkError).code, ErrorCode.KeyRequired);
  // The right key but the wrong pair: authenticated, then refused as the wrong pair.
  const wrongPair = await t.throwsAsync(RingReader.open(keyed.receive, { nodeId: 2, auth: { key: ringKey }, pairUuid: "00000000-0000-4000-8000-000000000000" }));
  t.is((wrongPair as LunlinkError).code, ErrorCode.WrongPair);
  t.regex(wrongPair.message, /expected 00000000-0000-4000-8000-000000000000/);
  // A mirror needs no key: framing only.
  const mirrorReader = await RingReader.open(keyed.receive, { nodeId: 2, framingOnly: true });
  t.is(mirrorReader.epoch, 1n);

  const plain = await keyedVolume(t, undefined);
  const downgrade = await t.throwsAsync(RingReader.open(plain.receive, { nodeId: 2, auth: { key: ringKey } }));
  t.is((downgrade as LunlinkError).code, ErrorCode.Downgrade);
  t.regex(downgrade.message, /downgrade refused: .*expected a keyed volume \(authMode keyed\), found one without authentication/);
  const downgradeWriter = await t.throwsAsync(RingWriter.open(plain.send, { nodeId: 1, auth: { key: ringKey } }));
  t.is((downgradeWriter as LunlinkError).code, ErrorCode.Downgrade);
  await t.throwsAsync(RingReader.open(plain.receive, { nodeId: 2, notBefore: { epoch: 1n, seq: 1n } }), { code: ErrorCode.InvalidArgument });
});

test("a keyed volume stripped to authMode none under the reader (downgrade in place) is counted, never read", async (t) => {
  const ringKey = key();
  const { send, receive, attacker } = await keyedVolume(t, ringKey);
  const writer = await RingWriter.open(send, { nodeId: 1, auth: { key: ringKey }, maxDelayMs: 0, ownerCheckMs: 600_000 });
  const reader = await RingReader.open(receive, { nodeId: 2, auth: { key: ringKey }, start: "head", damageTimeoutMs: 10 });
  await writer.append(FrameType.Data, payload(1));
  await writer.flush();
  const got: string[] = [];
  await drain(reader, got);
  t.is(got.length, 1);
  // The attacker reformats the volume without keys (new superblock, status) and writes unkeyed records.
  await writer.close();
  await formatVolume(attacker, { writerNode: 1, peerNode: 2, ringBlocks: 64n, force: true });
  const plainWriter = await RingWriter.open(attacker, { nodeId: 1, maxDelayMs: 0, ownerCheckMs: 600_000 });
  for (let i = 0; i < 3; i++) await plainWriter.append(FrameType.Data, payload(100 + i));
  await plainWriter.flush();
  await plainWriter.close();
  await reader.refresh();
  await drain(reader, got);
  t.is(got.length, 1, "nothing unauthenticated delivered");
  t.true(reader.counters.downgrades > 0, `downgrades ${reader.counters.downgrades}`);
});

test("keyed ring through a LocalMirror (no key on the mirror): every frame arrives once, in order, across laps", async (t) => {
  const ringKey = key();
  const a = await Volume.open(await sparseFile(t, 2 * MiB, "a.img"), { dsync: true });
  const b = await Volume.open(await sparseFile(t, 2 * MiB, "b.img"));
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  await formatVolume(a, { writerNode: 1, peerNode: 2, ringBlocks: 64n, auth: { key: ringKey } });
  const mirror = await LocalMirror.open(a, b, { statusCopyMs: 2, pollMinUs: 50, pollMaxMs: 2 });
  mirror.start();
  await new Promise<void>((resolve) => mirror.once("resync", () => resolve()));
  const reader = await RingReader.open(b, { nodeId: 2, start: "head", auth: { key: ringKey } });
  const writer = await RingWriter.open(a, {
    nodeId: 1,
    auth: { key: ringKey },
    maxDelayMs: 1,
    maxRecordBlocks: 4,
    overwriteUnacked: false,
    fullQueue: "wait",
    queueLimitBytes: 64 * 1024,
    peerAck: () => reader.ack,
    rekeyAfterRecords: 20n,
  });
  const poller = new Poller(reader, { pollMinUs: 50, pollMaxMs: 2, statusPollMs: 5 });
  poller.start();
  const total = 2000;
  const sent: string[] = [];
  const seen: string[] = [];
  const consume = (async () => {
    for await (const f of poller.frames()) {
      seen.push(hash(f.payload));
      if (seen.length === total) break;
    }
  })();
  for (let i = 0; i < total; i++) {
    const p = payload(i).subarray(0, 100 + (i % 13) * 97); // the sizes of mirror.test.ts
    sent.push(hash(p));
    await writer.append(FrameType.Data, p);
  }
  await writer.flush();
  await consume;

  await poller.stop();
  await writer.close();
  await mirror.stop();
  t.deepEqual(seen, sent);
  t.is(reader.counters.lost, 0n);
  t.is(reader.counters.authFailures, 0);
  t.true(writer.counters.bytesWritten / (64 * B) >= 2, "several laps");
  t.true(writer.counters.rekeys >= 1, "a key rotation crossed the mirror");
});
