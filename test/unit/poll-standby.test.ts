// The follower's standby pace: AdaptiveWait on a fake clock (standby waits re-read at a constant
// standbyMaxSleepUs; leaving standby snaps back to minSleepUs and asks for a running wait to be woken),
// and the addon's wake on a real file volume: Volume.wakeWatches() ends a watch asleep at a long pace
// after one more read (a change that landed meanwhile is reported), so a Poller leaving standby
// delivers the next record well before its standby sleep would have ended; heartbeat records a standby
// follower's watches find one by one grow no read-ahead window (a watch ends the streak).
import test from "ava";

import { ErrorCode } from "../../lib/errors.ts";
import { FrameType } from "../../lib/format/layout.ts";
import { Volume } from "../../lib/index.ts";
import { AdaptiveWait, type AdaptiveWaitOptions } from "../../lib/poll/adaptive-wait.ts";
import { Poller } from "../../lib/poll/poller.ts";
import { fileRing } from "../helpers/file-ring.ts";
import { sparseFile } from "../helpers/scratch.ts";
import { pollUntil } from "../helpers/until.ts";

const PACE: AdaptiveWaitOptions = { minSleepUs: 50, maxSleepUs: 16_000, periodMs: 20, idlePeriodMs: 250, standbyMaxSleepUs: 100_000 };

test("AdaptiveWait standby: a constant standby pace; leaving it snaps to minSleepUs and asks to wake the wait in flight", (t) => {
  const wait = new AdaptiveWait(PACE);
  wait.periodicRan(0);
  t.false(wait.standby(true), "entering standby wakes nothing");
  t.true(wait.inStandby);
  t.deepEqual(wait.next(0), { sleepUs: 100_000, maxSleepUs: 100_000, timeoutMs: 250 });
  wait.waited(250, false);
  wait.record(300);
  wait.periodicRan(300);
  t.deepEqual(wait.next(300), { sleepUs: 100_000, maxSleepUs: 100_000, timeoutMs: 250 }, "a heartbeat record keeps the standby pace (the link leaves standby on traffic)");
  t.true(wait.standby(false), "a standby wait is in flight: it must be woken");
  t.false(wait.standby(false), "no change, nothing to wake");
  wait.waited(310, false); // the woken wait ends: its standby pace must not carry over
  t.is(wait.sleepUs, 50);
  t.deepEqual(wait.next(310), { sleepUs: 50, maxSleepUs: 16_000, timeoutMs: 240 }, "normal pace from minSleepUs");
  wait.waited(320, false);
  wait.standby(true);
  t.false(wait.standby(false), "no wait in flight: nothing to wake");
  t.is(wait.sleepUs, 50);
  const error = t.throws(() => new AdaptiveWait({ ...PACE, standbyMaxSleepUs: 15_000 }));
  t.is((error as { code?: string }).code, ErrorCode.InvalidArgument, "a standby sleep below maxSleepUs is refused");
  t.is(new AdaptiveWait({ ...PACE, standbyMaxSleepUs: undefined }).options.standbyMaxSleepUs, 16_000, "default: maxSleepUs (standby changes nothing)");
});

/** Resolves what `promise` resolves, or "still waiting" after `ms`: a hang guard far below the 60 s a watch not woken would wait, far above any load's delay. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | "still waiting"> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<"still waiting">((r) => (timer = setTimeout(() => r("still waiting"), ms)))]).finally(() => clearTimeout(timer));
}

test.serial("Volume.wakeWatches(): a watch asleep at a 1 s pace re-reads at once and reports the change; unchanged it ends false; later watches are not affected", async (t) => {
  const path = await sparseFile(t, 1024 * 1024);
  const volume = await Volume.open(path, { dsync: false });
  t.teardown(() => volume.close());
  const seen = volume.alloc(4096);
  // Unchanged and not woken, a watch would re-read every 1 s for its whole 60 s timeout: ending within
  // WOKEN_MS (a quarter of that) is the wake, whatever the machine's load; no timing is asserted.
  const slow = { compareBytes: 16, sleepUs: 1_000_000, maxSleepUs: 1_000_000, timeoutMs: 60_000 };
  const WOKEN_MS = 15_000;
  const watching = volume.watch(0, seen, slow);
  await new Promise((r) => setTimeout(r, 50)); // the watch read once and sleeps its 1 s
  const block = volume.alloc(4096);
  block.fill(7);
  await volume.write(0, block);
  volume.wakeWatches();
  t.true(await watching, "the woken watch re-read and saw the change");
  t.is(seen[0], 7);

  const idle = volume.watch(4096, volume.alloc(4096), slow);
  await new Promise((r) => setTimeout(r, 50));
  volume.wakeWatches();
  t.is(await within(idle, WOKEN_MS), false, "unchanged: the woken watch ends with no change, not after its 60 s timeout");

  volume.wakeWatches(); // no watch: a later one is not affected
  t.false(await volume.watch(4096, volume.alloc(4096), { compareBytes: 16, sleepUs: 1000, timeoutMs: 100 }), "a later watch runs its whole timeout");
  const closing = volume.watch(4096, volume.alloc(4096), slow);
  await new Promise((r) => setTimeout(r, 50));
  const closed = volume.close();
  t.is(await within(closing, WOKEN_MS), false, "close ends a sleeping watch too, not after its 60 s timeout");
  await closed;
  volume.wakeWatches(); // closed: a no-op
});

test.serial("Poller.standby(): idle at a 1 s standby pace, standby(false) wakes the watch asleep at that pace (once) and the next record is delivered", async (t) => {
  const { writer, reader } = await fileRing(t);
  const delivered: { text: string }[] = [];
  const poller = new Poller(reader, {
    pollMaxMs: 16,
    pollStandbyMaxMs: 1000,
    statusPollMs: 500,
    statusIdleMs: 1000,
    onFrame: (_seq, _type, _flags, bytes, offset, length) => void delivered.push({ text: new TextDecoder().decode(bytes.subarray(offset, offset + length)) }),
  });
  t.teardown(() => poller.stop());
  // Whether a woken watch re-reads at once is the Volume test's above (no wall-time bound); here: that
  // leaving standby wakes the volume's watches, once, and the record then arrives.
  const volume = reader.volume;
  const wake = volume.wakeWatches.bind(volume);
  let wakes = 0;
  volume.wakeWatches = () => {
    wakes++;
    wake();
  };
  poller.standby(true);
  t.true(poller.inStandby);
  poller.start();
  await new Promise((r) => setTimeout(r, 100)); // its first watch sleeps 1 s (and times out at statusIdleMs, 1 s)
  await writer.append(FrameType.Data, new TextEncoder().encode("after the cut"));
  t.is(wakes, 0, "in standby: no wake");
  poller.standby(false);
  t.is(wakes, 1, "standby(false) woke the watch asleep at the standby pace");
  poller.standby(false);
  t.is(wakes, 1, "already out of standby: nothing to wake");
  await pollUntil("delivered", () => delivered.length > 0, 15_000, 5);
  t.deepEqual(delivered.map((d) => d.text), ["after the cut"]);
  t.false(poller.inStandby);
  const error = t.throws(() => new Poller(reader, { pollMaxMs: 16, pollStandbyMaxMs: 10 }));
  t.is((error as { code?: string }).code, ErrorCode.InvalidArgument, "pollStandbyMaxMs below pollMaxMs is refused");
});

test.serial("Poller in standby: heartbeat records each found by a watch are no backlog: leaving standby polls one block, not a read-ahead window", async (t) => {
  const { writer, reader } = await fileRing(t);
  const readBytes: number[] = [];
  const volume = reader.volume;
  const read = volume.read.bind(volume);
  volume.read = (offset, lengthOrBuffer) => {
    readBytes.push(typeof lengthOrBuffer === "number" ? lengthOrBuffer : lengthOrBuffer.byteLength);
    return read(offset, lengthOrBuffer);
  };
  let records = 0;
  // Status reads far apart: every watch in standby ends on a record, none on the periodic task.
  const poller = new Poller(reader, { pollMaxMs: 2, pollStandbyMaxMs: 5, statusPollMs: 10_000, statusIdleMs: 20_000, onFrame: () => void records++ });
  t.teardown(async () => {
    const stopped = poller.stop();
    volume.wakeWatches(); // its last watch would sleep until the status read is due
    await stopped;
  });
  poller.standby(true);
  poller.start();
  const HEARTBEATS = 12;
  for (let i = 0; i < HEARTBEATS; i++) {
    await writer.append(FrameType.Heartbeat, new Uint8Array(40));
    for (let n = 0; n < 400 && records <= i; n++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20)); // the next watch is asleep at the standby pace
  }
  t.is(records, HEARTBEATS);
  readBytes.length = 0;
  poller.standby(false); // woken: the follower polls the (empty) next slot
  await new Promise((r) => setTimeout(r, 100));
  t.true(readBytes.length > 0, "the follower read again after leaving standby");
  t.true(readBytes.every((n) => n <= reader.firstBlock.byteLength), `reads after leaving standby: ${readBytes.join(", ")} bytes (one block each, no read-ahead window: heartbeats 20 ms apart are no backlog)`);
});
