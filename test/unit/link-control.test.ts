// Reliable control at its bounds, with a fake clock: the sender's window of MAX_UNACKED, the
// retransmission timer exactly at rtoMs, cumulative acks that release exactly what they cover, and
// the receiver's early window (held up to MAX_EARLY ahead, dropped past it), its duplicate
// accounting, its copies of held payloads and its reset. link-core.test.ts runs the lossy channel.
import test from "ava";

import { ControlReceiver, ControlSender, MAX_EARLY, MAX_UNACKED } from "../../lib/link/control.ts";

const RTO_MS = 100;

test("control sender: the window takes MAX_UNACKED messages, refuses the next, and reopens by one per ack", (t) => {
  const sender = new ControlSender();
  for (let i = 0; i < MAX_UNACKED - 1; i++) t.truthy(sender.submit(Uint8Array.of(1), 0));
  t.false(sender.full, "one below the bound: not full");
  const last = sender.submit(Uint8Array.of(2), 0);
  t.is(last?.seq, BigInt(MAX_UNACKED), "the bound-th message is numbered MAX_UNACKED");
  t.true(sender.full);
  t.is(sender.pending, MAX_UNACKED);
  t.is(sender.submit(Uint8Array.of(3), 0), undefined, "full: refused");
  t.is(sender.pending, MAX_UNACKED, "a refused message is not kept");
  t.is(sender.acked(1n), 1);
  t.false(sender.full);
  t.is(sender.submit(Uint8Array.of(4), 0)?.seq, BigInt(MAX_UNACKED) + 1n, "numbering goes on after a refusal");
});

test("control sender: a message is numbered from 1 and its payload copied at submit", (t) => {
  const sender = new ControlSender();
  const payload = Uint8Array.of(7, 8, 9);
  const first = sender.submit(payload, 0)!;
  t.is(first.seq, 1n);
  payload[0] = 0;
  t.deepEqual([...first.payload], [7, 8, 9], "the caller may reuse its buffer");
  t.is(sender.submit(payload, 0)!.seq, 2n);
  t.deepEqual([...sender.due(RTO_MS, RTO_MS)[0]!.payload], [7, 8, 9], "the retransmission carries the original bytes");
});

test("control sender: a cumulative ack releases exactly the messages at or below it, once", (t) => {
  const sender = new ControlSender();
  for (let i = 0; i < 5; i++) sender.submit(Uint8Array.of(i), 0);
  t.is(sender.acked(0n), 0, "ack 0 releases nothing");
  t.is(sender.acked(3n), 3, "ack 3 releases 1..3");
  t.is(sender.pending, 2);
  t.is(sender.acked(3n), 0, "the same ack again releases nothing");
  t.is(sender.acked(2n), 0, "an older ack releases nothing");
  t.deepEqual(
    sender.due(RTO_MS, RTO_MS).map((e) => e.seq),
    [4n, 5n],
    "what is left is exactly 4 and 5",
  );
  t.is(sender.acked(10n), 2, "an ack past the last releases the rest");
  t.is(sender.pending, 0);
  t.is(sender.acked(11n), 0, "nothing to release on an empty window");
});

test("control sender: a message is due exactly rtoMs after its last transmission, and then not again until another rtoMs", (t) => {
  const sender = new ControlSender();
  sender.submit(Uint8Array.of(1), 1000);
  sender.submit(Uint8Array.of(2), 1010);
  t.deepEqual(sender.due(1000 + RTO_MS - 1, RTO_MS), [], "one ms early: nothing");
  t.deepEqual(
    sender.due(1000 + RTO_MS, RTO_MS).map((e) => e.seq),
    [1n],
    "exactly rtoMs after: the first",
  );
  t.is(sender.retransmits, 1);
  t.deepEqual(sender.due(1000 + RTO_MS, RTO_MS), [], "re-stamped: not due twice at the same time");
  t.deepEqual(
    sender.due(1010 + RTO_MS, RTO_MS).map((e) => e.seq),
    [2n],
    "the second on its own clock",
  );
  t.deepEqual(
    sender.due(1000 + 2 * RTO_MS, RTO_MS).map((e) => e.seq),
    [1n],
    "the first again rtoMs after its retransmission",
  );
  t.is(sender.retransmits, 3);
});

test("control sender: after restart every unacked message is due at once, numbered 1.., and numbering continues", (t) => {
  const sender = new ControlSender();
  for (let i = 0; i < 4; i++) sender.submit(Uint8Array.of(10 + i), 5000);
  sender.acked(1n);
  sender.restart();
  const resent = sender.due(5000, RTO_MS);
  t.deepEqual(
    resent.map((e) => [e.seq, e.payload[0]]),
    [
      [1n, 11],
      [2n, 12],
      [3n, 13],
    ],
  );
  t.is(sender.submit(Uint8Array.of(99), 5000)!.seq, 4n);
  const empty = new ControlSender();
  empty.restart();
  t.is(empty.submit(Uint8Array.of(1), 0)!.seq, 1n, "restart with nothing pending: numbering from 1");
});

test("control receiver: holds up to MAX_EARLY ahead of the delivered sequence and drops beyond", (t) => {
  const receiver = new ControlReceiver();
  const got: number[] = [];
  const deliver = (p: Uint8Array) => got.push(p[0]!);
  t.is(receiver.receive(BigInt(MAX_EARLY) + 1n, Uint8Array.of(1), deliver), "dropped", "MAX_EARLY + 1 ahead of 0: dropped");
  t.is(receiver.dropped, 1);
  t.is(receiver.receive(BigInt(MAX_EARLY), Uint8Array.of(2), deliver), "early", "exactly MAX_EARLY ahead: held");
  t.is(receiver.receive(2n, Uint8Array.of(3), deliver), "early");
  t.deepEqual(got, [], "nothing delivered out of order");
  t.is(receiver.receive(1n, Uint8Array.of(4), deliver), "delivered");
  t.deepEqual(got, [4, 3], "1 then the held 2; the gap at 3 stops delivery");
  t.is(receiver.delivered, 2n);
  t.is(receiver.receive(BigInt(MAX_EARLY) + 2n, Uint8Array.of(5), deliver), "early", "the window moved with the delivered sequence");
  t.is(receiver.receive(BigInt(MAX_EARLY) + 3n, Uint8Array.of(6), deliver), "dropped", "and still ends MAX_EARLY ahead");
  t.is(receiver.dropped, 2);
  t.is(receiver.duplicates, 0, "a drop is not a duplicate");
});

test("control receiver: a held message is a copy, and a run of held messages is delivered in order once the gap fills", (t) => {
  const receiver = new ControlReceiver();
  const got: number[][] = [];
  const deliver = (p: Uint8Array) => got.push([...p]);
  const buffer = Uint8Array.of(0, 0);
  for (const seq of [4n, 3n, 2n]) {
    buffer[0] = Number(seq);
    buffer[1] = 100 + Number(seq);
    t.is(receiver.receive(seq, buffer, deliver), "early");
  }
  buffer[0] = 1;
  buffer[1] = 101;
  t.is(receiver.receive(1n, buffer, deliver), "delivered");
  t.deepEqual(got, [
    [1, 101],
    [2, 102],
    [3, 103],
    [4, 104],
  ]);
  t.is(receiver.delivered, 4n);
  t.is(receiver.receive(6n, Uint8Array.of(6), deliver), "early");
  t.is(receiver.receive(5n, Uint8Array.of(5), deliver), "delivered");
  t.is(receiver.delivered, 6n);
  t.deepEqual(got.slice(4), [[5], [6]], "the held 6 is not delivered twice");
  t.is(receiver.receive(7n, Uint8Array.of(7), deliver), "delivered", "after the run, the next in order is delivered directly");
  t.deepEqual(got.at(-1), [7]);
});

test("control receiver: delivered, held and older sequences are duplicates and counted", (t) => {
  const receiver = new ControlReceiver();
  const got: number[] = [];
  const deliver = (p: Uint8Array) => got.push(p[0]!);
  t.is(receiver.receive(0n, Uint8Array.of(0), deliver), "duplicate", "0 is never a message");
  t.is(receiver.receive(1n, Uint8Array.of(1), deliver), "delivered");
  t.is(receiver.receive(1n, Uint8Array.of(1), deliver), "duplicate", "the delivered one again");
  t.is(receiver.receive(3n, Uint8Array.of(3), deliver), "early");
  t.is(receiver.receive(3n, Uint8Array.of(9), deliver), "duplicate", "the held one again");
  t.is(receiver.duplicates, 3);
  t.is(receiver.receive(2n, Uint8Array.of(2), deliver), "delivered");
  t.deepEqual(got, [1, 2, 3], "the first copy of 3 was delivered, not the duplicate");
});

test("control receiver: reset starts the numbering again at 1 and forgets held messages", (t) => {
  const receiver = new ControlReceiver();
  const got: number[] = [];
  const deliver = (p: Uint8Array) => got.push(p[0]!);
  receiver.receive(1n, Uint8Array.of(1), deliver);
  receiver.receive(2n, Uint8Array.of(2), deliver);
  receiver.receive(4n, Uint8Array.of(40), deliver);
  receiver.reset();
  t.is(receiver.delivered, 0n);
  t.is(receiver.receive(1n, Uint8Array.of(11), deliver), "delivered", "1 is new again");
  t.is(receiver.receive(2n, Uint8Array.of(12), deliver), "delivered");
  t.is(receiver.receive(3n, Uint8Array.of(13), deliver), "delivered");
  t.is(receiver.delivered, 3n, "the message held before the reset is not delivered after 3");
  t.deepEqual(got, [1, 2, 11, 12, 13]);
});

test("control receiver: messages released from the early window are forgotten, so the window never fills with delivered ones", (t) => {
  const receiver = new ControlReceiver();
  let delivered = 0;
  const deliver = () => delivered++;
  // Each round: the three after the next arrive first (held), then the next (delivered, releasing all three).
  for (let round = 0; round < MAX_EARLY; round++) {
    const next = receiver.delivered + 1n;
    for (const ahead of [3n, 2n, 1n]) t.is(receiver.receive(next + ahead, Uint8Array.of(2), deliver), "early");
    t.is(receiver.receive(next, Uint8Array.of(1), deliver), "delivered");
    t.is(receiver.delivered, next + 3n);
  }
  t.is(delivered, 4 * MAX_EARLY);
  t.is(receiver.receive(receiver.delivered + 2n, Uint8Array.of(3), deliver), "early", "after many releases the early window still has room");
  t.is(receiver.dropped, 0);
});
