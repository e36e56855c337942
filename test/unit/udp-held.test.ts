// Held heartbeats in the addon's UDP receive thread (addon/udp.cc through lib/io/udp.ts), on loopback:
// a heartbeat-kind datagram (plain or sealed size) waits for drainHeld() and comes with the time it
// arrived; a data datagram is not held and brings the held heartbeats along, in order; more than
// the bound, or a hold past holdMaxMs, wakes JS as before; a socket without holding holds nothing;
// close() with heartbeats held delivers nothing. No assertion on timings: "not delivered yet" is
// only checked after a drain proved the datagram had arrived.
import test, { type ExecutionContext } from "ava";
import { performance } from "node:perf_hooks";

import { UdpSocket, UDP_TABLE_WORDS, type UdpHoldOptions } from "../../lib/io/udp.ts";
import { encodeHeader, MessageKind, MESSAGE_HEADER_BYTES, PathId } from "../../lib/link/message.ts";
import { pollUntil } from "../helpers/until.ts";

interface Got {
  kind: number;
  seq: number;
  arrivedMs: number;
  batch: number;
  /** Handed over inside a drainHeld() call (held), not by the receive thread waking JS. */
  drained: boolean;
}

/** A link message of `kind` with seq `seq` and `extra` payload bytes (24: a sealed heartbeat's size). */
function message(kind: number, seq: number, extra = 0): Uint8Array {
  const bytes = new Uint8Array(MESSAGE_HEADER_BYTES + extra);
  encodeHeader(bytes, 0, { kind: kind as MessageKind, path: PathId.Primary, node: 1, session: 7n, seq: BigInt(seq), ack: 0n });
  return bytes;
}

function pair(t: ExecutionContext, hold: UdpHoldOptions | undefined) {
  const got: Got[] = [];
  let batches = 0;
  let draining = false;
  const receiver = UdpSocket.bind({ host: "127.0.0.1", port: 0 }, 1 << 20);
  const sender = UdpSocket.bind({ host: "127.0.0.1", port: 0 }, 1 << 20);
  t.teardown(() => {
    receiver.close();
    sender.close();
  });
  receiver.start(
    (datagrams, table, arrivals, count) => {
      batches++;
      let offset = 0;
      for (let i = 0; i < count; i++) {
        const view = new DataView(datagrams.buffer, datagrams.byteOffset + offset);
        got.push({ kind: view.getUint8(1), seq: Number(view.getBigUint64(12, true)), arrivedMs: arrivals[i]!, batch: batches, drained: draining });
        offset += table[UDP_TABLE_WORDS * i]!;
      }
    },
    (error) => {
      throw error;
    },
    hold,
  );
  const send = (...messages: Uint8Array[]) => {
    for (const m of messages) t.is(sender.sendBatch(m, Uint32Array.of(m.length), 1, 0x7f000001, receiver.port), 1);
  };
  const drain = (): number => {
    draining = true;
    try {
      return receiver.drainHeld();
    } finally {
      draining = false;
    }
  };
  return { receiver, send, got, drain };
}

/** Drains until `n` datagrams were handed over (they arrive in microseconds; the bound is for a loaded machine). */
async function drainUntil(p: { drain: () => number; got: Got[] }, n: number): Promise<void> {
  await pollUntil(`${n} datagrams drained`, () => {
    p.drain();
    return p.got.length >= n;
  }, 10_000, 5);
}

test("a held heartbeat waits for drainHeld() and comes with its arrival time; plain and sealed sizes", async (t) => {
  const p = pair(t, { max: 8, maxMs: 60_000 });
  const { receiver, send, got } = p;
  const sentMs = performance.now();
  send(message(MessageKind.Heartbeat, 1), message(MessageKind.Heartbeat, 2, 24));
  await drainUntil(p, 2);
  const drainedMs = performance.now();
  t.deepEqual(got.map((g) => [g.kind, g.seq, g.drained]), [[1, 1, true], [1, 2, true]], "both held until a drain");
  for (const g of got) {
    t.true(g.arrivedMs >= sentMs - 1 && g.arrivedMs <= drainedMs, `arrived at ${g.arrivedMs}, sent at ${sentMs}, drained by ${drainedMs}`);
  }
  t.is(receiver.drainHeld(), 0, "nothing left to drain");
  t.is(receiver.counters.datagramsIn, 2);
});

test("a data datagram is not held: it wakes JS at once and brings the held heartbeats along, in order", async (t) => {
  const p = pair(t, { max: 8, maxMs: 60_000 });
  const { send, got } = p;
  send(message(MessageKind.Heartbeat, 1));
  await drainUntil(p, 1);
  send(message(MessageKind.Heartbeat, 2), message(MessageKind.Heartbeat, 3));
  send(message(MessageKind.Data, 4, 100));
  await pollUntil("the data datagram delivered without a drain", () => got.length >= 4, 10_000, 5);
  t.deepEqual(got.map((g) => [g.kind, g.seq, g.drained]), [[1, 1, true], [1, 2, false], [1, 3, false], [4, 4, false]]);
  t.is(new Set(got.slice(1).map((g) => g.batch)).size, 1, "the held heartbeats came in the data datagram's batch");
  for (let i = 1; i < got.length; i++) t.true(got[i]!.arrivedMs >= got[i - 1]!.arrivedMs, "arrival times in order");
  // Control and control acks are not held either.
  send(message(MessageKind.ControlAck, 5));
  await pollUntil("the control ack delivered without a drain", () => got.length >= 5, 10_000, 5);
  t.is(got[4]!.kind, MessageKind.ControlAck);
});

test("more heartbeats than the bound wake JS without a drain (nothing dropped); so does a hold past holdMaxMs", async (t) => {
  const bounded = pair(t, { max: 2, maxMs: 60_000 });
  bounded.send(message(MessageKind.Heartbeat, 1), message(MessageKind.Heartbeat, 2), message(MessageKind.Heartbeat, 3));
  await pollUntil("three heartbeats past a bound of two delivered without a drain", () => bounded.got.length >= 3, 10_000, 5);
  t.deepEqual(bounded.got.map((g) => [g.seq, g.drained]), [[1, false], [2, false], [3, false]]);

  const timed = pair(t, { max: 8, maxMs: 20 });
  timed.send(message(MessageKind.Heartbeat, 1));
  await pollUntil("a heartbeat held past holdMaxMs delivered without a drain", () => timed.got.length >= 1, 10_000, 5);
  t.is(timed.got[0]!.seq, 1);
});

test("a socket started without holding holds nothing; close() with heartbeats held delivers nothing and drains nothing", async (t) => {
  const plain = pair(t, undefined);
  plain.send(message(MessageKind.Heartbeat, 1));
  await pollUntil("a heartbeat delivered without holding", () => plain.got.length >= 1, 10_000, 5);
  t.false(plain.got[0]!.drained);
  t.is(plain.drain(), 0);

  const closing = pair(t, { max: 8, maxMs: 60_000 });
  closing.send(message(MessageKind.Heartbeat, 1));
  await drainUntil(closing, 1);
  closing.send(message(MessageKind.Heartbeat, 2));
  closing.receiver.close();
  t.is(closing.drain(), 0);
  t.is(closing.got.length, 1);
});
