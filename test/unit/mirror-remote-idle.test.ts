// A remote mirror whose session is lost while it has nothing to write (the source idle, its last
// writes already sent) must notice and reconnect by itself: the server drops what it received and had
// not applied when a session ends (a record's first block, written after its payload), so the copy
// stays short until a resync. Seen in test/device/mirror-remote.test.ts: the appender had finished,
// the pusher's session was gone (no TCP handle left in the process), the pusher kept watching the
// idle source without a "connection down", and the tailer waited forever for the record whose first
// block never landed.
import test from "ava";

import { FrameType, RingWriter, Volume, formatVolume } from "../../lib/index.ts";
import { RemoteMirrorPusher } from "../../lib/mirror/remote-pusher.ts";
import { RemoteMirrorServer } from "../../lib/mirror/remote-server.ts";
import { mirrorFrame } from "../helpers/mirror-stream.ts";
import { sparseFile } from "../helpers/scratch.ts";

const MiB = 1024 * 1024;

/** Resolves with the first event's value, or rejects after `ms` (a bound, not a timing assertion). */
function within<T>(ms: number, what: string, wait: (resolve: (value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    wait((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

test("a session lost while the source is idle is noticed (connection down, then a resync on a new session), with no write to find out", async (t) => {
  const source = await Volume.open(await sparseFile(t, 2 * MiB, "a.img"), { dsync: true });
  const copy = await Volume.open(await sparseFile(t, 2 * MiB, "b.img"));
  await formatVolume(source, { writerNode: 1, peerNode: 2, ringBlocks: 64n });
  let server = await RemoteMirrorServer.listen(copy, { host: "127.0.0.1", port: 0 });
  const port = server.address.port;
  // The source goes idle for good: a few records, then its writer closes (no more status writes either).
  const writer = await RingWriter.open(source, { nodeId: 1, maxDelayMs: 0 });
  for (let i = 0; i < 20; i++) await writer.append(FrameType.Data, mirrorFrame(i));
  await writer.flush();
  await writer.close();
  // No ack timeout in play: only the loss of the session itself can end it.
  const pusher = await RemoteMirrorPusher.open(source, { host: "127.0.0.1", port, statusCopyMs: 2, statusIdleMs: 20, pollMaxMs: 2, retryMinMs: 10, retryMaxMs: 50, ackTimeoutMs: 600_000 });
  const events: string[] = [];
  pusher.on("connection", (state, detail) => events.push(`${state}: ${detail}`));
  t.teardown(async () => {
    await pusher.stop().catch(() => undefined);
    await server.close();
    await source.close();
    await copy.close();
  });
  const resynced = within(10_000, "the first resync", (resolve) => pusher.once("resync", () => resolve(undefined)));
  pusher.start();
  await resynced;
  await new Promise((r) => setTimeout(r, 100)); // following, at the head of the idle source
  const resyncsBefore = pusher.counters.resyncs;
  const down = within<string>(10_000, "a connection down after the session was lost", (resolve) => pusher.on("connection", (state, detail) => state === "down" && resolve(detail)));
  await server.close(); // ends the session from the far side; the pusher has nothing to write
  t.regex(await down, /closed the connection|session ended|ECONNRESET/);
  // Back on a new session, the pusher resyncs (which repairs whatever the lost session dropped).
  server = await RemoteMirrorServer.listen(copy, { host: "127.0.0.1", port });
  await within(10_000, "a resync on the new session", (resolve) => pusher.once("resync", () => resolve(undefined)));
  t.true(pusher.counters.resyncs > resyncsBefore);
  t.true(pusher.link.reconnects >= 1, events.join("; "));
});
