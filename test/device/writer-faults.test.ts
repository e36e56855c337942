// The RingWriter's end on a real device fault (nbdkit error filter for EIO, SIGSTOP for a stall,
// test/helpers/nbd.ts), as a supervisor sees it: run() rejects with the coded error, pending calls
// settle with it, close() returns at once with what was not written, and a new RingWriter opened on
// the same path once the device answers takes the next epoch, and its frames reach a reader.
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { ErrorCode, Volume } from "../../lib/index.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { faultDevice } from "../helpers/nbd.ts";

/** Bound on waits for the device to answer again (polls of 20 ms). */
const HEAL_POLLS = 250;

async function deliveredTexts(reader: RingReader, count: number): Promise<string[]> {
  const texts: string[] = [];
  const visit = (_s: bigint, _t: number, _f: number, bytes: Uint8Array, offset: number, length: number) => texts.push(Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString());
  for (let i = 0; i < 200 && texts.length < count; i++) {
    if ((await reader.poll(visit)) === "waiting") await new Promise((r) => setTimeout(r, 10));
  }
  return texts;
}

for (const fault of ["EIO", "stall"] as const) {
  test(`writer on a device that ${fault === "EIO" ? "fails with EIO" : "stalls"}: ends cleanly, close() is bounded, a new writer on the same path takes the next epoch`, async (t) => {
    const device = await faultDevice(t);
    const path = device.device;
    let send = await Volume.open(path, { dsync: true, ioTimeoutMs: 1000 });
    t.teardown(() => send.close().catch(() => undefined));
    await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 256n });
    const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0, closeTimeoutMs: 2000 });
    t.teardown(() => writer.close());
    const life = writer.run();
    life.catch(() => undefined);
    await writer.append(FrameType.Control, Buffer.from("before"));
    await writer.flush();
    const epoch = writer.epoch;

    if (fault === "EIO") await device.setFailing(true);
    else device.stop();
    await writer.append(FrameType.Control, Buffer.from("lost"));
    const flushing = writer.flush();
    const code = fault === "EIO" ? ErrorCode.IoError : ErrorCode.IoStalled;
    await t.throwsAsync(flushing, { code });
    await t.throwsAsync(life, { code });
    t.is(writer.state, "failed");
    await t.throwsAsync(writer.append(FrameType.Data, Buffer.from("after")), { code });
    const report = await writer.close();
    t.is(report.error?.code, code);
    t.is(report.unflushedFrames, 1, "the frame whose write failed is reported");

    // The device answers again: reopen the volume (a stalled request must have returned first, or
    // it could land over the new epoch) and a new writer on the same path.
    if (fault === "EIO") await device.setFailing(false);
    else device.resume();
    for (let i = 0; i < HEAL_POLLS && send.stalled; i++) await new Promise((r) => setTimeout(r, 20));
    t.false(send.stalled, "the parked request returned");
    await send.close();
    send = await Volume.open(path, { dsync: true, ioTimeoutMs: 1000 });
    const next = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0 });
    t.is(next.epoch, epoch + 1n);
    const receive = await Volume.open(path, { readOnly: true });
    t.teardown(() => receive.close());
    const reader = await RingReader.open(receive, { nodeId: 2, start: "oldest" });
    await next.append(FrameType.Control, Buffer.from("after"));
    await next.flush();
    const texts = await deliveredTexts(reader, 2);
    t.deepEqual(texts.filter((s) => s !== "lost"), ["before", "after"]);
    t.like(await next.close(), { unflushedFrames: 0 });
  });
}
