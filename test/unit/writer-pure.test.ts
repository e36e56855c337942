// The RingWriter's pure parts beside its core, on a fake time (plain numbers): cluster peer holds
// (PeerHolds: release at exactly peerDownMs of silence, return on a moved heartbeat, the holding ack,
// delivered marks never lowered), the waiting calls (WriterWaiters: who a settle frees, the bound),
// and open's decisions (writer-open.ts: owner, the new epoch, the carried mark, the live check).
import test from "ava";

import { AuthMode, MAX_PEER_ROWS } from "../../lib/format/layout.ts";
import { PEER_RELEASED, type PeerRow, type StatusBlock } from "../../lib/format/status.ts";
import type { Superblock } from "../../lib/format/superblock.ts";
import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import { MAX_SEQ, RingKeys } from "../../lib/ring/keys.ts";
import { PeerHolds, newer } from "../../lib/ring/peer-holds.ts";
import { carriedDelivered, checkWriterOwner, liveWriter, nextEpoch } from "../../lib/ring/writer-open.ts";
import { MAX_WAITING_CALLS, WriterWaiters } from "../../lib/ring/writer-waiters.ts";

function holds(peerDownMs: number, persisted: PeerRow[] = []): { h: PeerHolds; counters: { peersReleased: number; peersReturned: number } } {
  const counters = { peersReleased: 0, peersReturned: 0 };
  return { h: new PeerHolds(peerDownMs, persisted, counters), counters };
}

const peer = (node: number, heartbeat: bigint, seq?: bigint) => ({ node, heartbeat, ack: seq === undefined ? undefined : { epoch: 1n, seq } });

test("PeerHolds: a silent peer is released at exactly peerDownMs (not 1 ms before), once; a moved heartbeat takes it back", (t) => {
  const { h, counters } = holds(1000);
  h.track(0, [peer(2, 1n), peer(3, 1n)]);
  h.track(999, [peer(2, 2n), peer(3, 1n)]);
  t.deepEqual([h.released, counters.peersReleased], [[], 0], "999 ms of silence: still holding");
  h.track(1000, [peer(2, 2n), peer(3, 1n)]);
  t.deepEqual([h.released, counters.peersReleased, h.events.splice(0)], [[3], 1, [{ node: 3, released: true }]]);
  h.track(5000, [peer(2, 3n), peer(3, 1n)]);
  t.deepEqual([counters.peersReleased, h.events.length], [1, 0], "released once, not again while silent");
  h.track(5001, [peer(2, 3n), peer(3, 2n)]);
  t.deepEqual([h.released, counters.peersReturned, h.events.splice(0)], [[], 1, [{ node: 3, released: false }]]);
  // Node 2 moved last at 5000: silent from there on.
  h.track(5999, [peer(2, 3n), peer(3, 3n)]);
  t.deepEqual(h.released, []);
  h.track(6000, [peer(2, 3n), peer(3, 4n)]);
  t.deepEqual(h.released, [2]);
});

test("PeerHolds: peerDownMs 0 never releases", (t) => {
  const { h } = holds(0);
  h.track(0, [peer(2, 1n)]);
  h.track(1e9, [peer(2, 1n)]);
  t.deepEqual(h.released, []);
});

const ACK_ROWS: { name: string; peers: ReturnType<typeof peer>[]; release?: number; want: bigint | undefined }[] = [
  { name: "the lowest ack of the holding peers", peers: [peer(2, 1n, 9n), peer(3, 1n, 4n), peer(4, 1n, 7n)], want: 4n },
  { name: "a holding peer without an ack: nothing is acked", peers: [peer(2, 1n, 9n), peer(3, 1n)], want: undefined },
  { name: "a released peer does not hold the ack back", peers: [peer(2, 1n, 9n), peer(3, 1n, 2n)], release: 3, want: 9n },
  { name: "a released peer without an ack does not either", peers: [peer(2, 1n, 9n), peer(3, 1n)], release: 3, want: 9n },
  { name: "every peer released: everything is free", peers: [peer(3, 1n)], release: 3, want: MAX_SEQ },
];

for (const row of ACK_ROWS) {
  test(`PeerHolds.holdingAck: ${row.name}`, (t) => {
    const { h } = holds(100);
    h.track(0, row.peers);
    // Everyone but the released one moves its heartbeat.
    h.track(100, row.peers.map((p) => (p.node === row.release ? p : { ...p, heartbeat: p.heartbeat + 1n })));
    t.is(h.holdingAck(row.peers)?.seq, row.want);
  });
}

test("PeerHolds.statusRows: delivered marks are never lowered (persisted ones kept), the released flag is set", (t) => {
  const row = (node: number, epoch: bigint, seq: bigint): PeerRow => ({ node, flags: 0, ackEpoch: 0n, ackSeq: 0n, deliveredEpoch: epoch, deliveredSeq: seq });
  const { h } = holds(100, [row(2, 3n, 50n), row(0, 9n, 9n)]);
  h.track(0, [peer(2, 1n), peer(3, 1n)]);
  h.track(100, [peer(2, 2n), peer(3, 1n)]);
  const first = h.statusRows([row(2, 3n, 40n), row(3, 2n, 7n)]);
  t.deepEqual(first.map((r) => [r.node, r.deliveredEpoch, r.deliveredSeq, r.flags]), [
    [2, 3n, 50n, 0],
    [3, 2n, 7n, PEER_RELEASED],
  ]);
  const second = h.statusRows([row(2, 4n, 1n), row(3, 2n, 6n)]);
  t.deepEqual(second.map((r) => [r.deliveredEpoch, r.deliveredSeq]), [
    [4n, 1n],
    [2n, 7n],
  ], "a higher epoch wins over a higher seq; a lower seq never replaces a kept one");
});

test("PeerHolds: more peers than MAX_PEER_ROWS is an assertion", (t) => {
  const { h } = holds(100);
  t.throws(() => h.track(0, Array.from({ length: MAX_PEER_ROWS + 1 }, (_, i) => peer(i + 1, 1n))), { message: /assertion failed/ });
});

test("newer: (epoch, seq) order", (t) => {
  t.deepEqual([newer({ epoch: 2n, seq: 1n }, { epoch: 1n, seq: 9n }), newer({ epoch: 1n, seq: 9n }, { epoch: 1n, seq: 9n }), newer({ epoch: 1n, seq: 10n }, { epoch: 1n, seq: 9n })], [true, false, true]);
});

function recorder(): { log: string[]; add: (w: WriterWaiters, kind: "flush" | "room", mark: number, name: string) => boolean } {
  const log: string[] = [];
  return { log, add: (w, kind, mark, name) => w.add(kind, mark, () => log.push(`${name} ok`), (e) => log.push(`${name} ${e.code}`)) };
}

test("WriterWaiters: flushes resolve in order once framesWritten reaches their mark (not before); appends once roomGeneration moves", (t) => {
  const w = new WriterWaiters();
  const { log, add } = recorder();
  add(w, "flush", 3, "f3");
  add(w, "flush", 5, "f5");
  add(w, "room", 7, "r1");
  add(w, "room", 7, "r2");
  t.true(w.roomWanted);
  w.settle(2, 7, undefined);
  t.deepEqual(log, []);
  w.settle(3, 7, undefined);
  t.deepEqual(log, ["f3 ok"]);
  w.settle(4, 8, undefined);
  t.deepEqual(log, ["f3 ok", "r1 ok", "r2 ok"]);
  t.false(w.roomWanted);
  w.settle(5, 8, undefined);
  t.deepEqual(log, ["f3 ok", "r1 ok", "r2 ok", "f5 ok"]);
});

test("WriterWaiters: once stopped, everything still waiting is rejected with the error; settled calls are not touched again", (t) => {
  const w = new WriterWaiters();
  const { log, add } = recorder();
  add(w, "flush", 1, "f1");
  add(w, "flush", 9, "f9");
  add(w, "room", 2, "r");
  w.settle(1, 2, new LunlinkError(ErrorCode.Closed, "closed"));
  t.deepEqual(log, ["f1 ok", "f9 ERR_LUNLINK_CLOSED", "r ERR_LUNLINK_CLOSED"]);
  w.settle(99, 3, new LunlinkError(ErrorCode.Closed, "closed"));
  t.is(log.length, 3);
});

test("WriterWaiters: at most MAX_WAITING_CALLS of each kind", (t) => {
  const w = new WriterWaiters();
  const noop = (): void => undefined;
  for (let i = 0; i < MAX_WAITING_CALLS; i++) w.add("flush", i, noop, noop);
  t.false(w.add("flush", 0, noop, noop));
  t.true(w.add("room", 0, noop, noop), "the other kind has its own bound");
});

function sb(over: Partial<Superblock> = {}): Superblock {
  return {
    volumeUuid: "00000000-0000-4000-8000-000000000001",
    pairUuid: "00000000-0000-4000-8000-000000000002",
    writerNode: 1,
    peerNode: 2,
    blockBytes: 4096,
    volumeBlocks: 100n,
    ringStartBlock: 3n,
    ringBlocks: 64n,
    epoch: 5n,
    epochStartSeq: 20n,
    epochStartBlock: 7n,
    authMode: AuthMode.None,
    keyId: 0,
    salt: new Uint8Array(32),
    createdAtMs: 0n,
    ...over,
  };
}

const code = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (error) {
    return (error as LunlinkError).code;
  }
};

test("checkWriterOwner: own volume opens; another node's only with takeOver; a keyed one only with its key", (t) => {
  t.deepEqual(
    [
      code(() => checkWriterOwner("/v", sb(), false, 1, false)),
      code(() => checkWriterOwner("/v", sb(), false, 2, false)),
      code(() => checkWriterOwner("/v", sb(), false, 2, true)),
      code(() => checkWriterOwner("/v", sb({ authMode: AuthMode.Keyed }), false, 1, false)),
      code(() => checkWriterOwner("/v", sb({ authMode: AuthMode.Keyed }), true, 1, false)),
    ],
    [undefined, ErrorCode.NotOwner, undefined, ErrorCode.KeyRequired, undefined],
  );
});

const EPOCHS: { name: string; scan: { highestSeq: bigint; nextBlock: bigint }; nodeId: number; startSeq: bigint; startBlock: bigint; writer: number; peer: number }[] = [
  { name: "above the highest stamp, after its record", scan: { highestSeq: 41n, nextBlock: 12n }, nodeId: 1, startSeq: 42n, startBlock: 12n, writer: 1, peer: 2 },
  { name: "stamps below the epoch start (overwritten): the epoch start stays", scan: { highestSeq: 10n, nextBlock: 12n }, nodeId: 1, startSeq: 20n, startBlock: 12n, writer: 1, peer: 2 },
  { name: "highest stamp just below the epoch start: the epoch start", scan: { highestSeq: 19n, nextBlock: 3n }, nodeId: 1, startSeq: 20n, startBlock: 3n, writer: 1, peer: 2 },
  { name: "highest stamp at the epoch start: one above it", scan: { highestSeq: 20n, nextBlock: 3n }, nodeId: 1, startSeq: 21n, startBlock: 3n, writer: 1, peer: 2 },
  { name: "an empty ring: block 0", scan: { highestSeq: 0n, nextBlock: 9n }, nodeId: 1, startSeq: 20n, startBlock: 0n, writer: 1, peer: 2 },
  { name: "taken over by the peer: writer and peer swap", scan: { highestSeq: 41n, nextBlock: 12n }, nodeId: 2, startSeq: 42n, startBlock: 12n, writer: 2, peer: 1 },
  { name: "taken over by a third node: the peer stays", scan: { highestSeq: 41n, nextBlock: 12n }, nodeId: 3, startSeq: 42n, startBlock: 12n, writer: 3, peer: 2 },
];

for (const row of EPOCHS) {
  test(`nextEpoch: ${row.name}`, (t) => {
    const { superblock, startSeq } = nextEpoch(sb(), row.scan, row.nodeId, undefined, () => t.fail("keyless: no salt drawn") as never);
    t.is(startSeq, row.startSeq);
    t.like(superblock, { epoch: 6n, epochStartSeq: row.startSeq, epochStartBlock: row.startBlock, writerNode: row.writer, peerNode: row.peer, keyId: 0 });
  });
}

test("nextEpoch: keyed, a fresh salt and the key's id", (t) => {
  const keys = new RingKeys({ key: new Uint8Array(32).fill(7) });
  const { superblock } = nextEpoch(sb({ authMode: AuthMode.Keyed }), { highestSeq: 0n, nextBlock: 0n }, 1, keys, (n) => new Uint8Array(n).fill(0xee));
  t.deepEqual([superblock.salt[0], superblock.salt.length, superblock.keyId], [0xee, 32, keys.keyId]);
});

const status = (over: Partial<StatusBlock> = {}): StatusBlock => ({ heartbeat: 5n, generation: 3n, epoch: 2n, deliveredEpoch: 2n, deliveredSeq: 9n, ...over }) as StatusBlock;

test("carriedDelivered: the status's delivered mark, none without a status or with seq 0", (t) => {
  t.deepEqual([carriedDelivered(status()), carriedDelivered(undefined), carriedDelivered(status({ deliveredSeq: 0n }))], [{ epoch: 2n, seq: 9n }, undefined, undefined]);
});

const LIVE: { name: string; before: StatusBlock | undefined; after: StatusBlock | undefined; live: boolean }[] = [
  { name: "no status at all", before: undefined, after: undefined, live: false },
  { name: "a status that did not move", before: status(), after: status(), live: false },
  { name: "the heartbeat moved", before: status(), after: status({ heartbeat: 6n }), live: true },
  { name: "the generation moved", before: status(), after: status({ generation: 4n }), live: true },
  { name: "the epoch moved", before: status(), after: status({ epoch: 3n }), live: true },
  { name: "a status appeared", before: undefined, after: status(), live: true },
  { name: "the status vanished", before: status(), after: undefined, live: false },
];

for (const row of LIVE) {
  test(`liveWriter: ${row.name}: ${row.live ? "refused" : "opens"}`, (t) => {
    const error = liveWriter("/v", row.before, row.after, 300, 1);
    t.is(error?.code, row.live ? ErrorCode.NotOwner : undefined);
  });
}
