// TUN <-> a node (a pair's Link or a cluster node), batches kept whole both ways: every TUN read batch goes to Link.sendBatch (one
// sendmmsg for its UDP copies, one ring record for its storage copies); every data batch the link
// delivers (one per UDP receive batch or ring poll) goes to the TUN with one writeBatch. Nothing is
// copied here (the link copies into its UDP batch or ring record; the TUN write copies into the kernel).
// Superpackets are marked, never sniffed: a read batch is flagged `framed` only from an offload TUN,
// and the TUN (which takes a first nibble of 0 as a vnet header) gets no payload with a first nibble
// of 0 that its message header did not mark: such a payload is not an IP packet, it is dropped (counted).
import type { Link } from "../link/link.ts";
import type { TunDevice } from "../tun/tun.ts";

export interface BridgeCounters {
  packetsToLink: number;
  packetsNotSent: number;
  packetsToTun: number;
  packetsTunDropped: number;
  /** Delivered payloads not written: a first nibble of 0 (not IP) without the superpacket mark. */
  packetsNotIp: number;
}

/** What the bridge needs of a node: a pair's Link and a ClusterNode both have it. */
export type BridgedNode = Pick<Link, "sendBatch" | "onDataBatch">;

export function bridge(tun: TunDevice, link: BridgedNode): BridgeCounters {
  const counters: BridgeCounters = { packetsToLink: 0, packetsNotSent: 0, packetsToTun: 0, packetsTunDropped: 0, packetsNotIp: 0 };
  const sendOptions = { framed: tun.offload };
  tun.onPackets((packets, lengths, count) => {
    const taken = link.sendBatch(packets, lengths, count, sendOptions);
    counters.packetsToLink += taken;
    counters.packetsNotSent += count - taken;
  });
  link.onDataBatch((payloads, lengths, count, framed) => {
    if (tun.isClosed) return;
    // Runs of writable payloads, one writeBatch each (one run: the whole batch, the usual case).
    let start = 0;
    let startOffset = 0;
    let offset = 0;
    for (let i = 0; i <= count; i++) {
      const notIp = i < count && framed[i] === 0 && payloads[offset]! >> 4 === 0;
      if (i === count || notIp) {
        if (i > start) write(payloads.subarray(startOffset, offset), lengths.subarray(start, i), i - start);
        if (notIp) counters.packetsNotIp++;
        start = i + 1;
        startOffset = offset + (i < count ? lengths[i]! : 0);
      }
      if (i < count) offset += lengths[i]!;
    }
  });
  function write(payloads: Uint8Array, lengths: Uint32Array, count: number): void {
    const written = tun.writeBatch(payloads, lengths, count);
    counters.packetsToTun += written;
    counters.packetsTunDropped += count - written;
  }
  return counters;
}
