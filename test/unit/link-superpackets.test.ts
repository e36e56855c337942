// SuperpacketLink (lib/link/superpackets.ts): a vnet-framed TCP superpacket of an offload TUN's batch
// goes to the peer link as ONE data message, marked in its header, when storage alone carries data,
// and as its complete segments (one unmarked message each) whenever the primary carries data or it is
// too large for one message; bare packets and payloads that only look framed go as they are. Marked,
// never sniffed: a datagram that is byte for byte a superpacket, sent without `framed`, arrives as it
// is (a real pair of Links on loopback and two files); "data" listeners get a marked one's segments.
import test from "ava";

import type { Link } from "../../lib/link/link.ts";
import { decodeHeader, encodeHeader, FRAMED_KIND_BIT, MESSAGE_HEADER_BYTES, MessageKind, PathId, type MessageHeader } from "../../lib/link/message.ts";
import type { PeerLink } from "../../lib/link/peer-link.ts";
import { SuperpacketLink } from "../../lib/link/superpackets.ts";
import { bridge } from "../../lib/node/bridge.ts";
import { VNET_HDR_BYTES } from "../../lib/tun/offload.ts";
import type { TunDevice } from "../../lib/tun/tun.ts";
import { linkPair } from "../helpers/pair-files.ts";
import { pollUntil } from "../helpers/until.ts";

/** A framed IPv4 TCP superpacket of `payloadBytes` at gso_size 1360. */
function superpacket(payloadBytes: number): Uint8Array {
  const ip = new Uint8Array(40 + payloadBytes);
  const v = new DataView(ip.buffer);
  v.setUint8(0, 0x45);
  v.setUint16(2, ip.length);
  v.setUint8(8, 64);
  v.setUint8(9, 6);
  ip.set([198, 18, 0, 1, 198, 18, 0, 2], 12);
  v.setUint8(32, 0x50);
  v.setUint8(33, 0x10);
  const framed = new Uint8Array(VNET_HDR_BYTES + ip.length);
  const h = new DataView(framed.buffer);
  h.setUint8(0, 1);
  h.setUint8(1, 1);
  h.setUint16(2, 40, true);
  h.setUint16(4, 1360, true);
  h.setUint16(6, 20, true);
  h.setUint16(8, 16, true);
  framed.set(ip, VNET_HDR_BYTES);
  return framed;
}

/** The parts of a PeerLink the sender reads, recording every sendData. */
function fakePeer(paths: { primary: boolean; storage: boolean }, maxPayloadBytes = 65479): { peer: PeerLink; sent: Uint8Array[]; marked: boolean[] } {
  const sent: Uint8Array[] = [];
  const marked: boolean[] = [];
  const peer = {
    core: { paths: { dataPaths: () => paths } },
    maxPayloadBytes,
    sendData: (_now: number, payload: Uint8Array, framed = false) => {
      sent.push(payload.slice());
      marked.push(framed);
      return true;
    },
  };
  return { peer: peer as unknown as PeerLink, sent, marked };
}

const drained = (): boolean => true;

test("storage alone: a superpacket is one data message, framed, whole", (t) => {
  const link = new SuperpacketLink();
  const { peer, sent, marked } = fakePeer({ primary: false, storage: true });
  const packet = superpacket(40 * 1360);
  t.true(link.sendTunPacket(peer, 0, packet, drained));
  t.is(sent.length, 1);
  t.deepEqual(sent[0], packet);
  t.deepEqual(marked, [true], "marked in the message header");
  t.like(link.counters, { sentWhole: 1, sentSegmented: 0 });
});

for (const paths of [{ primary: true, storage: false }, { primary: true, storage: true }]) {
  test(`primary ${paths.storage ? "and storage" : "alone"}: a superpacket goes as its complete segments`, (t) => {
    const link = new SuperpacketLink();
    const { peer, sent, marked } = fakePeer(paths);
    t.true(link.sendTunPacket(peer, 0, superpacket(5 * 1360 + 7), drained));
    t.is(sent.length, 6);
    t.true(marked.every((m) => !m), "segments are bare IP packets: unmarked");
    for (const s of sent) {
      t.is(s[0]! >> 4, 4, "a bare IPv4 packet");
      t.true(s.length <= 1400);
    }
    t.like(link.counters, { sentWhole: 0, sentSegmented: 1, segmentsSent: 6 });
  });
}

test("storage alone but larger than one message: cut", (t) => {
  const link = new SuperpacketLink();
  const packet = superpacket(20 * 1360);
  const { peer, sent } = fakePeer({ primary: false, storage: true }, packet.length - 1);
  link.sendTunPacket(peer, 0, packet, drained);
  t.is(sent.length, 20);
});

test("bare packets and payloads that only look framed go as they are", (t) => {
  const link = new SuperpacketLink();
  const { peer, sent, marked } = fakePeer({ primary: true, storage: false });
  const bare = superpacket(100).subarray(VNET_HDR_BYTES);
  const notIp = new Uint8Array(300); // first nibble 0, no valid vnet header
  link.sendTunPacket(peer, 0, bare, drained);
  link.sendTunPacket(peer, 0, notIp, drained);
  t.deepEqual(sent, [bare.slice(), notIp]);
  const badGsoSize = superpacket(3000);
  badGsoSize[4] = 0; // gso_size 0: framed, refused by the segmenter, carried as it is
  badGsoSize[5] = 0;
  link.sendTunPacket(peer, 0, badGsoSize, drained);
  t.deepEqual(sent[2], badGsoSize);
  t.deepEqual(marked, [false, false, false]);
  t.like(link.counters, { refused: 1, sentWhole: 0, sentSegmented: 0 });
});

test("delivery: a marked payload is counted and cut for data listeners; one the segmenter refuses is handed over as it is", (t) => {
  const link = new SuperpacketLink();
  const packet = superpacket(3 * 1360);
  link.delivered();
  const segments: number[] = [];
  link.eachSegment(packet, (s) => segments.push(s.length));
  t.deepEqual(segments, [1400, 1400, 1400]);
  const plain: number[] = [];
  link.eachSegment(new Uint8Array(300), (s) => plain.push(s.length));
  t.deepEqual(plain, [300]);
  t.like(link.counters, { delivered: 1, deliveredSegmented: 1, refused: 1 });
});

const header = (kind: MessageKind, framed?: boolean): MessageHeader => ({ kind, path: PathId.Storage, node: 2, session: 7n, seq: 9n, ack: 0n, ...(framed === undefined ? {} : { framed }) });

test("message header: the framed mark is the kind byte's high bit, data only", (t) => {
  const bytes = new Uint8Array(MESSAGE_HEADER_BYTES);
  encodeHeader(bytes, 0, header(MessageKind.Data, true));
  t.is(bytes[1], MessageKind.Data | FRAMED_KIND_BIT);
  t.like(decodeHeader(bytes, 0, bytes.length), { ok: true, header: { kind: MessageKind.Data, framed: true, seq: 9n } });
  encodeHeader(bytes, 0, header(MessageKind.Data));
  t.is(bytes[1], MessageKind.Data);
  t.like(decodeHeader(bytes, 0, bytes.length), { ok: true, header: { kind: MessageKind.Data, framed: false } });
  for (const kind of [MessageKind.Heartbeat, MessageKind.Control, MessageKind.ControlAck, MessageKind.Broadcast]) {
    encodeHeader(bytes, 0, header(kind));
    bytes[1] = kind | FRAMED_KIND_BIT;
    t.deepEqual(decodeHeader(bytes, 0, bytes.length), { ok: false, reason: "kind" }, `the mark on kind ${kind}: malformed`);
    t.throws(() => encodeHeader(bytes, 0, header(kind, true)), { message: /assertion failed/ });
  }
});

/**
 * linkPair (pair-files.ts), once both ends are active on the path it is to use and send data on it:
 * the pair starts on storage and fails back to the primary, whose drain keeps data on the ring alone
 * until the peer acks it or failbackDrainMs pass (a loaded machine gets there after "active primary").
 * The caller sends in the same turn as the last check (no tick in between).
 */
async function pair(t: Parameters<typeof linkPair>[0], primary: boolean): Promise<[Link, Link]> {
  const [one, two] = await linkPair(t, { primary });
  const active = primary ? "primary" : "storage";
  const ready = (l: Link) => {
    const s = l.status();
    return s.active === active && s.dataOn === active && s.paths.storage.state === "up";
  };
  await pollUntil(`both ends active on ${active}, data on it`, () => [one, two].every(ready), 15_000, 10);
  return [one, two];
}

/** What a receiving Link hands over: "data" events and data batches (with their framed flags). */
function record(link: Link): { events: Uint8Array[]; batch: { payload: Uint8Array; framed: number }[] } {
  const events: Uint8Array[] = [];
  const batch: { payload: Uint8Array; framed: number }[] = [];
  link.on("data", (p) => events.push(p.slice()));
  link.onDataBatch((payloads, lengths, count, framed) => {
    let offset = 0;
    for (let i = 0; i < count; i++) {
      batch.push({ payload: payloads.slice(offset, offset + lengths[i]!), framed: framed[i]! });
      offset += lengths[i]!;
    }
  });
  return { events, batch };
}

for (const primary of [true, false]) {
  test(`a datagram that is byte for byte a vnet-framed TCPv4 superpacket, sent without framed (${primary ? "primary" : "storage alone"}), arrives unchanged and uncut`, async (t) => {
    const [one, two] = await pair(t, primary);
    const got = record(two);
    const lookalike = superpacket(3 * 1360);
    t.is(one.sendBatch(lookalike, Uint32Array.of(lookalike.length), 1), 1);
    t.true(one.sendData(lookalike));
    await pollUntil("both delivered", () => got.events.length >= 2 && got.batch.length >= 2, 15_000, 10);
    await new Promise((r) => setTimeout(r, 100)); // nothing more (segments) follows
    t.deepEqual(got.events, [lookalike, lookalike]);
    t.deepEqual(got.batch, [{ payload: lookalike, framed: 0 }, { payload: lookalike, framed: 0 }]);
    t.like(one.superpacketCounters, { sentWhole: 0, sentSegmented: 0 });
    t.like(two.superpacketCounters, { delivered: 0, deliveredSegmented: 0 });
  });
}

test("a TUN batch's superpacket (framed): whole and marked on storage alone, its segments for data listeners", async (t) => {
  const [one, two] = await pair(t, false);
  const got = record(two);
  const packet = superpacket(3 * 1360);
  t.is(one.sendBatch(packet, Uint32Array.of(packet.length), 1, { framed: true }), 1);
  await pollUntil("delivered", () => got.batch.length >= 1 && got.events.length >= 3, 15_000, 10);
  t.deepEqual(got.batch, [{ payload: packet, framed: 1 }], "the TUN side gets it whole, flagged");
  t.deepEqual(got.events.map((e) => [e.length, e[0]! >> 4]), [[1400, 4], [1400, 4], [1400, 4]], "data listeners: complete IPv4 segments");
  t.like(one.superpacketCounters, { sentWhole: 1, sentSegmented: 0 });
  t.like(two.superpacketCounters, { delivered: 1, deliveredSegmented: 1 });
});

test("a TUN batch's superpacket (framed) over the primary: cut, its segments unmarked", async (t) => {
  const [one, two] = await pair(t, true);
  const got = record(two);
  const packet = superpacket(3 * 1360);
  t.is(one.sendBatch(packet, Uint32Array.of(packet.length), 1, { framed: true }), 1);
  await pollUntil("delivered", () => got.batch.length >= 3 && got.events.length >= 3, 15_000, 10);
  t.deepEqual(got.batch.map((b) => [b.payload.length, b.framed]), [[1400, 0], [1400, 0], [1400, 0]]);
  t.like(one.superpacketCounters, { sentWhole: 0, sentSegmented: 1, segmentsSent: 3 });
});

test("bridge: an offload TUN's batches go framed; a delivered payload with first nibble 0 reaches the TUN only if marked", (t) => {
  const writes: number[][] = [];
  let onPackets: ((p: Uint8Array, l: Uint32Array, c: number) => void) | undefined;
  const tun = {
    offload: true,
    isClosed: false,
    onPackets: (h: typeof onPackets) => (onPackets = h),
    writeBatch: (buffer: Uint8Array, lengths: Uint32Array, count: number) => {
      let offset = 0;
      const firsts: number[] = [];
      for (let i = 0; i < count; i++) {
        firsts.push(buffer[offset]!, lengths[i]!);
        offset += lengths[i]!;
      }
      writes.push(firsts);
      return count;
    },
  } as unknown as TunDevice;
  let handler: ((p: Uint8Array, l: Uint32Array, c: number, f: Uint8Array) => void) | undefined;
  const sendOptions: unknown[] = [];
  const node = {
    sendBatch: (_p: Uint8Array, _l: Uint32Array, count: number, options?: unknown) => {
      sendOptions.push(options);
      return count;
    },
    onDataBatch: (h: typeof handler) => (handler = h),
  };
  const counters = bridge(tun, node);
  onPackets!(new Uint8Array([0x45]), Uint32Array.of(1), 1);
  t.deepEqual(sendOptions, [{ framed: true }]);
  // ip4 (3 bytes), unmarked nibble 0 (2), marked (4), ip6 (5), unmarked nibble 0 (1)
  const payloads = Uint8Array.of(0x45, 0, 0, 0x01, 0, 0x01, 1, 2, 3, 0x60, 0, 0, 0, 0, 0x00);
  handler!(payloads, Uint32Array.of(3, 2, 4, 5, 1), 5, Uint8Array.of(0, 0, 1, 0, 0));
  t.deepEqual(writes, [[0x45, 3], [0x01, 4, 0x60, 5]]);
  t.like(counters, { packetsToTun: 3, packetsNotIp: 2, packetsTunDropped: 0 });
});
