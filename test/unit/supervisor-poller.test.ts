// The Poller as supervision needs it (on plain files): it can be started again on the same reader
// and carries on at its position (nothing twice, nothing skipped); a failure is never silent (with
// no "error" listener and nobody awaiting it, "error" is emitted anyway); an iterator abandoned
// mid-queue drops what it left and releases the poll loop, so onFrame keeps receiving.
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { ErrorCode, LunlinkError, Volume } from "../../lib/index.ts";
import { Poller } from "../../lib/poll/poller.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { sparseFile } from "../helpers/scratch.ts";
import { pollUntil } from "../helpers/until.ts";

async function ring(t: Parameters<typeof sparseFile>[0]) {
  const path = await sparseFile(t, 2 * 1024 * 1024);
  const send = await Volume.open(path, { dsync: true });
  await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 128n });
  const receive = await Volume.open(path, { readOnly: true });
  const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0, flushThresholdBytes: 1, fullQueue: "wait" });
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
  t.teardown(async () => {
    await writer.close();
    await send.close();
    await receive.close();
  });
  const write = async (from: number, count: number) => {
    for (let i = from; i < from + count; i++) await writer.append(FrameType.Data, Buffer.from(`frame ${i}`));
    await writer.flush();
  };
  return { writer, reader, receive, write };
}

const until = (what: string, check: () => boolean, limitMs = 10_000): Promise<void> => pollUntil(what, check, limitMs, 5);

const text = (bytes: Uint8Array, offset: number, length: number) => Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString();

test("a stopped poller started again on the same reader continues at its position: nothing twice, nothing skipped", async (t) => {
  const { reader, write } = await ring(t);
  const got: string[] = [];
  const poller = new Poller(reader, { pollMaxMs: 1, statusPollMs: 5, onFrame: (_s, _t, _f, b, o, l) => got.push(text(b, o, l)) });
  poller.start();
  await write(0, 3);
  await until("3 frames", () => got.length === 3);
  await poller.stop();
  await write(3, 3);
  poller.start();
  await until("6 frames", () => got.length >= 6);
  await poller.stop();
  t.deepEqual(got, ["frame 0", "frame 1", "frame 2", "frame 3", "frame 4", "frame 5"]);
});

test("a failure is never silent: emitted without listeners, rejected to finished()", async (t) => {
  // No listener, nobody waiting: "error" is emitted anyway (an unhandled error event crashes loudly).
  const a = await ring(t);
  const silent = new Poller(a.reader, { pollMaxMs: 1, statusPollMs: 5 });
  const emitted: string[] = [];
  silent.emit = ((event: string) => (emitted.push(event), true)) as typeof silent.emit;
  silent.start();
  await a.receive.close();
  await until("error emitted", () => emitted.includes("error"));
  t.true(emitted.includes("error"), "emitted with no listener");

  // Someone awaits finished(): it rejects with the coded error, and nothing else is thrown.
  const b = await ring(t);
  const watched = new Poller(b.reader, { pollMaxMs: 1, statusPollMs: 5 });
  watched.start();
  const finished = watched.finished();
  await b.receive.close();
  const error = await t.throwsAsync(finished);
  // The volume closed under the poller: its watch was running (CLOSED) or still queued, and close
  // cancelled it (CANCELLED); either way a coded error, never silence.
  t.true(([ErrorCode.Closed, ErrorCode.Cancelled] as string[]).includes((error as LunlinkError).code), `a coded close error: ${(error as LunlinkError).code}`);
});

test("an iterator abandoned mid-queue releases the poll loop: onFrame keeps receiving, the next iterator sees only new frames", async (t) => {
  const { reader, write } = await ring(t);
  let onFrame = 0;
  const poller = new Poller(reader, { pollMaxMs: 1, statusPollMs: 5, maxQueuedFrames: 4, onFrame: () => onFrame++ });
  poller.start();
  t.teardown(() => poller.stop());
  const iterator = poller.frames();
  const firstPending = iterator.next(); // an iterator collects from its first next() on (as `later` below)
  await write(0, 1);
  const first = await firstPending;
  t.is(first.done, false);
  // The consumer stops reading while frames keep coming: the queue fills to its bound and the loop pauses...
  await write(1, 10);
  await until("the queue bound reached", () => onFrame >= 5);
  await iterator.return(undefined); // ... then the consumer goes away mid-queue.
  await write(11, 20);
  await until("every frame through onFrame", () => onFrame === 31);
  const later = poller.frames();
  const pending = later.next(); // the iterator starts collecting now
  await write(31, 1);
  const next = await pending;
  t.is(next.done, false);
  t.is(Buffer.from((next.value as { payload: Uint8Array }).payload).toString(), "frame 31", "nothing left behind by the abandoned iterator");
  await later.return(undefined);
});
