// Volume on regular files in /var/tmp (ext4): round trips, validation, errors, concurrency.
import test from "ava";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, truncate } from "node:fs/promises";
import { join } from "node:path";

import { ErrorCode, LunlinkError, Volume, alignedBuffer } from "../../lib/index.ts";
import { scratchDir, sparseFile } from "../helpers/scratch.ts";
import { logSeed, SEED } from "../helpers/random.ts";
import { ioThreadReads } from "../helpers/syscalls.ts";

const MiB = 1024 * 1024;

async function openFile(t: Parameters<typeof sparseFile>[0], sizeBytes = 8 * MiB, options = {}) {
  const path = await sparseFile(t, sizeBytes);
  const volume = await Volume.open(path, options);
  t.teardown(() => volume.close());
  return { path, volume };
}

test("geometry of a file on ext4", async (t) => {
  const { volume } = await openFile(t, 8 * MiB);
  const g = volume.geometry;
  t.is(g.kind, "file");
  t.is(g.sizeBytes, BigInt(8 * MiB));
  t.true([512, 1024, 2048, 4096].includes(g.logicalBlockSize), `logical ${g.logicalBlockSize}`);
  t.true(g.physicalBlockSize >= g.logicalBlockSize);
  t.is(g.fileSystem, "ext4");
  t.false(g.memoryBacked);
  t.deepEqual(volume.warnings, []);
  t.regex(g.device, /^\d+:\d+$/);
});

test("random content round-trips at many offsets and lengths (fast-check)", async (t) => {
  const { path, volume } = await openFile(t, 4 * MiB);
  const block = volume.geometry.logicalBlockSize;
  const blocks = Number(volume.geometry.sizeBytes) / block;
  const seed = SEED;
  logSeed(t);
  const model = new Uint8Array(Number(volume.geometry.sizeBytes));
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: blocks - 1 }), fc.integer({ min: 1, max: 64 }), fc.boolean(), async (first, count, asBigint) => {
      const n = Math.min(count, blocks - first);
      const data = alignedBuffer(n * block);
      data.set(randomBytes(n * block));
      const offset = first * block;
      await volume.write(asBigint ? BigInt(offset) : offset, data);
      model.set(data, offset);
      const back = await volume.read(offset, n * block);
      return Buffer.compare(back, data) === 0;
    }),
    { numRuns: 300, seed },
  );
  await volume.flush();
  // What lunlink wrote is what the file holds, read through the ordinary page-cache path too.
  t.true(Buffer.compare(await readFile(path), model) === 0);
});

test("many requests in flight at once complete with the right data", async (t) => {
  const { volume } = await openFile(t, 16 * MiB, { ioThreads: 8 });
  const size = 64 * 1024;
  const count = 128;
  const buffers = Array.from({ length: count }, (_, i) => {
    const b = volume.alloc(size);
    b.fill(i + 1);
    return b;
  });
  await Promise.all(buffers.map((b, i) => volume.write(i * size, b)));
  const back = await Promise.all(buffers.map((_, i) => volume.read(i * size, size)));
  back.forEach((b, i) => {
    t.is(b[0], i + 1);
    t.is(b[size - 1], i + 1);
  });
  t.is(volume.inFlight, 0);
});

test("the JS thread keeps running while I/O is in flight", async (t) => {
  const { volume } = await openFile(t, 64 * MiB, { ioThreads: 4, dsync: true });
  const buffer = volume.alloc(4 * MiB);
  let ticks = 0;
  let ioDone = false;
  const ticker = setInterval(() => ticks++, 1);
  const io = (async () => {
    for (let i = 0; i < 16; i++) {
      await volume.write(i * 4 * MiB, buffer);
      await volume.flush();
    }
    ioDone = true;
  })();
  // Count event-loop turns that happen while writes are outstanding.
  let turnsDuringIo = 0;
  while (!ioDone) {
    await new Promise((r) => setImmediate(r));
    if (!ioDone) turnsDuringIo++;
  }
  await io;
  clearInterval(ticker);
  t.true(turnsDuringIo > 16, `event loop turned ${turnsDuringIo} times during 16 writes + flushes`);
});

test("misaligned offset, length and buffer address are refused before the syscall, naming the value", async (t) => {
  const { volume } = await openFile(t);
  const block = volume.geometry.logicalBlockSize;
  const good = volume.alloc(block);

  const offset = await t.throwsAsync(volume.write(block + 1, good), { instanceOf: LunlinkError });
  t.is(offset.code, ErrorCode.Misaligned);
  t.regex(offset.message, new RegExp(`offset ${block + 1} .*logical block size ${block}`));

  const shortBuffer = alignedBuffer(block + 100);
  const length = await t.throwsAsync(volume.write(0, shortBuffer));
  t.is((length as LunlinkError).code, ErrorCode.Misaligned);
  t.regex(length.message, new RegExp(`length ${block + 100}`));

  const backing = alignedBuffer(block * 3);
  const shifted = backing.subarray(8, 8 + block);
  const address = await t.throwsAsync(volume.write(0, shifted));
  t.is((address as LunlinkError).code, ErrorCode.Misaligned);
  t.regex(address.message, /buffer address is aligned to 8 bytes/);

  const zero = await t.throwsAsync(volume.read(0, 0));
  t.is((zero as LunlinkError).code, ErrorCode.Misaligned);
  t.throws(() => volume.alloc(block - 1), { code: ErrorCode.Misaligned });
});

test("bad offsets are invalid arguments", async (t) => {
  const { volume } = await openFile(t);
  const buffer = volume.alloc(4096);
  for (const offset of [-4096, 1.5, Number.NaN, 2 ** 60, -1n]) {
    const error = await t.throwsAsync(volume.read(offset, buffer));
    t.is((error as LunlinkError).code, ErrorCode.InvalidArgument, String(offset));
  }
  const notBuffer = await t.throwsAsync(volume.write(0, "hello" as unknown as Uint8Array));
  t.is((notBuffer as LunlinkError).code, ErrorCode.InvalidArgument);
});

test("reading or writing past the end is out of range, not a short transfer", async (t) => {
  const { volume } = await openFile(t, 1 * MiB);
  const buffer = volume.alloc(8192);
  const end = await t.throwsAsync(volume.write(MiB - 4096, buffer));
  t.is((end as LunlinkError).code, ErrorCode.OutOfRange);
  t.regex(end.message, /past the end of the volume \(1048576 bytes\)/);
  const far = await t.throwsAsync(volume.read(2n ** 62n, buffer));
  t.is((far as LunlinkError).code, ErrorCode.OutOfRange);
  await t.notThrowsAsync(volume.write(MiB - 8192, buffer));
});

test("a closed volume refuses I/O; close is idempotent", async (t) => {
  const path = await sparseFile(t, MiB);
  const volume = await Volume.open(path);
  const buffer = volume.alloc(4096);
  await volume.close();
  await volume.close();
  t.true(volume.closed);
  for (const attempt of [volume.read(0, buffer), volume.write(0, buffer), volume.flush()]) {
    const error = await t.throwsAsync(attempt);
    t.is((error as LunlinkError).code, ErrorCode.Closed);
  }
});

test("close lets running I/O finish and cancels queued I/O, which then never runs", async (t) => {
  const path = await sparseFile(t, 16 * MiB);
  const volume = await Volume.open(path, { ioThreads: 1 });
  const buffer = volume.alloc(MiB);
  buffer.fill(0x5a);
  const writes = Array.from({ length: 16 }, (_, i) => volume.write(i * MiB, buffer));
  await volume.close();
  const outcomes = await Promise.allSettled(writes);
  const content = await readFile(path);
  let cancelled = 0;
  outcomes.forEach((outcome, i) => {
    if (outcome.status === "fulfilled") {
      t.is(content[i * MiB + 17], 0x5a, `write ${i} resolved, so its data is on the volume`);
    } else {
      cancelled++;
      t.is((outcome.reason as LunlinkError).code, ErrorCode.Cancelled);
      t.is(content[i * MiB + 17], 0, `write ${i} was cancelled, so it never ran`);
    }
  });
  // close() came in the same turn as the 16 submissions, with one thread to run them.
  t.true(cancelled > 0, `${cancelled} cancelled`);
});

test("missing path, directory and bad options get clear errors", async (t) => {
  const dir = await scratchDir(t);
  const missing = await t.throwsAsync(Volume.open(join(dir, "nope")));
  t.is((missing as LunlinkError).code, ErrorCode.NotFound);
  t.is((missing as LunlinkError).errno, 2);
  t.is((missing as LunlinkError).path, join(dir, "nope"));

  await mkdir(join(dir, "sub"));
  const directory = await t.throwsAsync(Volume.open(join(dir, "sub")));
  t.is((directory as LunlinkError).code, ErrorCode.NotAVolume);
  t.regex(directory.message, /block device or a regular file/);

  const fifoLike = await t.throwsAsync(Volume.open("/dev/null"));
  t.is((fifoLike as LunlinkError).code, ErrorCode.NotAVolume);

  for (const [options, name] of [
    [{ ioTimeoutMs: 0 }, "ioTimeoutMs"],
    [{ ioThreads: 65 }, "ioThreads"],
    [{ direct: "yes" }, "direct"],
  ] as const) {
    const error = await t.throwsAsync(Volume.open(join(dir, "nope"), options as never));
    t.is((error as LunlinkError).code, ErrorCode.InvalidArgument);
    t.true(error.message.startsWith(name), error.message);
  }
  const empty = await t.throwsAsync(Volume.open(""));
  t.is((empty as LunlinkError).code, ErrorCode.InvalidArgument);
});

test("a read-only volume refuses writes", async (t) => {
  const { volume } = await openFile(t, MiB, { readOnly: true });
  const error = await t.throwsAsync(volume.write(0, volume.alloc(4096)));
  t.is((error as LunlinkError).code, ErrorCode.ReadOnly);
  await t.notThrowsAsync(volume.read(0, 4096));
});

test("exclusive open of a file takes an OFD lock that a second exclusive open cannot", async (t) => {
  const { path } = await openFile(t, MiB, { exclusive: true });
  const second = await t.throwsAsync(Volume.open(path, { exclusive: true }));
  t.is((second as LunlinkError).code, ErrorCode.Busy);
  t.is((second as LunlinkError).syscall, "fcntl");
  // A non-exclusive open (an inspector) is still allowed.
  const reader = await Volume.open(path, { readOnly: true });
  await reader.close();
});

test("the lock is released on close", async (t) => {
  const path = await sparseFile(t, MiB);
  const first = await Volume.open(path, { exclusive: true });
  await first.close();
  const second = await Volume.open(path, { exclusive: true });
  await second.close();
  t.pass();
});

test("a file truncated under an open volume gives a short transfer error, not garbage", async (t) => {
  const { path, volume } = await openFile(t, MiB);
  await truncate(path, 64 * 1024);
  const error = await t.throwsAsync(volume.read(512 * 1024, 4096));
  t.is((error as LunlinkError).code, ErrorCode.ShortIo);
  t.regex(error.message, /transferred 0 of 4096 bytes/);
});

test("a volume on tmpfs opens with a memory-backed warning", async (t) => {
  const path = `/dev/shm/lunlink-test-${process.pid}-${Date.now()}.img`;
  const handle = await open(path, "w");
  await handle.truncate(MiB);
  await handle.close();
  t.teardown(() => import("node:fs/promises").then((fs) => fs.rm(path, { force: true })));
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on("warning", onWarning);
  t.teardown(() => process.off("warning", onWarning));
  const volume = await Volume.open(path);
  t.teardown(() => volume.close());
  t.true(volume.geometry.memoryBacked);
  t.is(volume.geometry.fileSystem, "tmpfs");
  t.regex(volume.warnings[0] ?? "", /memory-backed/);
  await new Promise((r) => setImmediate(r));
  t.true(warnings.some((w) => w.includes("memory-backed")));
});

test("open honours an AbortSignal that is already aborted", async (t) => {
  const path = await sparseFile(t, MiB);
  const error = await t.throwsAsync(Volume.open(path, { signal: AbortSignal.abort() }));
  t.is((error as LunlinkError).code, ErrorCode.Aborted);
});

test("dsync volumes and flush work", async (t) => {
  const { path, volume } = await openFile(t, MiB, { dsync: true });
  const buffer = volume.alloc(4096);
  buffer.fill(0xa5);
  await volume.write(4096, buffer);
  await volume.flush();
  const content = await readFile(path);
  t.is(content[4096], 0xa5);
  t.is(content[0], 0);
});

test("watch resolves with the new content when the range changes, false when it does not", async (t) => {
  const { volume } = await openFile(t, MiB);
  const writer = await Volume.open(volume.path);
  t.teardown(() => writer.close());
  const seen = volume.alloc(4096); // baseline: zeros, as on disk
  const change = writer.alloc(4096);
  change.fill(0x77);
  const watching = volume.watch(8192, seen, { compareBytes: 16, sleepUs: 100, timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 30));
  await writer.write(8192, change);
  t.true(await watching);
  t.is(seen[0], 0x77);
  t.is(seen[4095], 0x77);
  // Nothing changes now: the watch times out and says so.
  t.false(await volume.watch(8192, seen, { compareBytes: 16, sleepUs: 200, timeoutMs: 50 }));
  // A change beyond compareBytes is not a change.
  change[100] = 1;
  await writer.write(8192, change);
  t.false(await volume.watch(8192, seen, { compareBytes: 16, sleepUs: 200, timeoutMs: 30 }));
  const bad = await t.throwsAsync(volume.watch(8192, seen, { compareBytes: 0, sleepUs: 1, timeoutMs: 1 }));
  t.is((bad as LunlinkError).code, ErrorCode.InvalidArgument);
});

// Serial: no other test's watch may re-read on a lunlink-io thread meanwhile.
test.serial("a watch backs its sleep off by itself up to maxSleepUs: few re-reads while nothing changes, and a change is still seen", async (t) => {
  const { volume } = await openFile(t, MiB);
  const writer = await Volume.open(volume.path);
  t.teardown(() => writer.close());
  const seen = volume.alloc(4096);
  // 400 ms unchanged from 50 us: 50 us for 200 us, 400 us for 1.6 ms, 3.2 ms for 12.8 ms, then 20 ms:
  // about 30 re-reads (a constant 50 us pace would make thousands). CPU pressure only makes fewer.
  const before = await ioThreadReads();
  t.false(await volume.watch(8192, seen, { compareBytes: 16, sleepUs: 50, maxSleepUs: 20_000, timeoutMs: 400 }));
  const reads = (await ioThreadReads()) - before;
  t.true(reads <= 100, `${reads} read syscalls during a 400 ms backed-off watch (about 30 expected)`);
  const change = writer.alloc(4096);
  change.fill(0x5a);
  const watching = volume.watch(8192, seen, { compareBytes: 16, sleepUs: 50, maxSleepUs: 20_000, timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  await writer.write(8192, change);
  t.true(await watching, "backed off to 20 ms, the watch still sees the change");
  t.is(seen[0], 0x5a);
  const bad = await t.throwsAsync(volume.watch(8192, seen, { compareBytes: 16, sleepUs: 100, maxSleepUs: 50, timeoutMs: 1 }));
  t.is((bad as LunlinkError).code, ErrorCode.InvalidArgument, "maxSleepUs below sleepUs");
});

test("close ends a pending watch", async (t) => {
  const path = await sparseFile(t, MiB);
  const volume = await Volume.open(path);
  const watching = volume.watch(0, volume.alloc(4096), { compareBytes: 16, sleepUs: 1000, timeoutMs: 60_000 });
  await new Promise((r) => setTimeout(r, 20));
  await volume.close();
  t.false(await watching);
});
