// The deterministic ring simulation used by test/unit/ring-simulation.test.ts (see there). Everything
// that could differ between two runs of one seed is injected: the writer's clock (FakeClock: time moves
// only by the simulation's steps), its entropy (epoch salts from the seed), the volume (in memory, its
// I/O completes as microtasks) and the formatted image (pass the same one to compare bytes). So one
// seed gives one run: the returned trace and final image are identical every time.
import { createHash } from "node:crypto";

import { FrameType, formatVolume } from "../../lib/index.ts";
import { RingReader, type PollOutcome } from "../../lib/ring/reader.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { FakeClock } from "./fake-clock.ts";
import { MemVolume } from "./memvolume.ts";
import { generator } from "./random.ts";

const STEPS = 3000;
/** Bound on the final drain (steps of 1 fake ms). */
const DRAIN_STEPS = 20_000;
const B = 4096;
const RING_BLOCKS = 64;

function payloadFor(id: number): Uint8Array {
  const b = new Uint8Array(8 + (id % 23) * 37);
  new DataView(b.buffer).setUint32(0, id, true);
  for (let k = 4; k < b.length; k++) b[k] = (id * 131 + k) & 0xff;
  return b;
}

/** A freshly formatted simulation volume (UUIDs and creation time are random: reuse one image to compare bytes). */
export async function formattedImage(key?: Uint8Array): Promise<Uint8Array> {
  const volume = new MemVolume(RING_BLOCKS * B + 4 * B);
  await formatVolume(volume.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS), ...(key === undefined ? {} : { auth: { key } }) });
  return volume.store;
}

/** `key`: the same run on a keyed ring (authMode keyed), where every flip must fail authentication. */
export async function simulate(seed: number, hostile: boolean, key?: Uint8Array, image?: Uint8Array) {
  const random = generator(seed);
  const salts = generator(seed ^ 0x5a17);
  const clock = new FakeClock();
  const volume = new MemVolume(RING_BLOCKS * B + 4 * B);
  volume.store.set(image ?? (await formattedImage(key)));
  const auth = key === undefined ? {} : { auth: { key } };
  const trace: string[] = [];
  // Benign runs never overwrite unacked records and lose no torn write: every frame must arrive.
  const writerOptions = {
    nodeId: 1,
    maxDelayMs: 0,
    maxRecordBlocks: 4,
    statusIntervalMs: 5,
    ownerCheckMs: 600_000,
    overwriteUnacked: hostile,
    clock,
    entropy: (n: number) => Uint8Array.from({ length: n }, () => Math.floor(salts() * 256)),
    ...auth,
  };
  // The reader's ack goes straight back to the writer (the peer's status block in real life).
  let ack: { epoch: bigint; seq: bigint } | undefined;
  const options = { ...writerOptions, peerAck: () => ack };
  const openWriter = async (): Promise<RingWriter> => {
    const w = await RingWriter.open(volume.asVolume(), options);
    trace.push(`open epoch ${w.epoch} head ${w.headSeq}`);
    w.on("write", (offset, length, what) => trace.push(`write ${what} ${offset}+${length}`));
    w.on("flush", (seq, blocks) => trace.push(`record ${seq} ${blocks}`));
    return w;
  };
  let writer = await openWriter();
  // Benign: a torn record is only ever in progress, never damaged. Hostile: skip damage at once.
  const reader = await RingReader.open(volume.asVolume(), { nodeId: 2, start: "head", damageTimeoutMs: hostile ? 0 : 3_600_000, ...auth });
  // A flush can wait for the reader's ack (control records are never overwritten unacked), so the
  // writer's work runs alongside the steps instead of blocking them.
  let pending: Promise<void> | undefined;
  const appended: { id: number; type: number }[] = [];
  const delivered: { id: number; type: number }[] = [];
  const problems: string[] = [];
  const faults = { torn: 0, restarts: 0, flips: 0 };
  let nextId = 0;
  const visit = (_seq: bigint, type: number, _flags: number, bytes: Uint8Array, offset: number, length: number): void => {
    const id = new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0, true);
    const expected = payloadFor(id);
    if (length !== expected.length || Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset + offset, length), expected) !== 0) {
      problems.push(`garbage delivered for id ${id}`);
    }
    delivered.push({ id, type });
    trace.push(`deliver ${id}`);
  };
  const poll = async (): Promise<PollOutcome> => {
    const outcome = await reader.poll(visit);
    trace.push(`poll ${outcome} ${reader.seq}`);
    ack = reader.ack;
    writer.peerAckChanged();
    return outcome;
  };
  for (let step = 0; step < STEPS; step++) {
    await clock.advance(1);
    const r = random();
    if (r < 0.45) {
      if (pending !== undefined) {
        await poll();
        continue;
      }
      const count = 1 + Math.floor(random() * 5);
      for (let i = 0; i < count; i++) {
        const type = random() < 0.3 ? FrameType.Control : FrameType.Data;
        const id = nextId;
        if (writer.tryAppend(type, payloadFor(id)) !== "queued") break;
        nextId++;
        appended.push({ id, type });
      }
      const flushing: Promise<void> = writer.flush().finally(() => {
        if (pending === flushing) pending = undefined;
      });
      pending = flushing;
    } else if (r < 0.85) {
      await poll();
    } else if (r < 0.9) {
      volume.tearNextWriteAtSector = 1 + Math.floor(random() * 7);
      faults.torn++;
    } else if (r < 0.95) {
      volume.completeTornWrite();
    } else if (r < 0.98) {
      if (pending !== undefined) continue;
      // Writer restart: a torn write in flight completes or is lost with the crash.
      if (!hostile || random() < 0.5) volume.completeTornWrite();
      else volume.dropTornWrite();
      const report = await writer.close();
      trace.push(`close ${report.unflushedFrames}`);
      writer = await openWriter();
      faults.restarts++;
    } else if (hostile) {
      const ringByte = 3 * B + Math.floor(random() * RING_BLOCKS * B);
      volume.store[ringByte]! ^= 1 << Math.floor(random() * 8);
      faults.flips++;
    }
  }
  volume.completeTornWrite();
  const drained = writer.flush();
  let done = false;
  void drained.then(() => (done = true));
  for (let i = 0; i < DRAIN_STEPS; i++) {
    const outcome = await poll();
    if (outcome === "waiting") await clock.advance(1);
    if (done && outcome === "waiting" && reader.seq >= writer.headSeq) break;
  }
  await drained;
  await writer.close();
  const imageHash = createHash("sha256").update(volume.store).digest("hex");
  return { appended, delivered, problems, faults, reader, writer, trace, imageHash };
}
