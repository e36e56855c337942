// Volume on real loop devices: 512- and 4096-byte logical sectors, direct I/O loop, O_EXCL.
import test from "ava";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";

import { ErrorCode, LunlinkError, Volume, alignedBuffer, probe } from "../../lib/index.ts";
import { attachLoop } from "../helpers/loop.ts";
import { sparseFile } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;

test("geometry of a 512-byte-sector loop device", async (t) => {
  const file = await sparseFile(t, 16 * MiB);
  const device = await attachLoop(t, file, { directIo: true });
  const volume = await Volume.open(device);
  t.teardown(() => volume.close());
  t.is(volume.geometry.kind, "block");
  t.is(volume.geometry.sizeBytes, BigInt(16 * MiB));
  t.is(volume.geometry.logicalBlockSize, 512);
  t.is(volume.geometry.fileSystem, undefined);
  t.regex(volume.geometry.device, /^7:\d+$/);
});

test("a 4096-byte-sector loop device refuses 512-byte-aligned I/O and round-trips 4 KiB I/O", async (t) => {
  const file = await sparseFile(t, 16 * MiB);
  const device = await attachLoop(t, file, { sectorSize: 4096, directIo: true });
  const volume = await Volume.open(device);
  t.teardown(() => volume.close());
  t.is(volume.geometry.logicalBlockSize, 4096);
  t.true(volume.geometry.physicalBlockSize >= 4096);

  const small = alignedBuffer(512);
  const length = await t.throwsAsync(volume.write(0, small));
  t.is((length as LunlinkError).code, ErrorCode.Misaligned);
  t.regex(length.message, /logical block size 4096/);
  const offset = await t.throwsAsync(volume.read(512, 4096));
  t.is((offset as LunlinkError).code, ErrorCode.Misaligned);

  const data = volume.alloc(64 * 1024);
  data.set(randomBytes(data.length));
  await volume.write(4096 * 7, data);
  await volume.flush();
  t.true(Buffer.compare(await volume.read(4096 * 7, data.length), data) === 0);
  // The bytes landed in the backing file at the same offset.
  const backing = await readFile(file);
  t.true(Buffer.compare(backing.subarray(4096 * 7, 4096 * 7 + data.length), data) === 0);
});

test("random round trips at many offsets on a loop device, 8 in flight", async (t) => {
  const file = await sparseFile(t, 32 * MiB);
  const device = await attachLoop(t, file, { directIo: true });
  const volume = await Volume.open(device, { ioThreads: 8 });
  t.teardown(() => volume.close());
  const writes: { offset: number; data: Uint8Array }[] = [];
  for (let i = 0; i < 64; i++) {
    const blocks = 1 + (i % 16);
    const data = volume.alloc(blocks * 4096);
    data.set(randomBytes(data.length));
    writes.push({ offset: i * 512 * 1024 + (i % 7) * 512, data });
  }
  for (let i = 0; i < writes.length; i += 8) {
    await Promise.all(writes.slice(i, i + 8).map((w) => volume.write(w.offset, w.data)));
  }
  for (let i = 0; i < writes.length; i += 8) {
    const batch = writes.slice(i, i + 8);
    const back = await Promise.all(batch.map((w) => volume.read(w.offset, w.data.length)));
    back.forEach((b, j) => t.true(Buffer.compare(b, batch[j]!.data) === 0, `write ${i + j}`));
  }
});

test("O_EXCL: a block device opened exclusively cannot be opened exclusively again", async (t) => {
  const file = await sparseFile(t, 8 * MiB);
  const device = await attachLoop(t, file);
  const first = await Volume.open(device, { exclusive: true });
  t.teardown(() => first.close());
  const second = await t.throwsAsync(Volume.open(device, { exclusive: true }));
  t.is((second as LunlinkError).code, ErrorCode.Busy);
  t.is((second as LunlinkError).errno, 16);
  t.is((second as LunlinkError).syscall, "open");
  t.is((second as LunlinkError).path, device);
  await first.close();
  const third = await Volume.open(device, { exclusive: true });
  await third.close();
});

test("probe reports a loop device", async (t) => {
  const file = await sparseFile(t, 8 * MiB);
  const device = await attachLoop(t, file, { sectorSize: 4096 });
  const result = await probe(device);
  t.is(result.kind, "block");
  t.is(result.sizeBytes, BigInt(8 * MiB));
  t.is(result.logicalBlockSize, 4096);
  t.true(result.directIo);
});

test("format and inspect a 4096-byte-sector loop device through the CLI", async (t) => {
  const { main } = await import("../../lib/cli/main.ts");
  const file = await sparseFile(t, 32 * MiB);
  const device = await attachLoop(t, file, { sectorSize: 4096, directIo: true });
  let stdout = "";
  let stderr = "";
  const out = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } };
  t.is(await main(["format", device, "--node", "1", "--peer", "2", "--ring-size", "16M"], out), 0, stderr);
  t.regex(stdout, /ring 4096 blocks/);
  stdout = "";
  t.is(await main(["inspect", device, "--json"], out), 0, stderr);
  const report = JSON.parse(stdout) as { superblock: { blockBytes: number; ringBlocks: number }; status: { headSeq: number } };
  t.is(report.superblock.blockBytes, 4096);
  t.is(report.superblock.ringBlocks, 4096);
  t.is(report.status.headSeq, 1);
  t.is(await main(["format", device, "--node", "1", "--peer", "2"], out), 1);
  t.regex(stderr, /ERR_LUNLINK_ALREADY_FORMATTED/);
});
