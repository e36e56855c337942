// RingWriter's life around its core, on an in-memory volume and a fake clock: close() is bounded
// (and reports what it could not write) even while waiting for an ack that never comes or on a write
// that hangs; after an I/O error the writer ends cleanly (run() rejects with the coded error, pending
// calls settle with it, close() is immediate) and a new writer opens the next epoch on the same
// volume; a fatal error is never silent; the delivered mark is persisted apart from the ack.
// Hangs of the code under test are turned into failures by a generous real-time guard (no timing
// is asserted).
import test from "ava";

import { STATUS_SLOT_BLOCKS } from "../../lib/format/layout.ts";
import { decodeStatus, pickStatus } from "../../lib/format/status.ts";
import { ErrorCode, FrameType, LunlinkError, formatVolume } from "../../lib/index.ts";
import { RingWriter, type RingWriterOptions } from "../../lib/ring/writer.ts";
import { FakeClock, settle } from "../helpers/fake-clock.ts";
import { MemVolume } from "../helpers/memvolume.ts";

const B = 4096;
const RING_BLOCKS = 16;
/** Real-time guard: a promise of the code under test that has not settled by then is a hang. */
const HANG_GUARD_MS = 10_000;

async function setup(options: Partial<RingWriterOptions> = {}, openNow = true) {
  const clock = new FakeClock();
  const volume = new MemVolume((RING_BLOCKS + 4) * B);
  await formatVolume(volume.asVolume(), { writerNode: 1, peerNode: 2, ringBlocks: BigInt(RING_BLOCKS) });
  const open = (extra: Partial<RingWriterOptions> = {}) => RingWriter.open(volume.asVolume(), { nodeId: 1, maxRecordBlocks: 4, maxDelayMs: 0, clock, ...options, ...extra });
  return { clock, volume, open, writer: openNow ? await open() : undefined! };
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle (hang)`)), HANG_GUARD_MS);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

function statusOf(volume: MemVolume) {
  const slot = (i: 0 | 1) => decodeStatus(volume.store.subarray(STATUS_SLOT_BLOCKS[i] * B, STATUS_SLOT_BLOCKS[i] * B + B));
  return pickStatus(slot(0), slot(1));
}

test("close() returns within closeTimeoutMs while a control record waits for an ack that never comes, and reports it", async (t) => {
  const { clock, writer } = await setup({ closeTimeoutMs: 3000 });
  // No peer: control records fill the ring, then the next one must wait for an ack forever.
  for (let i = 0; i < 8; i++) {
    writer.tryAppend(FrameType.Control, new Uint8Array(15_000));
    await clock.advance(1);
  }
  t.true(writer.counters.ackWaits > 0, "the writer waits for an ack");
  t.is(writer.state, "awaitingAck");
  let reported: unknown;
  writer.on("close", (report) => (reported = report));
  const closing = writer.close();
  await clock.advance(3000);
  const report = await within(closing, "close()");
  t.true(report.unflushedFrames > 0 && report.unflushedBytes > report.unflushedFrames * 15_000, JSON.stringify(report));
  t.deepEqual(reported, report);
  t.is(writer.state, "closed");
  t.throws(() => writer.tryAppend(FrameType.Data, new Uint8Array(1)), { code: ErrorCode.Closed });
  await within(writer.run(), "run() after close");
});

test("close() returns within closeTimeoutMs while a write hangs (stalled device)", async (t) => {
  const { clock, volume, writer } = await setup({ closeTimeoutMs: 2000 });
  volume.stallWrites = true;
  writer.tryAppend(FrameType.Data, new Uint8Array(500));
  await clock.advance(1);
  t.is(writer.state, "writingRecord");
  const closing = writer.close();
  await clock.advance(2000);
  const report = await within(closing, "close()");
  t.like(report, { unflushedFrames: 1, unflushedBytes: 504 });
  volume.releaseStalledWrites(); // the parked write completes later: the stopped writer ignores it
  await settle();
  t.is(writer.state, "closed");
});

test("after an I/O error: run() rejects with the coded error, pending calls settle with it, close() is quick, a new epoch opens", async (t) => {
  const { clock, volume, writer, open } = await setup({ fullQueue: "wait", queueLimitBytes: 1024 });
  const epoch = writer.epoch;
  const life = writer.run();
  volume.stallWrites = true;
  // Fill the record being written and the next buffer, so an append and a flush wait.
  for (let i = 0; writer.tryAppend(FrameType.Data, new Uint8Array(1000)) === "queued" && i < 100; i++) await clock.advance(1);
  const waitingAppend = writer.append(FrameType.Data, new Uint8Array(1000));
  const waitingFlush = writer.flush();
  const eio = new LunlinkError(ErrorCode.IoError, "simulated EIO", { errno: 5, syscall: "pwrite", path: volume.path });
  volume.failWith = eio;
  volume.releaseStalledWrites();
  await clock.advance(1);
  await t.throwsAsync(within(life, "run()"), { code: ErrorCode.IoError });
  await t.throwsAsync(within(waitingAppend, "append()"), { code: ErrorCode.IoError });
  await t.throwsAsync(within(waitingFlush, "flush()"), { code: ErrorCode.IoError });
  t.is(writer.error, eio);
  t.is(writer.state, "failed");
  t.throws(() => writer.tryAppend(FrameType.Data, new Uint8Array(1)), { code: ErrorCode.IoError });
  const report = await within(writer.close(), "close() after the error");
  t.is(report.error, eio);
  t.true(report.unflushedFrames > 0);
  // The device answers again: a new writer takes the next epoch on the same volume.
  volume.failWith = undefined;
  const next = await open();
  t.is(next.epoch, epoch + 1n);
  t.true(await next.append(FrameType.Data, new Uint8Array(10)));
  const flushed = next.flush();
  await clock.advance(1);
  await within(flushed, "flush() of the new writer");
  t.like(await within(next.close(), "close()"), { unflushedFrames: 0, unflushedBytes: 0 });
});

test.serial("a fatal error is never silent: 'error' when someone listens, a process warning otherwise", async (t) => {
  for (const listening of [true, false]) {
    const { clock, volume, writer } = await setup();
    const seen: unknown[] = [];
    if (listening) writer.on("error", (error) => seen.push(error));
    const onWarning = (warning: Error & { code?: string }) => {
      if (warning.code === ErrorCode.IoError) seen.push(warning);
    };
    process.on("warning", onWarning);
    volume.failWith = new LunlinkError(ErrorCode.IoError, "simulated EIO");
    writer.tryAppend(FrameType.Data, new Uint8Array(10));
    await clock.advance(1);
    await new Promise((r) => setTimeout(r, 10)); // warnings are emitted on a later tick
    process.off("warning", onWarning);
    t.is(seen.length, 1, listening ? "one 'error' event" : "one process warning");
    t.true(listening ? seen[0] instanceof LunlinkError : (seen[0] as Error).name === "LunlinkWarning");
    await writer.close();
  }
});

test("the status block carries the ack and the delivered mark apart; the mark survives a writer restart", async (t) => {
  const { clock, volume, open } = await setup({}, false);
  const first = await open({ localAck: () => ({ epoch: 5n, seq: 40n }), delivered: () => ({ epoch: 5n, seq: 33n }) });
  await clock.advance(200); // a status interval
  t.like(statusOf(volume), { ackEpoch: 5n, ackSeq: 40n, deliveredEpoch: 5n, deliveredSeq: 33n });
  await within(first.close(), "close()");
  const second = await open({ localAck: () => ({ epoch: 5n, seq: 41n }) });
  t.like(statusOf(volume), { epoch: second.epoch, ackSeq: 41n, deliveredEpoch: 5n, deliveredSeq: 33n });
  await within(second.close(), "close()");
});
