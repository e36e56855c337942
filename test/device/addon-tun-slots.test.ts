// TUN batch slots are native-owned: a packet handler that tries to transfer the views it was handed
// (structuredClone or postMessage with a transfer list) either gets a copy (Node 20) or a
// DataCloneError (Node 22 and 24 refuse to transfer an untransferable buffer); either way its views
// stay attached, the reader thread keeps writing only into its own slots, and later batches arrive
// intact. Run under every supported Node major (test/helpers/node-matrix.ts), each in a throwaway
// network namespace (198.18.0.0/15); outcomes only (bytes, counts).
import test from "ava";

import { createNamespace, runIn } from "../helpers/netns.ts";
import { NODE_MAJORS, nodeBinaryOrReport } from "../helpers/node-matrix.ts";

const TUN_MODULE = new URL("../../lib/tun/tun.ts", import.meta.url).href;
const PACKETS = 600;
const WINDOW = 100; // below the TUN's 500-packet txqueue: nothing is dropped however slow the reader

interface Outcome {
  node: string;
  seen: number;
  intact: number;
  attached: boolean;
  attempts: number;
  clones: number;
  posted: number;
  refused: number;
  clonesUnchanged: boolean;
}

// The scenario, run by `node --import=tsx --input-type=module -e` inside the namespace.
const SCENARIO = `
import dgram from "node:dgram";
import { MessageChannel } from "node:worker_threads";
import { TunDevice } from ${JSON.stringify(TUN_MODULE)};
setTimeout(() => { console.error("25 s limit"); process.exit(3); }, 25000).unref();
const tun = await TunDevice.open({ name: "lltslot0", mtu: 1500, address: "198.18.131.1/24" });
const taken = [];
let attempts = 0;
let refused = 0;
let posted = 0;
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
  if (attempts < 4) {
    // Try to take the slot's memory away from the reader thread: a copy or a refusal, never a move.
    attempts++;
    const transfer = (view, viaPort) => {
      try {
        if (viaPort) { port1.postMessage(view, [view.buffer]); posted++; return null; }
        const clone = structuredClone(view, { transfer: [view.buffer] });
        return { view: clone, snapshot: Buffer.from(clone.buffer, clone.byteOffset, clone.byteLength) };
      } catch (error) {
        if (error?.name !== "DataCloneError") throw error;
        refused++;
        return null;
      }
    };
    const packetsClone = transfer(packets, attempts % 2 === 0);
    const lengthsClone = transfer(lengths, false);
    attached &&= packets.byteLength > 0 && lengths.byteLength > 0;
    for (const clone of [packetsClone, lengthsClone]) if (clone !== null) taken.push(clone);
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
const clonesUnchanged = taken.every(({ view, snapshot }) => Buffer.compare(Buffer.from(view.buffer, view.byteOffset, view.byteLength), snapshot) === 0);
await tun.close();
console.log(JSON.stringify({ node: process.version, seen, intact, attached, attempts, clones: taken.length, posted, refused, clonesUnchanged }));
`;

for (const major of NODE_MAJORS) {
  test(`Node ${major}: a packet handler that transfers its batch views gets copies or a DataCloneError; the reader thread keeps to its own memory`, async (t) => {
    const binary = nodeBinaryOrReport(t, major);
    if (binary === undefined) return;
    const ns = await createNamespace(t, `slot${major}`);
    const stdout = await runIn(ns, binary, ["--import=tsx", "--input-type=module", "-e", SCENARIO], 30_000);
    const out = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Outcome;
    t.log(`${out.node}: ${out.clones} copies, ${out.posted} posted, ${out.refused} refusals`);
    t.true(out.node.startsWith(`v${major}.`), `ran under ${out.node}`);
    t.is(out.seen, PACKETS);
    t.is(out.intact, PACKETS, "every packet read after the transfer attempts arrived intact");
    t.true(out.attached, "the handler's views stayed attached (a transfer copied or was refused)");
    t.is(out.attempts, 4);
    // Eight transfer attempts (per attempt: the packets view by structuredClone or postMessage, the
    // lengths view by structuredClone); each copied, posted (a copy on the port) or refused.
    t.is(out.clones + out.posted + out.refused, 8, "every transfer was a copy or a DataCloneError");
    t.true(out.clonesUnchanged, "the reader thread never wrote into memory handed to a new owner");
  });
}
