// The two I/O engines (README "I/O engines") on plain files: the engine option and LUNLINK_ENGINE,
// the same outcomes from both (round trip, more requests than the ring has entries, short transfer
// at end of file, close with requests queued and in flight), and the fallback when io_uring is
// denied for real (a child process under a seccomp filter that fails the io_uring syscalls with
// EPERM, as Docker's default profile does).
import test from "ava";
import { execFile } from "node:child_process";
import { truncate } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { ErrorCode, Volume } from "../../lib/index.ts";
import { scratchDir, sparseFile } from "../helpers/scratch.ts";
import { foreignAligned } from "../helpers/buffers.ts";

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const root = fileURLToPath(new URL("../..", import.meta.url));

/** io_uring where this kernel allows it: the tests of the io_uring engine need it. */
async function ioUringAvailable(path: string): Promise<boolean> {
  const volume = await Volume.open(path, { engine: "auto" });
  await volume.close();
  return volume.engine === "io_uring";
}

test("engine option: threads is honoured, auto picks io_uring where the kernel allows it, bad values are coded errors", async (t) => {
  const path = await sparseFile(t, MiB);
  const threads = await Volume.open(path, { engine: "threads" });
  t.is(threads.engine, "threads");
  t.is(threads.engineFallback, undefined);
  await threads.close();
  const auto = await Volume.open(path, { engine: "auto" });
  await auto.close();
  t.true(auto.engine === "io_uring" || auto.engineFallback !== undefined, "auto falls back only with a reason");
  await t.throwsAsync(Volume.open(path, { engine: "spdk" as "auto" }), { code: ErrorCode.InvalidArgument, message: /engine must be one of/ });
  if (!process.env["LUNLINK_ENGINE"]) {
    const plain = await Volume.open(path);
    await plain.close();
    t.is(plain.engine, auto.engine, "the default engine is auto: io_uring where the kernel allows it, else threads");
    t.is(plain.engineFallback, auto.engineFallback);
  }
});

for (const engine of ["io_uring", "threads"] as const) {
  test(`${engine}: writes, flushes and reads back 200 concurrent requests (more than the ring's 128 entries)`, async (t) => {
    const path = await sparseFile(t, 4 * MiB);
    if (engine === "io_uring" && !(await ioUringAvailable(path))) return t.pass("io_uring unavailable on this host: covered by the fallback test");
    const volume = await Volume.open(path, { engine, ioThreads: 8 });
    t.teardown(() => volume.close());
    t.is(volume.engine, engine);
    const count = 200;
    const buffers = Array.from({ length: count }, (_, i) => volume.alloc(4096).fill(i % 251));
    await Promise.all(buffers.map((b, i) => volume.write(i * 4096, b)));
    await volume.flush();
    // Half read into alloc() buffers (in place), half into foreign ones (bounced).
    const back = await Promise.all(buffers.map((_, i) => (i % 2 === 0 ? volume.read(i * 4096, 4096) : volume.read(i * 4096, foreignAligned(4096)))));
    t.deepEqual(back.map((b) => b[4095]), buffers.map((_, i) => i % 251));
    t.is(volume.inFlight, 0);
  });

  test(`${engine}: rounds of 64 requests completing together all settle with their data (more completions per wake-up than the kernel runs per io_uring_enter)`, async (t) => {
    const path = await sparseFile(t, 4 * MiB);
    if (engine === "io_uring" && !(await ioUringAvailable(path))) return t.pass("io_uring unavailable on this host");
    // A completion left behind by a wake-up would only settle at its deadline (IO_STALLED).
    const volume = await Volume.open(path, { engine, ioThreads: 64, ioTimeoutMs: 20_000 });
    t.teardown(() => volume.close());
    const depth = 64;
    const rounds = 20;
    const buffers = Array.from({ length: depth }, () => volume.alloc(4096));
    for (let round = 0; round < rounds; round++) {
      buffers.forEach((b, i) => b.fill((round * depth + i) % 251));
      await Promise.all(buffers.map((b, i) => volume.write(i * 4096, b)));
      const back = await Promise.all(buffers.map((_, i) => volume.read(i * 4096, 4096)));
      t.deepEqual(back.map((b) => b[0]), buffers.map((_, i) => (round * depth + i) % 251), `round ${round}`);
    }
    t.is(volume.inFlight, 0);
    t.false(volume.stalled);
  });

  test(`${engine}: a read past the end of a truncated file is a coded short transfer`, async (t) => {
    const path = await sparseFile(t, MiB);
    if (engine === "io_uring" && !(await ioUringAvailable(path))) return t.pass("io_uring unavailable on this host");
    const volume = await Volume.open(path, { engine });
    t.teardown(() => volume.close());
    await truncate(path, 64 * 1024 + 4096 * 2);
    const error = await t.throwsAsync<Error & { code?: string }>(volume.read(64 * 1024, 4096 * 4));
    t.is(error?.code, ErrorCode.ShortIo);
    t.regex(error?.message ?? "", /transferred 8192 of 16384 bytes/);
  });

  test(`${engine}: close with requests queued and in flight settles every one (ran, or cancelled before it started)`, async (t) => {
    const path = await sparseFile(t, 4 * MiB);
    if (engine === "io_uring" && !(await ioUringAvailable(path))) return t.pass("io_uring unavailable on this host");
    const volume = await Volume.open(path, { engine, ioThreads: 2 });
    const writes = Array.from({ length: 64 }, (_, i) => volume.write(i * 65536, volume.alloc(65536).fill(1)));
    // The engine is running once one has completed (under heavy CPU pressure a single event-loop
    // turn was not enough for the I/O threads to start any: close then cancelled all 64); the rest
    // are in the kernel or queued behind it.
    await Promise.race(writes);
    const more = Array.from({ length: 8 }, (_, i) => volume.read(i * 4096, 4096));
    await volume.close();
    const outcomes = await Promise.allSettled([...writes, ...more]);
    const unexpected = outcomes.filter((o) => o.status === "rejected" && (o.reason as { code?: string }).code !== ErrorCode.Cancelled);
    t.deepEqual(unexpected, []);
    const shortReads = outcomes.slice(writes.length).filter((o) => o.status === "fulfilled" && (o.value as Uint8Array).length !== 4096);
    t.deepEqual(shortReads, [], "a read that ran returned its whole block");
    await t.throwsAsync(volume.read(0, 4096), { code: ErrorCode.Closed });
  });
}

test("fallback: where io_uring is denied (seccomp, EPERM), auto opens with threads and says why; engine io_uring is refused with a coded error", async (t) => {
  const dir = await scratchDir(t);
  const helper = join(dir, "deny-io-uring");
  await execFileAsync("cc", ["-O2", "-o", helper, join(root, "test/native/deny-io-uring.c")]);
  const path = await sparseFile(t, MiB);
  const script = `
    import { Volume } from ${JSON.stringify(join(root, "lib/index.ts"))};
    const out = {};
    const v = await Volume.open(${JSON.stringify(path)}, { engine: "auto" });
    out.engine = v.engine;
    out.fallback = v.engineFallback;
    const b = v.alloc(4096).fill(0x5c);
    await v.write(4096, b);
    await v.flush();
    out.readBack = (await v.read(4096, 4096))[100];
    await v.close();
    try {
      await Volume.open(${JSON.stringify(path)}, { engine: "io_uring" });
      out.forced = "opened";
    } catch (error) {
      out.forced = { code: error.code, errno: error.errno, syscall: error.syscall };
    }
    console.log(JSON.stringify(out));
  `;
  const { stdout } = await execFileAsync(helper, [process.execPath, "--import=tsx", "--input-type=module", "-e", script], {
    cwd: root,
    env: { ...process.env, LUNLINK_ENGINE: "" },
    timeout: 60_000,
  });
  const out = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
  t.is(out["engine"], "threads");
  t.regex(String(out["fallback"]), /io_uring_setup\(\) failed with EPERM/);
  t.is(out["readBack"], 0x5c, "I/O works on the thread engine");
  t.deepEqual(out["forced"], { code: ErrorCode.System, errno: 1, syscall: "io_uring_setup" });
});
