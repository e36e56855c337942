// Who owns the memory of in-flight I/O (README "Buffers"), on plain files: alloc() buffers are
// native-owned and untransferable; foreign buffers are bounced; the pool does not serialize
// back-to-back submissions behind a long watch; a throwing completion handler never loses the rest
// of its batch; a worker thread gets a coded refusal while the main thread keeps working.
import test from "ava";
import { randomBytes } from "node:crypto";
import { Worker } from "node:worker_threads";

import { ErrorCode, Volume, alignedBuffer } from "../../lib/index.ts";
import { addon, registerRequest, routeCompletions } from "../../lib/io/native.ts";
import { sparseFile } from "../helpers/scratch.ts";
import { foreignAligned } from "../helpers/buffers.ts";

const MiB = 1024 * 1024;

test("alloc() buffers are native-owned and cannot be transferred away (structuredClone and postMessage copy them, or refuse)", async (t) => {
  const volume = await Volume.open(await sparseFile(t, MiB));
  t.teardown(() => volume.close());
  const buffer = volume.alloc(8192);
  buffer.fill(7);
  t.true(addon().isNativeOwned(buffer));
  t.true(addon().isNativeOwned(buffer.subarray(4096)));
  t.false(addon().isNativeOwned(new Uint8Array(8192)));
  // Node 20 copies an external ArrayBuffer named in a transfer list; Node 22 and 24 refuse with a
  // DataCloneError. Either way the memory never leaves: the buffer stays attached and usable.
  let clone: Uint8Array | undefined;
  try {
    clone = structuredClone(buffer, { transfer: [buffer.buffer as ArrayBuffer] });
  } catch (error) {
    t.is((error as Error).name, "DataCloneError", "refused, not moved");
  }
  t.is(buffer.byteLength, 8192, "still attached");
  if (clone !== undefined) {
    t.is(clone[100], 7);
    clone[100] = 9;
    t.is(buffer[100], 7, "the clone is a copy");
  }
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(buffer, [buffer.buffer as ArrayBuffer]);
  } catch (error) {
    t.is((error as Error).name, "DataCloneError", "refused, not moved");
  }
  t.is(buffer.byteLength, 8192);
  port1.close();
  port2.close();
  // Still usable for I/O afterwards.
  await volume.write(0, buffer);
  t.is((await volume.read(0, 8192))[100], 7);
});

test("a foreign (non-native) buffer is bounced: writes and reads round-trip and the caller's view gets the data", async (t) => {
  const volume = await Volume.open(await sparseFile(t, 4 * MiB), { ioThreads: 2 });
  t.teardown(() => volume.close());
  for (const size of [4096, 65536, MiB]) {
    const source = foreignAligned(size);
    source.set(randomBytes(size));
    t.false(addon().isNativeOwned(source));
    await volume.write(MiB, source);
    const target = foreignAligned(size);
    const back = await volume.read(MiB, target);
    t.is(back, target, "read resolves with the caller's own buffer");
    t.true(Buffer.compare(back, source) === 0, `${size} bytes`);
  }
  // A watch on a foreign buffer: the baseline comes from it, the changed range lands in it.
  const seen = foreignAligned(4096);
  const watching = volume.watch(0, seen, { compareBytes: 16, sleepUs: 200, timeoutMs: 5000 });
  const update = volume.alloc(4096);
  update.fill(0x33);
  await volume.write(0, update);
  t.true(await watching);
  t.is(seen[4000], 0x33);
});

test("the addon refuses a buffer it does not own (lib/io bounces those): no thread ever gets V8 memory", async (t) => {
  const volume = await Volume.open(await sparseFile(t, MiB));
  t.teardown(() => volume.close());
  const raw = new (addon().NativeVolume)(1);
  t.throws(() => raw.read(registerRequest(() => undefined), 0, foreignAligned(4096)), { message: /not native-owned/ });
  t.throws(() => raw.write(registerRequest(() => undefined), 0, new Uint8Array(4096)), { message: /not native-owned/ });
  raw.close(registerRequest(() => undefined));
});

test("back-to-back submissions behind a long watch do not wait for it", async (t) => {
  const path = await sparseFile(t, MiB);
  for (let round = 0; round < 5; round++) {
    // A fresh volume per round: each round starts from an idle pool, as in the report (5 of 5).
    const volume = await Volume.open(path, { ioThreads: 4 });
    let watchSettled = false;
    // Nothing writes block 0, so the watch runs until its 5 s timeout or close.
    const watching = volume.watch(0, volume.alloc(4096), { compareBytes: 16, sleepUs: 1000, timeoutMs: 5000 }).finally(() => {
      watchSettled = true;
    });
    await volume.read(4096 * (round + 1), 4096);
    t.false(watchSettled, `round ${round}: the read completed while the watch still ran`);
    await volume.close();
    t.false(await watching);
  }
});

test("a throwing completion handler does not lose the rest of its batch", (t) => {
  const settled: number[] = [];
  const first = registerRequest(() => {
    settled.push(1);
    throw new Error("a recover listener's bug");
  });
  const second = registerRequest(() => settled.push(2));
  const third = registerRequest(() => settled.push(3));
  const ids = new Float64Array([first, second, third]);
  t.throws(() => routeCompletions(ids, new Float64Array(3), new Int32Array(3), new Int32Array(3)), { message: "a recover listener's bug" });
  t.deepEqual(settled, [1, 2, 3]);
});

test("a batch delivered in the ring's persistent arrays settles only its first `count` entries, and completion targets (objects) are routed like handlers", (t) => {
  const settled: string[] = [];
  const first = registerRequest({ complete: (result, errno) => settled.push(`first ${result} ${errno}`) });
  const second = registerRequest((result) => settled.push(`second ${result}`));
  const stale = registerRequest(() => settled.push("stale"));
  // The arrays are longer than the batch: what lies past `count` is left over from an earlier batch.
  const ids = new Float64Array([first, second, stale, 0]);
  const results = new Float64Array([4096, 512, 7, 0]);
  routeCompletions(ids, results, new Int32Array([0, 0, 0, 0]), new Int32Array(4), 2);
  t.deepEqual(settled, ["first 4096 0", "second 512"]);
  routeCompletions(new Float64Array([stale]), new Float64Array(1), new Int32Array(1), new Int32Array(1));
  t.deepEqual(settled, ["first 4096 0", "second 512", "stale"]);
});

test("io_uring: batches of every size up to the queue depth, then single completions, each settle the right request with its own data", async (t) => {
  const volume = await Volume.open(await sparseFile(t, 4 * MiB), { engine: "io_uring", ioThreads: 8 });
  t.teardown(() => volume.close());
  const blockBytes = 4096;
  for (let i = 0; i < 64; i++) await volume.write(i * blockBytes, volume.alloc(blockBytes).fill(i + 1));
  for (let round = 1; round <= 8; round++) {
    // `round` reads in flight at once, then one alone: the persistent arrays hold a longer batch's
    // leftovers when a shorter one is delivered.
    const buffers = Array.from({ length: round }, () => volume.alloc(blockBytes));
    await Promise.all(buffers.map((buffer, i) => volume.read((round + i) * blockBytes, buffer)));
    buffers.forEach((buffer, i) => t.true(buffer.every((byte) => byte === round + i + 1), `round ${round} read ${i}`));
    const single = await volume.read(round * 7 * blockBytes, blockBytes);
    t.true(single.every((byte) => byte === round * 7 + 1), `round ${round} single read`);
  }
});

test("a worker thread gets ERR_LUNLINK_WORKER_UNSUPPORTED and the main thread keeps working", async (t) => {
  const volumeModule = new URL("../../lib/io/volume.ts", import.meta.url).href;
  const addonPath = new URL("../../build/Release/lunlink.node", import.meta.url).pathname;
  const code = `
    const { parentPort } = await import("node:worker_threads");
    const { tsImport } = await import("tsx/esm/api");
    const report = {};
    try {
      const { alignedBuffer } = await tsImport(${JSON.stringify(volumeModule)}, ${JSON.stringify(import.meta.url)});
      alignedBuffer(4096);
      report.lib = "loaded";
    } catch (e) { report.lib = e.code + " " + e.name; }
    try {
      const { createRequire } = await import("node:module");
      createRequire(${JSON.stringify(import.meta.url)})(${JSON.stringify(process.env["LUNLINK_ADDON"] ?? addonPath)});
      report.raw = "loaded";
    } catch (e) { report.raw = e.code; }
    parentPort.postMessage(report);
  `;
  const worker = new Worker(code, { eval: true });
  const report = await new Promise<Record<string, string>>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  const exitCode = await new Promise<number>((resolve) => worker.once("exit", resolve));
  t.is(report["lib"], `${ErrorCode.WorkerUnsupported} LunlinkError`);
  t.is(report["raw"], ErrorCode.WorkerUnsupported);
  t.is(exitCode, 0);
  const volume = await Volume.open(await sparseFile(t, MiB));
  const data = alignedBuffer(4096);
  data.fill(5);
  await volume.write(0, data);
  t.is((await volume.read(0, 4096))[9], 5);
  await volume.close();
});
