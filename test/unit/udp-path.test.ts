// The primary path (lib/link/udp-path.ts over the addon's socket, addon/udp.cc), on loopback only:
// a batch reserved, written in place and flushed arrives complete and in order (one sendmmsg per
// socket per flush); runs of equal-sized datagrams (UDP GSO where the kernel has it) arrive as the
// same separate datagrams; control goes to port + 1; a closed path sends and delivers nothing.
// Several peers on one path (a cluster node's): each datagram goes to the peer whose endpoint sent it,
// on either socket, and any other source is counted as a stray and dropped unread.
// Batch sealing: messages sealed in place into one batch buffer (Sealer.sealInto) open (Opener with
// a reused buffer) to the same bytes, and a sealed batch with a forged datagram refuses only that one.
import test from "ava";

import { generateKeys, sharedSecret } from "../../lib/link/keys.ts";
import { decodeHeader, MessageKind, MESSAGE_HEADER_BYTES, PathId } from "../../lib/link/message.ts";
import { Opener, Sealer, SEAL_OVERHEAD_BYTES } from "../../lib/link/seal.ts";
import { CLUSTER_UDP_BATCH_BYTES, UDP_SEND_BATCH_BYTES, UdpPath, type UdpPathOptions } from "../../lib/link/udp-path.ts";

/** A pair's path: one peer, any source (its Link authenticates), a pair's batch size. */
const PAIR: Pick<UdpPathOptions, "sources" | "batchBytes"> = { sources: "any", batchBytes: UDP_SEND_BATCH_BYTES };

interface Received {
  port: number;
  bytes: Buffer;
}

async function pairOnLoopback(t: { teardown: (f: () => void) => void }) {
  // Ports from the kernel would need two sockets per path; pick a random high pair instead and retry on EADDRINUSE.
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000) * 2;
    const received: Received[] = [];
    let batchEnds = 0;
    let b: UdpPath | undefined;
    try {
      b = UdpPath.open({
        ...PAIR,
        bind: { host: "127.0.0.1", port: base + 2 },
        peers: [{ host: "127.0.0.1", port: base }],
        onDatagram: (_peer, bytes, offset, length, _address, port) => received.push({ port, bytes: Buffer.from(bytes.subarray(offset, offset + length)) }),
        onBatchEnd: () => batchEnds++,
        onError: (error) => {
          throw error;
        },
      });
      const a = UdpPath.open({ ...PAIR, bind: { host: "127.0.0.1", port: base }, peers: [{ host: "127.0.0.1", port: base + 2 }], onDatagram: () => undefined, onBatchEnd: () => undefined, onError: () => undefined });
      t.teardown(() => {
        a.close();
        b?.close();
      });
      return { a, b, received, base, batchEnds: () => batchEnds };
    } catch (error) {
      b?.close();
      if (!(error instanceof Error) || !/EADDRINUSE/.test(error.message)) throw error;
    }
  }
  throw new Error("no free loopback port pair");
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function write(path: UdpPath, control: boolean, bytes: Uint8Array, peer = 0): void {
  const slot = path.reserve(peer, control, bytes.length);
  slot.set(bytes);
  path.commit(peer, control, bytes.length);
}

test("a batch of datagrams of mixed sizes goes in one sendmmsg and arrives complete and in order; control on port + 1", async (t) => {
  const { a, received, base } = await pairOnLoopback(t);
  const sent: Buffer[] = [];
  for (let i = 0; i < 100; i++) {
    const bytes = Buffer.alloc(2 + ((i * 37) % 1500), i);
    bytes.writeUInt16LE(i, 0);
    sent.push(bytes);
    write(a, false, bytes);
  }
  write(a, true, Buffer.from("control"));
  t.is(a.flush(), 0, "the kernel took every datagram");
  t.is(a.counters.data.sendCalls, 1, "one sendmmsg for the data batch");
  t.is(a.counters.control.sendCalls, 1);
  await until(() => received.length === 101);
  const data = received.filter((r) => r.port === base);
  t.deepEqual(data.map((r) => r.bytes), sent, "every datagram, byte for byte, in order");
  t.deepEqual(received.filter((r) => r.port === base + 1).map((r) => r.bytes.toString()), ["control"]);
});

test("runs of equal-sized datagrams (UDP GSO where the kernel has it) arrive as the same separate datagrams", async (t) => {
  const { a, received, batchEnds } = await pairOnLoopback(t);
  const sent: Buffer[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 120; i++) {
      // 1400-byte runs with a shorter last one in the middle, as a TCP stream through the TUN makes.
      const bytes = Buffer.alloc(i === 60 ? 300 : 1400, (round * 120 + i) & 255);
      bytes.writeUInt32LE(round * 120 + i, 0);
      sent.push(bytes);
      write(a, false, bytes);
    }
    t.is(a.flush(), 0);
  }
  await until(() => received.length === sent.length);
  t.deepEqual(received.map((r) => r.bytes), sent);
  t.true(batchEnds() <= received.length, "receive batches never outnumber datagrams");
});

test("a full batch flushes by itself, and a closed path sends and delivers nothing", async (t) => {
  const { a, b, received } = await pairOnLoopback(t);
  for (let i = 0; i < 300; i++) write(a, false, Buffer.alloc(64, i & 255)); // UDP_BATCH_MESSAGES is 256
  t.is(a.counters.data.sendCalls, 1, "the 257th datagram flushed the first 256");
  a.flush();
  await until(() => received.length === 300);
  b.close();
  t.is(b.state, "closed");
  write(a, false, Buffer.alloc(64));
  a.flush();
  await new Promise((r) => setTimeout(r, 100));
  t.is(received.length, 300, "nothing delivered after close");
});

test("several peers (sources endpoint): each datagram goes to the peer whose endpoint sent it, on either socket; any other source is a stray, dropped unread", async (t) => {
  const quiet = { onDatagram: () => undefined, onBatchEnd: () => undefined, onError: () => undefined };
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 5_000) * 8;
    const at = (port: number) => ({ host: "127.0.0.1", port });
    const opened: UdpPath[] = [];
    try {
      const received: { peer: number; port: number; text: string }[] = [];
      const hub = UdpPath.open({
        bind: at(base),
        peers: [at(base + 2), at(base + 4)],
        sources: "endpoint",
        batchBytes: CLUSTER_UDP_BATCH_BYTES,
        onDatagram: (peer, bytes, offset, length, _address, port) => received.push({ peer, port, text: Buffer.from(bytes.subarray(offset, offset + length)).toString() }),
        onBatchEnd: () => undefined,
        onError: (error) => {
          throw error;
        },
      });
      opened.push(hub);
      const options = { ...quiet, sources: "endpoint" as const, batchBytes: CLUSTER_UDP_BATCH_BYTES, peers: [at(base)] };
      const [p0, p1, stranger] = [at(base + 2), at(base + 4), at(base + 6)].map((bind) => {
        const path = UdpPath.open({ ...options, bind });
        opened.push(path);
        return path;
      }) as [UdpPath, UdpPath, UdpPath];
      t.teardown(() => opened.forEach((p) => p.close()));
      write(p1, false, Buffer.from("from 1"));
      write(p0, true, Buffer.from("control from 0"));
      write(p0, false, Buffer.from("from 0"));
      write(stranger, false, Buffer.from("stray data"));
      write(stranger, true, Buffer.from("stray control"));
      for (const p of [p0, p1, stranger]) t.is(p.flush(), 0);
      await until(() => received.length === 3 && hub.strays === 2);
      const sorted = received.sort((x, y) => x.text.localeCompare(y.text));
      t.deepEqual(sorted, [
        { peer: 0, port: base + 3, text: "control from 0" },
        { peer: 0, port: base + 2, text: "from 0" },
        { peer: 1, port: base + 4, text: "from 1" },
      ]);
      t.is(hub.strays, 2, "the stranger's data and control datagrams, counted and not delivered");
      return;
    } catch (error) {
      opened.forEach((p) => p.close());
      if (!(error instanceof Error) || !/EADDRINUSE/.test(error.message)) throw error;
    }
  }
  t.fail("no free loopback ports");
});

test("batch sealing: messages sealed in place into one batch buffer open with a reused buffer; a forged one is refused alone", (t) => {
  const x = generateKeys();
  const y = generateKeys();
  const sealer = new Sealer(sharedSecret(x.privateKey, y.publicKey), 9n, 1, 2);
  const opener = new Opener(sharedSecret(y.privateKey, x.publicKey), 1, 2, 5n);
  const batch = new Uint8Array(64 * 1024);
  const lengths: number[] = [];
  const payloads: Buffer[] = [];
  let used = 0;
  for (let i = 0; i < 30; i++) {
    const payload = Buffer.alloc(10 + i * 40, i);
    payloads.push(payload);
    const length = sealer.sealInto(batch.subarray(used, used + MESSAGE_HEADER_BYTES + SEAL_OVERHEAD_BYTES + payload.length), { kind: MessageKind.Data, path: PathId.Primary, node: 1, session: 9n, seq: BigInt(i + 1), ack: 0n }, payload);
    t.is(length, MESSAGE_HEADER_BYTES + SEAL_OVERHEAD_BYTES + payload.length);
    lengths.push(length);
    used += length;
  }
  batch[lengths.slice(0, 7).reduce((s, l) => s + l, 0) + 40]! ^= 1; // forge datagram 7
  const into = Buffer.alloc(65536);
  let offset = 0;
  const opened: (Buffer | string)[] = [];
  for (const length of lengths) {
    const r = opener.open(batch.subarray(offset, offset + length), into);
    if (r.ok) {
      const d = decodeHeader(r.message, 0, r.message.length);
      t.true(d.ok && r.message.buffer === into.buffer, "the message is a view of the reused buffer");
      opened.push(Buffer.from(r.message.subarray(MESSAGE_HEADER_BYTES)));
    } else opened.push(r.reason);
    offset += length;
  }
  t.is(opened[7], "auth");
  t.deepEqual(opened.filter((_, i) => i !== 7), payloads.filter((_, i) => i !== 7));
});
