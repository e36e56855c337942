// Held heartbeats (addon/udp.cc, lib/link/udp-path.ts) against data on the other socket, on loopback
// with the real addon: a sealed heartbeat the control socket's thread holds must not be read after
// the data that arrived after it on the data socket. Sealed datagrams share one counter per peer
// (data and heartbeats alike) and one anti-replay window of WINDOW_BITS (window.ts): a heartbeat held
// while more than a window of data is read is refused as a replay, its echo lost, and a link under a
// sealed data flood would turn its primary suspect (tx) and fail over. Nobody calls drainHeld() here
// (the clock's turn): only the data socket's batches can bring the heartbeat in time.
import test from "ava";

import { generateKeys, sharedSecret } from "../../lib/link/keys.ts";
import { MessageKind, PathId } from "../../lib/link/message.ts";
import { Opener, Sealer } from "../../lib/link/seal.ts";
import { UDP_SEND_BATCH_BYTES, UdpPath } from "../../lib/link/udp-path.ts";
import { WINDOW_BITS } from "../../lib/link/window.ts";

/** Data datagrams sent after the heartbeat: more than the anti-replay window. */
const DATA_COUNT = WINDOW_BITS + 512;
/** Datagrams per flush: well inside the receive buffer, so the kernel drops none. */
const ROUND = 256;

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setImmediate(r));
  }
}

test("a held heartbeat is read before data that arrived after it on the data socket (it would fall out of the replay window)", async (t) => {
  const x = generateKeys();
  const y = generateKeys();
  const sealer = new Sealer(sharedSecret(x.privateKey, y.publicKey), 9n, 1, 2);
  const opener = new Opener(sharedSecret(y.privateKey, x.publicKey), 1, 2, 5n);
  const log: { kind: number | string; seq: bigint }[] = [];
  let a: UdpPath | undefined;
  let b: UdpPath | undefined;
  for (let attempt = 0; attempt < 20 && b === undefined; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000) * 2;
    try {
      b = UdpPath.open({
        sources: "any",
        batchBytes: UDP_SEND_BATCH_BYTES,
        bind: { host: "127.0.0.1", port: base + 2 },
        peers: [{ host: "127.0.0.1", port: base }],
        onDatagram: (_peer, bytes, offset, length) => {
          const r = opener.open(bytes.subarray(offset, offset + length));
          log.push(r.ok ? { kind: r.message[1]!, seq: r.message.readBigUInt64LE(12) } : { kind: r.reason, seq: 0n });
        },
        onBatchEnd: () => undefined,
        onError: (error) => {
          throw error;
        },
      });
      a = UdpPath.open({ sources: "any", batchBytes: UDP_SEND_BATCH_BYTES, bind: { host: "127.0.0.1", port: base }, peers: [{ host: "127.0.0.1", port: base + 2 }], onDatagram: () => undefined, onBatchEnd: () => undefined, onError: () => undefined });
    } catch (error) {
      b?.close();
      b = undefined;
      if (!(error instanceof Error) || !/EADDRINUSE/.test(error.message)) throw error;
    }
  }
  if (a === undefined || b === undefined) return t.fail("no free loopback ports");
  const [sender, receiver] = [a, b];
  t.teardown(() => {
    sender.close();
    receiver.close();
  });
  const header = (kind: MessageKind, seq: number) => ({ kind, path: PathId.Primary, node: 1, session: 9n, seq: BigInt(seq), ack: 0n });
  sender.writeMessage(0, header(MessageKind.Heartbeat, 1), undefined, sealer);
  t.is(sender.flush(), 0);
  const payload = Buffer.alloc(16, 7);
  for (let sent = 0; sent < DATA_COUNT; sent += ROUND) {
    for (let i = 1; i <= ROUND; i++) sender.writeMessage(0, header(MessageKind.Data, sent + i), payload, sealer);
    t.is(sender.flush(), 0, "the kernel took every datagram");
    await until(() => log.length >= sent + ROUND);
  }
  await until(() => log.some((e) => e.kind !== MessageKind.Data)); // the heartbeat, by now or at the hold's end
  const heartbeatAt = log.findIndex((e) => e.kind !== MessageKind.Data);
  t.deepEqual(log[heartbeatAt], { kind: MessageKind.Heartbeat, seq: 1n }, "the heartbeat opened (not refused as a replay)");
  // Read with the first data batches (a round or two: the control thread may hold it just after one was posted).
  t.true(heartbeatAt < WINDOW_BITS / 2, `read after ${heartbeatAt} data datagrams`);
});
