// TUN <-> Link: every IP packet the kernel routes into the TUN device goes out as one data datagram
// on the link; every data datagram from the peer is written back into the TUN device. Batches stay
// batches (one callback per TUN read batch); nothing is copied here (the link copies into its UDP
// buffer or ring record, the TUN write copies into the kernel).
import type { Link } from "../link/link.ts";
import type { TunDevice } from "./tun.ts";

export interface BridgeCounters {
  packetsToLink: number;
  packetsNotSent: number;
  packetsToTun: number;
  packetsTunDropped: number;
}

export function bridge(tun: TunDevice, link: Link): BridgeCounters {
  const counters: BridgeCounters = { packetsToLink: 0, packetsNotSent: 0, packetsToTun: 0, packetsTunDropped: 0 };
  tun.onPackets((packets, lengths, count) => {
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const length = lengths[i]!;
      if (link.sendData(packets.subarray(offset, offset + length))) counters.packetsToLink++;
      else counters.packetsNotSent++;
      offset += length;
    }
  });
  link.on("data", (payload) => {
    if (tun.write(payload)) counters.packetsToTun++;
    else counters.packetsTunDropped++;
  });
  return counters;
}
