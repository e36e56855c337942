// TUN offload end to end (`lunlink up` on two hosts in network namespaces, lib/node/lab.ts): a TCP
// stream of tens of MiB through lunlink0 over storage alone (primary cut) and over the primary.
// Asserted: the stream's SHA-256 and length, and the nodes' counters: the TUN handed over TCP
// superpackets, storage carried them whole (one message each), the primary carried their segments.
import test from "ava";

import type { LinkStatus } from "../../lib/link/link.ts";
import type { SuperpacketCounters } from "../../lib/link/superpackets.ts";
import type { Lab } from "../../lib/node/lab.ts";
import { upLab } from "../helpers/lab.ts";

type OffloadStatus = LinkStatus & { tun: { offload: boolean; superpacketsIn: number; superpacketsOut: number; malformedIn: number }; superpackets: SuperpacketCounters };

async function offloadStatus(lab: Lab, id: 1 | 2): Promise<OffloadStatus> {
  return (await lab.status(id)) as OffloadStatus;
}

const BYTES = 40 * 1024 * 1024;
const RATE_MBPS = 400; // well above what either path carries: the stream runs as fast as TCP can

for (const keys of [false, true]) {
  test(`storage alone (primary cut${keys ? ", keyed rings and sealed UDP" : ""}): a TCP stream arrives intact, its superpackets carried whole`, async (t) => {
    const lab = await upLab(t, { keys });
    await lab.setPrimary(false);
    for (const id of [1, 2] as const) await lab.waitFor(id, "on storage", (s) => s.active === "storage", 15_000);
    const stream = await lab.startStream(1, BYTES, RATE_MBPS);
    const { sent, received } = await stream.finished;
    t.is(received.bytes, BYTES, "every byte arrived");
    t.is(received.sha256, sent.sha256, "and the stream's SHA-256 is the sender's");
    const sender = await offloadStatus(lab, 1);
    const receiver = await offloadStatus(lab, 2);
    t.log(JSON.stringify({ sender: { tun: sender.tun, superpackets: sender.superpackets }, receiver: { tun: receiver.tun, superpackets: receiver.superpackets } }));
    t.true(sender.tun.offload, "the sender's TUN has offload on");
    t.true(sender.tun.superpacketsIn > 0, "the sender's TUN handed over superpackets");
    t.true(sender.superpackets.sentWhole > 0, "storage carried superpackets whole");
    t.true(receiver.superpackets.delivered > 0, "the receiver delivered them whole to its TUN");
    t.true(receiver.tun.superpacketsOut > 0, "and its TUN took them framed");
    t.is(sender.tun.malformedIn, 0);
  });
}

test("over the primary: a TCP stream arrives intact, superpackets cut into complete segments", async (t) => {
  const lab = await upLab(t);
  const stream = await lab.startStream(1, BYTES, RATE_MBPS);
  const { sent, received } = await stream.finished;
  t.is(received.bytes, BYTES, "every byte arrived");
  t.is(received.sha256, sent.sha256, "and the stream's SHA-256 is the sender's");
  const sender = await offloadStatus(lab, 1);
  t.log(JSON.stringify({ tun: sender.tun, superpackets: sender.superpackets, active: sender.active }));
  t.true(sender.tun.superpacketsIn > 0, "the sender's TUN handed over superpackets");
  t.true(sender.superpackets.sentSegmented > 0, "the primary carried them as segments");
  t.true(sender.superpackets.segmentsSent > sender.superpackets.sentSegmented, "more than one segment each");
});
