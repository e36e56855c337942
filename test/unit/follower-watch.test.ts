// The follower's watch on a real ring (a file volume): the options follow() builds, maxSleepUs
// included, reach the addon through RingReader.watch, so an idle wait backs off natively (few
// re-reads, counted as read syscalls of the addon's lunlink-io threads) and still sees the next record; a stamp watch
// (untilStamp, what follow() uses right after a record) ends on the next seq's stamp only.
import test from "ava";

import type { WatchOptions } from "../../lib/io/volume.ts";
import { Volume } from "../../lib/index.ts";
import { WATCH_COMPARE_BYTES } from "../../lib/poll/follower.ts";
import { ErrorCode } from "../../lib/errors.ts";
import { FrameType, STAMP_MAGIC } from "../../lib/format/layout.ts";
import { fileRing } from "../helpers/file-ring.ts";
import { sparseFile } from "../helpers/scratch.ts";
import { ioThreadReads } from "../helpers/syscalls.ts";

test.serial("RingReader.watch hands maxSleepUs to the addon: an idle 400 ms wait makes few re-reads, and the next record ends it", async (t) => {
  const { writer, reader } = await fileRing(t);
  t.is(await reader.poll(() => {}), "waiting");
  // 50 us for 200 us, 400 us for 1.6 ms, 3.2 ms for 12.8 ms, then 20 ms: about 30 re-reads in 400 ms
  // (a constant 50 us pace: thousands). CPU pressure only makes fewer.
  const idle: WatchOptions = { compareBytes: WATCH_COMPARE_BYTES, sleepUs: 50, maxSleepUs: 20_000, timeoutMs: 400 };
  const before = await ioThreadReads();
  t.false(await reader.watch(idle));
  const reads = (await ioThreadReads()) - before;
  t.true(reads <= 100, `${reads} read syscalls during a 400 ms idle wait (about 30 expected)`);
  const watching = reader.watch({ ...idle, timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  await writer.append(FrameType.Data, new TextEncoder().encode("after the back-off"));
  t.true(await watching, "backed off to 20 ms, the watch sees the record");
  const frames: string[] = [];
  t.is(await reader.poll((_s, _type, _f, bytes, offset, length) => frames.push(new TextDecoder().decode(bytes.subarray(offset, offset + length))), true), "delivered");
  t.deepEqual(frames, ["after the back-off"]);
});

test.serial("a stamp watch ends on a stamp of the watched magic and seq or later, not on other changes, with no baseline read first", async (t) => {
  const path = await sparseFile(t, 1024 * 1024);
  const volume = await Volume.open(path, { dsync: false });
  t.teardown(() => volume.close());
  const stamp = (magic: number, seq: bigint): Uint8Array => {
    const block = volume.alloc(4096);
    const v = new DataView(block.buffer, block.byteOffset, block.byteLength);
    v.setUint32(0, magic, true);
    v.setBigUint64(8, seq, true);
    return block;
  };
  const seen = volume.alloc(4096);
  seen.fill(0xee); // a stale buffer: a stamp watch compares nothing with it
  const until = { magic: STAMP_MAGIC, seq: 7n };
  const watchOptions = { compareBytes: WATCH_COMPARE_BYTES, sleepUs: 100, maxSleepUs: 2000, timeoutMs: 60, untilStamp: until };
  t.false(await volume.watch(8192, seen, watchOptions), "zeros: no stamp");
  await volume.write(8192, stamp(STAMP_MAGIC, 6n));
  t.false(await volume.watch(8192, seen, watchOptions), "an older seq (the last lap's record) is no end");
  await volume.write(8192, stamp(STAMP_MAGIC + 1, 7n));
  t.false(await volume.watch(8192, seen, watchOptions), "another magic is no end");
  const watching = volume.watch(8192, seen, { ...watchOptions, timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 30));
  await volume.write(8192, stamp(STAMP_MAGIC, 7n));
  t.true(await watching, "the watched seq ends it");
  t.is(new DataView(seen.buffer, seen.byteOffset).getBigUint64(8, true), 7n, "its block is in the buffer");
  await volume.write(8192, stamp(STAMP_MAGIC, 9n));
  t.true(await volume.watch(8192, seen, watchOptions), "a later seq (it lapped the reader) ends it at once");
  for (const bad of [{ magic: -1, seq: 1n }, { magic: 2 ** 32, seq: 1n }, { magic: STAMP_MAGIC, seq: -1n }, { magic: STAMP_MAGIC, seq: 1n << 63n }]) {
    const error = await t.throwsAsync(volume.watch(8192, seen, { ...watchOptions, untilStamp: bad }));
    t.is((error as { code?: string }).code, ErrorCode.InvalidArgument);
  }
});

test.serial("RingReader after a record it watched for: a stamp watch for the next seq sees the next record", async (t) => {
  const { writer, reader } = await fileRing(t);
  const texts: string[] = [];
  const visit = (_s: bigint, _type: number, _f: number, bytes: Uint8Array, offset: number, length: number) => void texts.push(new TextDecoder().decode(bytes.subarray(offset, offset + length)));
  await writer.append(FrameType.Data, new TextEncoder().encode("one"));
  await writer.flush();
  t.is(await reader.poll(visit), "delivered");
  const next: WatchOptions = { compareBytes: WATCH_COMPARE_BYTES, sleepUs: 50, maxSleepUs: 2000, timeoutMs: 50, untilStamp: { magic: STAMP_MAGIC, seq: reader.seq } };
  t.false(await reader.watch(next), "nothing written yet");
  const watching = reader.watch({ ...next, timeoutMs: 10_000 });
  await writer.append(FrameType.Data, new TextEncoder().encode("two"));
  t.true(await watching);
  t.is(await reader.poll(visit, true), "delivered");
  t.deepEqual(texts, ["one", "two"]);
});
