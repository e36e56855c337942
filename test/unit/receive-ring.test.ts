// ReceiveRing (the self-healing receive ring of a pair's StoragePath and of each cluster peer): when
// a fresh volume handle replaces the reader (a device gone and back), the counters it reports are
// totals over every reader it had, records and frames included (its invariant: counter totals never
// go back across readers). A plain file; the reader's handles fail on demand (a device gone).
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { ErrorCode, LunlinkError, Volume } from "../../lib/index.ts";
import { ReceiveRing } from "../../lib/link/receive-ring.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { sparseFile } from "../helpers/scratch.ts";
import { pollUntil } from "../helpers/until.ts";

const until = (what: string, check: () => boolean, limitMs = 10_000): Promise<void> => pollUntil(what, check, limitMs, 5);

test("a fresh handle's new reader carries the old one's counters: records, frames and pads never go back", async (t) => {
  const path = await sparseFile(t, 2 * 1024 * 1024);
  const send = await Volume.open(path, { dsync: true });
  await formatVolume(send, { writerNode: 1, peerNode: 2, ringBlocks: 128n });
  const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 0, flushThresholdBytes: 1 });
  t.teardown(async () => {
    await writer.close();
    await send.close();
  });
  // The reader's handles: reads and watches fail while the device is gone.
  let gone = false;
  const handles: Volume[] = [];
  const failing = (volume: Volume): Volume =>
    new Proxy(volume, {
      get(target, name) {
        if ((name === "read" || name === "watch") && gone) return () => Promise.reject(new LunlinkError(ErrorCode.NotFound, "simulated: device gone"));
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  let frames = 0;
  const changes: string[] = [];
  const ring = await ReceiveRing.open(
    {
      component: "receive",
      path,
      openVolume: async () => {
        const volume = await Volume.open(path, { readOnly: true });
        handles.push(volume);
        return failing(volume);
      },
      readerOptions: () => ({ nodeId: 2, start: "head" }),
      keyed: false,
      poller: { pollMinUs: 0, pollMaxMs: 1, statusPollMs: 5, onFrame: () => void frames++ },
      onStatus: () => undefined,
      onChange: (c) => changes.push(`${c.from}->${c.to}`),
      recovery: { backoffMinMs: 5, backoffMaxMs: 20 },
    },
    undefined,
  );
  t.teardown(async () => {
    await ring.close();
    for (const v of handles) await v.close().catch(() => undefined);
  });
  ring.start();
  const write = async (count: number): Promise<void> => {
    for (let i = 0; i < count; i++) {
      await writer.append(FrameType.Data, new Uint8Array(100));
      await writer.flush();
    }
  };
  await write(3);
  await until("3 frames", () => frames === 3);
  t.is(ring.counters.records, 3);
  // The device is gone (a fault that reopens the volume by path at once), then back.
  gone = true;
  await until("the fault seen", () => changes.includes("up->retrying"));
  gone = false;
  await until("up again", () => ring.report().state === "up");
  t.is(handles.length, 2, "a fresh handle, so a new reader");
  await write(2);
  await until("5 frames", () => frames === 5);
  const c = ring.counters;
  t.is(c.records, 5, "3 from the first reader, 2 from the second");
  t.is(c.frames, 5);
});
