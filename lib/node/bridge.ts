// TUN <-> a node (a pair's Link or a cluster node), batches kept whole both ways: every TUN read batch goes to Link.sendBatch (one
// sendmmsg for its UDP copies, one ring record for its storage copies); every data batch the link
// delivers (one per UDP receive batch or ring poll) goes to the TUN with one writeBatch. Nothing is
// copied here (the link copies into its UDP batch or ring record; the TUN write copies into the kernel).
import type { Link } from "../link/link.ts";
import type { TunDevice } from "../tun/tun.ts";

export interface BridgeCounters {
  packetsToLink: number;
  packetsNotSent: number;
  packetsToTun: number;
  packetsTunDropped: number;
}

/** What the bridge needs of a node: a pair's Link and a ClusterNode both have it. */
export type BridgedNode = Pick<Link, "sendBatch" | "onDataBatch">;

export function bridge(tun: TunDevice, link: BridgedNode): BridgeCounters {
  const counters: BridgeCounters = { packetsToLink: 0, packetsNotSent: 0, packetsToTun: 0, packetsTunDropped: 0 };
  tun.onPackets((packets, lengths, count) => {
    const taken = link.sendBatch(packets, lengths, count);
    counters.packetsToLink += taken;
    counters.packetsNotSent += count - taken;
  });
  link.onDataBatch((payloads, lengths, count) => {
    if (tun.isClosed) return;
    const written = tun.writeBatch(payloads, lengths, count);
    counters.packetsToTun += written;
    counters.packetsTunDropped += count - written;
  });
  return counters;
}
