// TCP superpackets (TUN offload, lib/tun/offload.ts) on the link. Only a TUN read batch (sendBatch
// with `framed`) can hold them: a payload from anywhere else is an opaque datagram, never sniffed or
// cut. Send: a vnet-framed superpacket goes whole, as ONE data message marked in its header
// (message.ts FRAMED_KIND_BIT; one seq: dedupe, failover and failback order treat it as one packet;
// TCP retransmits a lost one whole), only when storage alone carries data now; whenever the primary
// carries it (or it is too large for one message) it is cut natively into complete segments, each its
// own unmarked data message, so every packet on the UDP path is complete and within the MTU.
// Receive: only a marked payload is framed: a TUN consumer gets it framed (the TUN writes it with its
// header, or cuts it itself); "data" listeners get its complete segments.
import { isFramed, Segmenter } from "../tun/offload.ts";
import type { PeerLink } from "./peer-link.ts";

export interface SuperpacketCounters {
  /** Superpackets sent whole (one message, storage alone). */
  sentWhole: number;
  /** Superpackets cut before sending (the primary carries data, or too large), and the segments sent. */
  sentSegmented: number;
  segmentsSent: number;
  /** TUN payloads that looked framed but the segmenter refused (sent unmarked, as they are), and marked ones delivered that it refused. */
  refused: number;
  /** Marked superpackets delivered whole (to the TUN bridge), and cut for "data" listeners. */
  delivered: number;
  deliveredSegmented: number;
}

export function superpacketCounters(): SuperpacketCounters {
  return { sentWhole: 0, sentSegmented: 0, segmentsSent: 0, refused: 0, delivered: 0, deliveredSegmented: 0 };
}

export class SuperpacketLink {
  readonly counters = superpacketCounters();
  /** One each way: a "data" listener may send while its segments are being handed out. */
  private readonly sendCut = new Segmenter();
  private readonly deliverCut = new Segmenter();

  /**
   * Sends one packet of an offload TUN's read batch (bare, or vnet-framed: its first nibble is 0, never
   * an IP version) to `peer`: framed and storage-only now, whole and marked; framed otherwise, its
   * segments. storageDrained: the peer storage's drained(), asked right before the send as
   * PeerLink.sendData asks it, so both see the same LinkCore.dataPaths verdict. Never call it for a
   * payload that did not come from an offload TUN (an API datagram goes to PeerLink.sendData as it is).
   */
  sendTunPacket(peer: PeerLink, nowMs: number, packet: Uint8Array, storageDrained: (peer: PeerLink) => boolean): boolean {
    if (!isFramed(packet, 0, packet.length)) return peer.sendData(nowMs, packet);
    const paths = peer.core.paths.dataPaths(nowMs, storageDrained(peer));
    if (!paths.primary && packet.length <= peer.maxPayloadBytes) {
      this.counters.sentWhole++;
      return peer.sendData(nowMs, packet, true);
    }
    const s = this.sendCut;
    const count = s.trySegment(packet);
    if (count <= 0) {
      // Not a superpacket after all (a datagram that is not IP): carried as it is, like any other.
      this.counters.refused++;
      return peer.sendData(nowMs, packet);
    }
    this.counters.sentSegmented++;
    this.counters.segmentsSent += count;
    let any = false;
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const length = s.lengths[i]!;
      if (peer.sendData(nowMs, s.bytes.subarray(offset, offset + length))) any = true;
      offset += length;
    }
    return any;
  }

  /** A marked payload delivered to the TUN bridge. */
  delivered(): void {
    this.counters.delivered++;
  }

  /** A marked payload for "data" listeners: each of its complete segments (as it is if the segmenter refuses it, counted). */
  eachSegment(payload: Uint8Array, each: (segment: Uint8Array) => void): void {
    const s = this.deliverCut;
    // The mark is checked, not trusted: only a TCP superpacket (as the sender marks) is cut.
    const count = isFramed(payload, 0, payload.length) ? s.trySegment(payload) : 0;
    if (count <= 0) {
      this.counters.refused++;
      return each(payload);
    }
    this.counters.deliveredSegmented++;
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const length = s.lengths[i]!;
      each(s.bytes.subarray(offset, offset + length));
      offset += length;
    }
  }
}
