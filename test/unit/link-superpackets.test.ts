// SuperpacketLink (lib/link/superpackets.ts): a vnet-framed TCP superpacket goes to the peer link as
// ONE data message when storage alone carries data, and as its complete segments (one message each)
// whenever the primary carries data or it is too large for one message; bare packets and payloads
// that only look framed go as they are. "data" listeners get segments.
import test from "ava";

import type { PeerLink } from "../../lib/link/peer-link.ts";
import { SuperpacketLink } from "../../lib/link/superpackets.ts";
import { VNET_HDR_BYTES } from "../../lib/tun/offload.ts";

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
function fakePeer(paths: { primary: boolean; storage: boolean }, maxPayloadBytes = 65479): { peer: PeerLink; sent: Uint8Array[]; drainedAsked: number[] } {
  const sent: Uint8Array[] = [];
  const drainedAsked: number[] = [];
  const peer = {
    core: { paths: { dataPaths: () => paths } },
    maxPayloadBytes,
    sendData: (_now: number, payload: Uint8Array) => {
      sent.push(payload.slice());
      return true;
    },
  };
  return { peer: peer as unknown as PeerLink, sent, drainedAsked };
}

const drained = (): boolean => true;

test("storage alone: a superpacket is one data message, framed, whole", (t) => {
  const link = new SuperpacketLink();
  const { peer, sent } = fakePeer({ primary: false, storage: true });
  const packet = superpacket(40 * 1360);
  t.true(link.send(peer, 0, packet, drained));
  t.is(sent.length, 1);
  t.deepEqual(sent[0], packet);
  t.like(link.counters, { sentWhole: 1, sentSegmented: 0 });
});

for (const paths of [{ primary: true, storage: false }, { primary: true, storage: true }]) {
  test(`primary ${paths.storage ? "and storage" : "alone"}: a superpacket goes as its complete segments`, (t) => {
    const link = new SuperpacketLink();
    const { peer, sent } = fakePeer(paths);
    t.true(link.send(peer, 0, superpacket(5 * 1360 + 7), drained));
    t.is(sent.length, 6);
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
  link.send(peer, 0, packet, drained);
  t.is(sent.length, 20);
});

test("bare packets and payloads that only look framed go as they are", (t) => {
  const link = new SuperpacketLink();
  const { peer, sent } = fakePeer({ primary: true, storage: false });
  const bare = superpacket(100).subarray(VNET_HDR_BYTES);
  const notIp = new Uint8Array(300); // first nibble 0, no valid vnet header
  link.send(peer, 0, bare, drained);
  link.send(peer, 0, notIp, drained);
  t.deepEqual(sent, [bare.slice(), notIp]);
  const badGsoSize = superpacket(3000);
  badGsoSize[4] = 0; // gso_size 0: framed, refused by the segmenter, carried as it is
  badGsoSize[5] = 0;
  link.send(peer, 0, badGsoSize, drained);
  t.deepEqual(sent[2], badGsoSize);
  t.like(link.counters, { refused: 1, sentWhole: 0, sentSegmented: 0 });
});

test("delivery: the TUN bridge counts framed payloads; data listeners get segments", (t) => {
  const link = new SuperpacketLink();
  const packet = superpacket(3 * 1360);
  link.delivered(packet);
  link.delivered(packet.subarray(VNET_HDR_BYTES));
  const segments: number[] = [];
  link.eachSegment(packet, (s) => segments.push(s.length));
  t.deepEqual(segments, [1400, 1400, 1400]);
  const plain: number[] = [];
  link.eachSegment(new Uint8Array(300), (s) => plain.push(s.length));
  t.deepEqual(plain, [300]);
  t.like(link.counters, { delivered: 1, deliveredSegmented: 1 });
});
