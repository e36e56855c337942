// RingWriter (the shell) with several record writes in flight, on an in-memory volume whose record
// writes the test completes one by one, in any order, or fails: flush() waits for the completed
// prefix, the status block on the volume never names a record still in flight, a failure in the
// middle ends the writer only after its other writes settled, and the next epoch starts above every
// record that reached the volume. Hangs become failures by a real-time guard (no timing asserted).
import test from "ava";

import { RING_START_BLOCK, STATUS_SLOT_BLOCKS } from "../../lib/format/layout.ts";
import { decodeStatus, pickStatus } from "../../lib/format/status.ts";
import { ErrorCode, FrameType, LunlinkError, formatVolume, type Volume } from "../../lib/index.ts";
import { RingWriter, type RingWriterOptions } from "../../lib/ring/writer.ts";
import { FakeClock, settle } from "../helpers/fake-clock.ts";
import { MemVolume } from "../helpers/memvolume.ts";

const B = 4096;
const RING_BLOCKS = 32;
const HANG_GUARD_MS = 10_000;

/** A MemVolume whose record writes (ring blocks) wait until the test completes or fails them. */
class GatedVolume {
  readonly mem = new MemVolume((RING_BLOCKS + 4) * B);
  gating = false;
  /** Held record writes by ring block. */
  readonly held = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();

  asVolume(): Volume {
    const gated = Object.create(this.mem) as MemVolume;
    gated.write = async (offset: number | bigint, buffer: Uint8Array): Promise<void> => {
      const block = Number(offset) / B - RING_START_BLOCK;
      if (this.gating && block >= 0) await new Promise<void>((resolve, reject) => this.held.set(block, { resolve, reject }));
      await this.mem.write(offset, buffer);
    };
    return gated.asVolume();
  }

  complete(block: number): void {
    const gate = this.held.get(block);
    if (gate === undefined) throw new Error(`no write held at ring block ${block}`);
    this.held.delete(block);
    gate.resolve();
  }

  fail(block: number, error: Error): void {
    const gate = this.held.get(block);
    if (gate === undefined) throw new Error(`no write held at ring block ${block}`);
    this.held.delete(block);
    gate.reject(error);
  }

  statusHead(): bigint | undefined {
    const slot = (i: 0 | 1) => decodeStatus(this.mem.store.subarray(STATUS_SLOT_BLOCKS[i] * B, STATUS_SLOT_BLOCKS[i] * B + B));
    return pickStatus(slot(0), slot(1))?.headSeq;
  }
}

async function setup(options: Partial<RingWriterOptions> = {}) {
  const clock = new FakeClock();
  const volume = new GatedVolume();
  await formatVolume(volume.mem.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS) });
  const open = () => RingWriter.open(volume.asVolume(), { nodeId: 1, maxRecordBlocks: 4, maxDelayMs: 0, flushThresholdBytes: 100, maxRecordsInFlight: 3, statusIntervalMs: 50, clock, ...options });
  const writer = await open();
  volume.gating = true;
  return { clock, volume, writer, open };
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle (hang)`)), HANG_GUARD_MS);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

function watch(promise: Promise<unknown>): { settled: boolean } {
  const state = { settled: false };
  void promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

/** Appends one small data frame and lets the pump issue its record (1 block each). */
async function oneRecord(writer: RingWriter, clock: FakeClock): Promise<void> {
  writer.tryAppend(FrameType.Data, new Uint8Array(100));
  await clock.advance(0);
}

test("three record writes in flight complete out of order: flush() waits for the prefix, the status never names a record in flight", async (t) => {
  const { clock, volume, writer } = await setup();
  const headAtOpen = volume.statusHead() ?? 0n;
  for (let i = 0; i < 3; i++) await oneRecord(writer, clock);
  t.deepEqual([...volume.held.keys()], [0, 1, 2], "three record writes issued at once");
  const flushed = watch(writer.flush());
  volume.complete(2);
  volume.complete(1);
  await clock.advance(200); // past the status interval: the heartbeat waits for record 1
  t.false(flushed.settled, "flush() waits for record 1");
  t.is(writer.headSeq, headAtOpen);
  t.is(volume.statusHead(), headAtOpen, "no status write while record 1 is in flight");
  volume.complete(0);
  await clock.advance(1);
  await within(writer.flush(), "flush()");
  t.true(flushed.settled);
  t.is(writer.headSeq, headAtOpen + 3n);
  await clock.advance(100);
  t.is(volume.statusHead(), headAtOpen + 3n);
  t.is(writer.counters.records, 3);
  volume.gating = false;
  const closing = writer.close();
  await clock.advance(1);
  t.like(await within(closing, "close()"), { unflushedFrames: 0 });
});

test("a write that fails with later ones in flight: the writer stops once they settled; the next epoch starts above every record that reached the volume", async (t) => {
  const { clock, volume, writer, open } = await setup();
  const epoch = writer.epoch;
  const first = writer.headSeq;
  const life = writer.run();
  const ended = watch(life);
  for (let i = 0; i < 3; i++) await oneRecord(writer, clock);
  volume.complete(0);
  await settle();
  volume.fail(1, new LunlinkError(ErrorCode.IoError, "simulated EIO", { errno: 5, syscall: "pwrite", path: volume.mem.path }));
  await clock.advance(1);
  t.is(writer.state, "failed");
  t.false(ended.settled, "run() waits for the write still in flight");
  t.is(writer.headSeq, first + 1n, "the head stops before the hole");
  volume.complete(2); // lands after the failure: on the volume, but never named by the head
  await clock.advance(1);
  await t.throwsAsync(within(life, "run()"), { code: ErrorCode.IoError });
  t.like(await within(writer.close(), "close()"), { unflushedFrames: 2 });
  t.is(volume.statusHead(), first, "the status never moved over the hole");
  volume.gating = false;
  const next = await open();
  t.is(next.epoch, epoch + 1n);
  t.true(next.headSeq > first + 2n, `the new epoch starts at ${next.headSeq}, above record ${first + 2n} that reached the volume`);
  await settle();
  const closing = next.close();
  await clock.advance(1);
  await within(closing, "close()");
});
