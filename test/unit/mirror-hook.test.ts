// HookMirror with real commands: dd copies each range; failing, hanging and missing commands.
import test, { type ExecutionContext } from "ava";
import { existsSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { ErrorCode, FrameType, LunlinkError, RingReader, RingWriter, Volume, formatVolume } from "../../lib/index.ts";
import { HookMirror } from "../../lib/mirror/hook.ts";
import { scratchDir, sparseFile } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;
const IO_GUARD_MS = 60_000;
const DD = 'dd if="$LUNLINK_SRC" of="$LUNLINK_DST" bs="$LUNLINK_BLOCK_SIZE" skip=$((LUNLINK_OFFSET / LUNLINK_BLOCK_SIZE)) seek=$((LUNLINK_OFFSET / LUNLINK_BLOCK_SIZE)) count=$((LUNLINK_LENGTH / LUNLINK_BLOCK_SIZE)) iflag=direct oflag=direct,dsync conv=notrunc status=none';

// rsync copies the whole volume per run (it has no byte range), comparing blocks (--no-whole-file)
// and rewriting only those that differ in place; --ignore-times because a volume's size never changes.
const RSYNC = 'rsync --inplace --fsync --copy-devices --write-devices --no-whole-file --ignore-times "$LUNLINK_SRC" "$LUNLINK_DST"';

/**
 * A hang guard declared to ava (its inactivity bound then waits as long): every hook run forks a
 * process and an fsync; under stress-ng's sync-write hogs the rsync test's 900 frames over a 2 MiB
 * volume ran past ava's 180 s without a hang.
 */
const HOOK_TEST_GUARD_MS = 600_000;

test("a dd hook copies every write; the reader on the destination gets every frame once, in order", (t) => hookCopies(t, DD, 1200, 2 * MiB, 64n));

// rsync copies the whole volume on every run: a 256 KiB volume with a 16-block ring laps as often as the dd test with a fifth of its frames.
test("an rsync --inplace --fsync --copy-devices --write-devices hook: every frame once, in order", (t) => hookCopies(t, RSYNC, 240, 256 * 1024, 16n));

async function hookCopies(t: ExecutionContext, command: string, total: number, volumeBytes: number, ringBlocks: bigint): Promise<void> {
  t.timeout(HOOK_TEST_GUARD_MS);
  const aPath = await sparseFile(t, volumeBytes, "a.img");
  const bPath = await sparseFile(t, volumeBytes, "b.img");
  // The device deadline (5 s by default) is the product's stall detector, not this test's subject: on a
  // disk shared with sync-write hogs (stress-ng --hdd) a read of b once took longer, and the test failed
  // ERR_LUNLINK_IO_STALLED. A stall that lasts is still an error, after IO_GUARD_MS.
  const a = await Volume.open(aPath, { dsync: true, ioTimeoutMs: IO_GUARD_MS });
  const b = await Volume.open(bPath, { readOnly: true, ioTimeoutMs: IO_GUARD_MS });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  await formatVolume(a, { writerNode: 1, peerNode: 2, ringBlocks });
  const hook = new HookMirror({ command, source: aPath, destination: bPath, blockBytes: 4096 });
  // Before the files go: a copy the writer's last writes started must not run into their removal
  // (rsync recreated the removed destination: ENOTEMPTY in the scratch directory's teardown).
  t.teardown(() => hook.close());
  hook.markDirty(0, volumeBytes); // initial full copy, as a deployment's first sync would be
  await hook.sync();
  const reader = await RingReader.open(b, { nodeId: 2, start: "head" });
  const writer = await RingWriter.open(a, { nodeId: 1, maxDelayMs: 1, maxRecordBlocks: 4, overwriteUnacked: false, fullQueue: "wait", queueLimitBytes: 32 * 1024, peerAck: () => reader.ack });
  hook.attach(writer);
  hook.markDirty(0, 4096); // the new epoch's superblock (copy A) and, below, copy B
  hook.markDirty(volumeBytes - 4096, 4096);
  const got: number[] = [];
  const visit = (_s: bigint, _t: number, _f: number, bytes: Uint8Array, offset: number) => got.push(new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0, true));
  const produce = (async () => {
    for (let i = 0; i < total; i++) {
      const payload = new Uint8Array(700);
      new DataView(payload.buffer).setUint32(0, i, true);
      await writer.append(FrameType.Data, payload);
    }
    await writer.flush();
  })();
  for (let n = 0; n < 100_000 && got.length < total; n++) {
    await hook.sync();
    if ((await reader.poll(visit)) === "waiting") await new Promise((r) => setTimeout(r, 1));
  }
  await produce;
  await writer.close();
  await hook.close();
  t.is(writer.listenerCount("write"), 0, "close() detached the hook from the writer");
  t.deepEqual(got, Array.from({ length: total }, (_, i) => i));
  t.is(reader.counters.lost, 0n);
  t.true(writer.counters.bytesWritten > 2 * Number(ringBlocks) * 4096, `the ring lapped (${writer.counters.bytesWritten} bytes written)`);
  t.true(hook.counters.invocations > 10);
  t.is(hook.counters.failures, 0);
  t.log(`${hook.counters.invocations} hook runs, ${writer.counters.bytesWritten} bytes written`);
}

test("a failing hook is retried, reported with its stderr, and its range is copied once it heals", async (t) => {
  const dir = await scratchDir(t);
  const src = await sparseFile(t, MiB, "src.img");
  const dst = await sparseFile(t, MiB, "dst.img");
  const broken = join(dir, "broken");
  await writeFile(broken, "");
  const hook = new HookMirror({ command: `if [ -e "${broken}" ]; then echo "array says no" >&2; exit 3; fi; ${DD}`, source: src, destination: dst, blockBytes: 4096, retries: 2, retryDelayMs: 1 });
  const errors: LunlinkError[] = [];
  hook.on("error", (e) => errors.push(e));
  hook.markDirty(8192, 8192);
  const failed = await t.throwsAsync(hook.sync());
  t.is((failed as LunlinkError).code, ErrorCode.IoError);
  t.regex(failed.message, /exited 3: array says no/);
  t.is(hook.counters.failures, 3);
  t.is(hook.pendingBytes, 8192, "the range stays dirty: nothing is lost");
  t.is(errors.length, 1);
  await rm(broken);
  await hook.sync();
  t.is(hook.pendingBytes, 0);
  t.is(hook.counters.bytesCopied, 8192);
});

test("a hanging hook is killed at its timeout; a missing command says so", async (t) => {
  const dir = await scratchDir(t);
  const hang = new HookMirror({ command: "sleep 30", source: "/dev/null", destination: "/dev/null", blockBytes: 4096, timeoutMs: 100, retries: 0 });
  hang.markDirty(0, 4096);
  const slow = await t.throwsAsync(hang.sync());
  t.regex(slow.message, /did not finish within 100 ms \(killed\)/);
  const missing = new HookMirror({ command: join(dir, "no-such-tool"), source: "/dev/null", destination: "/dev/null", blockBytes: 4096, retries: 0 });
  missing.markDirty(0, 4096);
  const notFound = await t.throwsAsync(missing.sync());
  t.regex(notFound.message, /exited 127 \(command not found\)/);
  t.false(existsSync(join(dir, "no-such-tool")));
});

test("close() lets the running copy finish, starts no other, and reports what it left; the hook refuses work after it", async (t) => {
  const dir = await scratchDir(t);
  const go = join(dir, "go");
  const runs = join(dir, "runs");
  // Each invocation waits for the test's "go" file (at most 20 s), then logs its range.
  const command = `for i in $(seq 2000); do [ -e "${go}" ] && break; sleep 0.01; done; echo "$LUNLINK_OFFSET" >> "${runs}"`;
  const hook = new HookMirror({ command, source: "/dev/null", destination: "/dev/null", blockBytes: 4096, retries: 0 });
  t.teardown(() => hook.close());
  hook.markDirty(0, 4096); // starts the first invocation, which waits for "go"
  hook.markDirty(8192, 4096); // queued behind it
  const closing = hook.close();
  await writeFile(go, "");
  t.is(await closing, 4096, "the queued range was left uncopied, and said so");
  t.is(await readFile(runs, "utf8"), "0\n", "the running copy finished; no other started");
  t.is(hook.counters.bytesCopied, 4096);
  t.is(await hook.close(), 4096, "close() is idempotent");
  t.throws(() => hook.markDirty(0, 4096), { code: ErrorCode.Closed });
  await t.throwsAsync(hook.sync(), { code: ErrorCode.Closed });
});
