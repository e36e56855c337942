// In-flight I/O on a device that stalls for real (test/helpers/nbd.ts: SIGSTOP on nbdkit/nbdfuse):
// the memory a parked request uses stays native-owned whatever JS does meanwhile (transfer, reuse),
// queued work past its deadline or queued before close() is cancelled and never lands, and new
// requests fail fast while every thread is parked. Outcomes only (bytes on the device, error codes).
import test, { type ExecutionContext } from "ava";

import { ErrorCode, LunlinkError, Volume } from "../../lib/index.ts";
import { faultDevice, type FaultDevice } from "../helpers/nbd.ts";
import { foreignAligned } from "../helpers/buffers.ts";

const MiB = 1024 * 1024;
const IO_TIMEOUT_MS = 300;

async function untilRecovered(volume: Volume): Promise<void> {
  for (let i = 0; i < 200 && volume.stalled; i++) await new Promise((r) => setTimeout(r, 50));
}

/** A device whose first MiB holds 0xab, and a volume on it with `ioThreads` threads. */
async function stallable(t: ExecutionContext, ioThreads: number): Promise<{ fault: FaultDevice; volume: Volume }> {
  const fault = await faultDevice(t);
  const volume = await Volume.open(fault.device, { ioTimeoutMs: IO_TIMEOUT_MS, ioThreads });
  t.teardown(async () => {
    fault.resume();
    await volume.close().catch(() => undefined);
  });
  const pattern = volume.alloc(MiB);
  pattern.fill(0xab);
  await volume.write(0, pattern);
  return { fault, volume };
}

for (const kind of ["alloc()", "foreign"] as const) {
  test(`a read parked on a stalled device into a ${kind} buffer that JS then transfers: the new owner's bytes never change`, async (t) => {
    const { fault, volume } = await stallable(t, 2);
    const buffer = kind === "alloc()" ? volume.alloc(65536) : foreignAligned(65536);
    buffer.fill(0x11);
    fault.stop();
    const stuck = await t.throwsAsync(volume.read(0, buffer));
    t.is((stuck as LunlinkError).code, ErrorCode.IoStalled);
    // The caller gives the buffer away while the request is parked in the kernel.
    const moved = structuredClone(buffer, { transfer: [buffer.buffer as ArrayBuffer] });
    moved.fill(0x22);
    // Fresh allocations that may reuse freed memory.
    const fresh = Array.from({ length: 16 }, () => new Uint8Array(65536).fill(0x33));
    fault.resume();
    await untilRecovered(volume);
    t.false(volume.stalled);
    t.true(moved.every((b) => b === 0x22), "the parked read did not write into the buffer's new owner");
    t.true(fresh.every((f) => f.every((b) => b === 0x33)), "nor into fresh allocations");
    // The process is alive and the volume works.
    t.is((await volume.read(0, 4096))[7], 0xab);
  });
}

test("an alloc() buffer owned by a parked request is refused (ERR_LUNLINK_BUFFER_BUSY) until the request returns", async (t) => {
  const { fault, volume } = await stallable(t, 2);
  const buffer = volume.alloc(4096);
  fault.stop();
  t.is(((await t.throwsAsync(volume.read(0, buffer))) as LunlinkError).code, ErrorCode.IoStalled);
  const busy = await t.throwsAsync(volume.read(4096, buffer.subarray(0, 4096)));
  t.is((busy as LunlinkError).code, ErrorCode.BufferBusy);
  fault.resume();
  await untilRecovered(volume);
  t.is(buffer[0], 0xab, "the parked read completed into its own buffer");
  await volume.read(4096, buffer);
  t.is(buffer[0], 0xab);
});

test("a queued write whose deadline passed is cancelled and never lands after the device resumes", async (t) => {
  const { fault, volume } = await stallable(t, 1);
  const data = volume.alloc(4096);
  data.fill(0x5c);
  fault.stop();
  // The one thread parks on this read; the write waits in the queue behind it.
  const parked = volume.read(0, 4096);
  const write = volume.write(2 * MiB, data);
  t.is(((await t.throwsAsync(parked)) as LunlinkError).code, ErrorCode.IoStalled);
  const cancelled = await t.throwsAsync(write);
  t.is((cancelled as LunlinkError).code, ErrorCode.Cancelled);
  t.regex(cancelled.message, /did not run/);
  fault.resume();
  await untilRecovered(volume);
  // Give a wrongly queued write every chance to land, then look at the device.
  await volume.flush();
  t.is((await volume.read(2 * MiB, 4096))[0], 0, "the cancelled write never reached the device");
});

test("close() on a stalled device cancels queued writes at once; they never land", async (t) => {
  const fault = await faultDevice(t);
  const volume = await Volume.open(fault.device, { ioTimeoutMs: IO_TIMEOUT_MS, ioThreads: 2 });
  t.teardown(() => fault.resume());
  const data = volume.alloc(4096);
  data.fill(0x6d);
  fault.stop();
  // Thread 1 parks on this read (IO_STALLED, not CANCELLED: it started).
  t.is(((await t.throwsAsync(volume.read(0, 4096))) as LunlinkError).code, ErrorCode.IoStalled);
  // Thread 2 takes this read (first in the queue) or nothing: the writes stay queued either way.
  const second = volume.read(4096, 4096);
  const queued = [volume.write(3 * MiB, data), volume.write(3 * MiB + 4096, data)];
  const closing = volume.close();
  for (const write of queued) t.is(((await t.throwsAsync(write)) as LunlinkError).code, ErrorCode.Cancelled);
  fault.resume();
  await Promise.allSettled([second, closing]);
  const check = await Volume.open(fault.device);
  t.teardown(() => check.close());
  const back = await check.read(3 * MiB, 8192);
  t.true(back.every((b) => b === 0), "no queued write ran after close()");
});

test("while every thread is parked past its deadline, new requests fail fast without being queued", async (t) => {
  const { fault, volume } = await stallable(t, 1);
  fault.stop();
  t.is(((await t.throwsAsync(volume.read(0, 4096))) as LunlinkError).code, ErrorCode.IoStalled);
  const inFlight = volume.inFlight;
  const fast = await t.throwsAsync(volume.write(MiB, volume.alloc(4096)));
  t.is((fast as LunlinkError).code, ErrorCode.IoStalled);
  t.regex(fast.message, /all 1 I\/O (threads|slots .*) are parked/);
  t.is(volume.inFlight, inFlight, "nothing was queued");
  fault.resume();
  await untilRecovered(volume);
  await volume.write(MiB, volume.alloc(4096));
  t.is((await volume.read(MiB, 4096))[0], 0);
});
