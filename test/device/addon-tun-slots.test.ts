// TUN batch slots are native-owned: a packet handler that transfers the views it was handed
// (structuredClone or postMessage with a transfer list) gets a copy, the reader thread keeps
// writing only into its own slots, and later batches arrive intact. Runs in a throwaway network
// namespace (198.18.0.0/15); outcomes only (bytes, counts).
import test from "ava";

import { createNamespace, runIn } from "../helpers/netns.ts";

const TUN_MODULE = new URL("../../lib/tun/tun.ts", import.meta.url).href;
const PACKETS = 600;
const WINDOW = 100; // below the TUN's 500-packet txqueue: nothing is dropped however slow the reader

// The scenario, run by `node --import=tsx --input-type=module -e` inside the namespace.
const SCENARIO = `
import dgram from "node:dgram";
import { MessageChannel } from "node:worker_threads";
import { TunDevice } from ${JSON.stringify(TUN_MODULE)};
setTimeout(() => { console.error("25 s limit"); process.exit(3); }, 25000).unref();
const tun = await TunDevice.open({ name: "lltslot0", mtu: 1500, address: "198.18.131.1/24" });
const taken = [];
let seen = 0;
let intact = 0;
let attached = true;
const { port1, port2 } = new MessageChannel();
tun.onPackets((packets, lengths, count) => {
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const packet = packets.subarray(offset, offset + lengths[i]);
    offset += lengths[i];
    if (packet.length < 28 + 8 || packet[9] !== 17) continue; // IPv4/UDP only
    seen++;
    const payload = Buffer.from(packet.buffer, packet.byteOffset + 28, packet.length - 28);
    const n = payload.readUInt32LE(0);
    if (payload.length === 64 && payload.every((b, k) => k < 4 || b === (n + k) % 251)) intact++;
  }
  if (taken.length < 4) {
    // Try to take the slot's memory away from the reader thread.
    const clone = taken.length % 2 === 0
      ? structuredClone(packets, { transfer: [packets.buffer] })
      : (port1.postMessage(packets, [packets.buffer]), null);
    const lengthsClone = structuredClone(lengths, { transfer: [lengths.buffer] });
    attached &&= packets.byteLength > 0 && lengths.byteLength > 0;
    if (clone !== null) taken.push({ view: clone, snapshot: Buffer.from(clone) });
    else taken.push(null);
    taken.push({ view: lengthsClone, snapshot: Buffer.from(lengthsClone.buffer, lengthsClone.byteOffset, lengthsClone.byteLength) });
  }
});
const socket = dgram.createSocket("udp4");
await new Promise((resolve) => socket.bind(0, "198.18.131.1", resolve));
const until = Date.now() + 20000;
for (let sent = 0; sent < ${PACKETS} && Date.now() < until; ) {
  for (const end = sent + ${WINDOW}; sent < end; sent++) {
    const payload = Buffer.alloc(64);
    payload.writeUInt32LE(sent, 0);
    for (let k = 4; k < 64; k++) payload[k] = (sent + k) % 251;
    socket.send(payload, 9, "198.18.131.2");
  }
  while (seen < sent && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}
socket.close();
port1.close();
port2.close();
const clonesUnchanged = taken.filter((x) => x !== null).every(({ view, snapshot }) => Buffer.compare(Buffer.from(view.buffer, view.byteOffset, view.byteLength), snapshot) === 0);
await tun.close();
console.log(JSON.stringify({ seen, intact, attached, clones: taken.filter((x) => x !== null).length, clonesUnchanged }));
`;

test("a packet handler that transfers its batch views gets copies; the reader thread keeps to its own memory", async (t) => {
  const ns = await createNamespace(t, "slot");
  const stdout = await runIn(ns, process.execPath, ["--import=tsx", "--input-type=module", "-e", SCENARIO], 30_000);
  const out = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as { seen: number; intact: number; attached: boolean; clones: number; clonesUnchanged: boolean };
  t.is(out.seen, PACKETS);
  t.is(out.intact, PACKETS, "every packet read after the transfers arrived intact");
  t.true(out.attached, "the handler's views stayed attached (transfer copied them)");
  t.true(out.clones >= 4);
  t.true(out.clonesUnchanged, "the reader thread never wrote into memory handed to a new owner");
});
