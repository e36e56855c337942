// TCP superpackets (TUN offload, lib/tun/offload.ts) on the link. Send: a vnet-framed superpacket
// goes whole, as ONE data message (one seq: dedupe, failover and failback order treat it as one
// packet; TCP retransmits a lost one whole), only when storage alone carries data now; whenever the
// primary carries it (or it is too large for one message) it is cut natively into complete segments,
// each its own data message, so every packet on the UDP path is complete and within the MTU.
// Receive: a TUN consumer gets it framed (the TUN writes it with its header, or cuts it itself);
// any other consumer ("data" listeners) gets complete segments.
import { isFramed, Segmenter } from "../tun/offload.ts";
import type { PeerLink } from "./peer-link.ts";

export interface SuperpacketCounters {
  /** Superpackets sent whole (one message, storage alone). */
  sentWhole: number;
  /** Superpackets cut before sending (the primary carries data, or too large), and the segments sent. */
  sentSegmented: number;
  segmentsSent: number;
  /** Payloads that looked framed (first nibble 0) but the segmenter refused: sent as they are. */
  refused: number;
  /** Superpackets delivered whole (to the TUN bridge), and cut for "data" listeners. */
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
   * Sends one packet (bare or vnet-framed) to `peer`: framed and storage-only now, whole; framed
   * otherwise, its segments. storageDrained: the peer storage's drained(), asked right before the
   * send as PeerLink.sendData asks it, so both see the same LinkCore.dataPaths verdict.
   */
  send(peer: PeerLink, nowMs: number, packet: Uint8Array, storageDrained: (peer: PeerLink) => boolean): boolean {
    if (!isFramed(packet, 0, packet.length)) return peer.sendData(nowMs, packet);
    const paths = peer.core.paths.dataPaths(nowMs, storageDrained(peer));
    if (!paths.primary && packet.length <= peer.maxPayloadBytes) {
      this.counters.sentWhole++;
      return peer.sendData(nowMs, packet);
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

  /** A delivered payload for the TUN bridge: counted if framed. */
  delivered(payload: Uint8Array): void {
    if (isFramed(payload, 0, payload.length)) this.counters.delivered++;
  }

  /** A delivered payload for "data" listeners: each complete segment of a framed one (as is if not framed or refused). */
  eachSegment(payload: Uint8Array, each: (segment: Uint8Array) => void): void {
    if (!isFramed(payload, 0, payload.length)) return each(payload);
    const s = this.deliverCut;
    const count = s.trySegment(payload);
    if (count <= 0) return each(payload);
    this.counters.deliveredSegmented++;
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const length = s.lengths[i]!;
      each(s.bytes.subarray(offset, offset + length));
      offset += length;
    }
  }
}
