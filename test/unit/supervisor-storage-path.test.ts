// StoragePath on plain files, with the faults a file can produce: configuration faults are reported
// and never retried (another node takes the send volume over: not owner; the receive volume is
// reformatted for another pair under the reader: wrong pair), appends answer "down" meanwhile, and
// the status line says what is wrong and that a restart is needed. (Stalls, EIO and ENOSPC need real
// devices: test/device/self-heal.test.ts.)
import test from "ava";

import { storageLine } from "../../lib/cli/node.ts";
import { FrameType } from "../../lib/format/layout.ts";
import { ErrorCode, Volume } from "../../lib/index.ts";
import { StoragePath } from "../../lib/link/storage-path.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { RingWriter } from "../../lib/ring/writer.ts";
import { pairFiles } from "../helpers/pair-files.ts";
import { pollUntil } from "../helpers/until.ts";

const until = (what: string, check: () => boolean, limitMs = 10_000): Promise<void> => pollUntil(what, check, limitMs, 10);

test("another node takes the send volume over: a configuration fault, reported once, never retried; appends answer down", async (t) => {
  const { send, receive } = await pairFiles(t);
  const path = await StoragePath.open({ nodeId: 1, peerNodeId: 2, send, receive, recovery: { backoffMinMs: 5, backoffMaxMs: 20 }, onFrame: () => undefined });
  t.teardown(() => path.close());
  const changes: string[] = [];
  path.on("change", (c) => changes.push(`${c.component}:${c.from}->${c.to}`));
  t.is(path.append(0, FrameType.Data, new Uint8Array(8)), "queued");

  // Node 3 takes the volume over (as --take-over would); our writer's owner check sees it.
  const other = await Volume.open(send, { dsync: true });
  const usurper = await RingWriter.open(other, { nodeId: 3, takeOver: true });
  t.teardown(async () => {
    await usurper.close();
    await other.close();
  });
  await until("send failed", () => path.report().send.state === "failed");
  await new Promise((r) => setTimeout(r, 200)); // ten backoffMaxMs: time a blind retry would have taken
  const report = path.report();
  t.is(report.state, "failed");
  t.is(report.send.fault?.code, ErrorCode.NotOwner);
  t.is(report.send.fault?.kind, "config");
  t.is(report.send.counters.failedAttempts, 0, "not retried");
  t.is(report.receive.state, "up", "the receive side is unaffected");
  t.deepEqual(changes, ["send:up->failed"], "one change, one log line");
  t.is(path.append(0, FrameType.Data, new Uint8Array(8)), "down");
  t.regex(storageLine(report), /^send volume failed: .*node 3 took the volume over.*\(configuration fault: not retried; fix it and restart\)$/);
});

test("the receive volume is reformatted for another pair under the reader: wrong pair, a configuration fault, not retried", async (t) => {
  const { send, receive } = await pairFiles(t);
  const path = await StoragePath.open({ nodeId: 1, peerNodeId: 2, send, receive, recovery: { backoffMinMs: 5, backoffMaxMs: 20 }, onFrame: () => undefined });
  t.teardown(() => path.close());
  // Node 2's ring is written once, then the volume is reformatted (another volume UUID) and written again.
  const v = await Volume.open(receive, { dsync: true });
  t.teardown(() => v.close());
  await formatVolume(v, { writerNode: 2, peerNode: 1, ringBlocks: 128n, force: true });
  const writer = await RingWriter.open(v, { nodeId: 2, maxDelayMs: 0 });
  t.teardown(() => writer.close());
  for (let i = 0; i < 5; i++) await writer.append(FrameType.Data, Buffer.from(`x${i}`));
  await writer.flush();
  await until("receive failed", () => path.report().receive.state === "failed");
  // A read during the reformat may have met a half-written volume (an I/O fault, retried); the
  // wrong pair it then found is not retried.
  const attempts = path.report().receive.counters.failedAttempts;
  await new Promise((r) => setTimeout(r, 200)); // ten backoffMaxMs
  const report = path.report();
  t.is(report.receive.state, "failed");
  t.is(report.receive.fault?.code, ErrorCode.WrongPair);
  t.is(report.receive.counters.failedAttempts, attempts, "not retried");
  t.is(report.send.state, "up");
  t.regex(storageLine(report), /receive volume failed: .*configuration fault/);
});
