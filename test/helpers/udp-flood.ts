// A hostile or just greedy sender for the end-to-end tests, run in a lab namespace:
//   node --import=tsx test/helpers/udp-flood.ts <addr:port> <count> <forged|downgrade|blast>
// blast: plain 1372-byte UDP datagrams as fast as the socket takes them (through the TUN device when
// aimed at the peer's TUN address), for at most 10 s.
// forged: sealed-looking datagrams (version 2) claiming to come from node 1 with a newer session
// and random bytes where the ciphertext and tag go; downgrade: well-formed unsealed (version 1) data
// messages from node 1 with a newer session. Sends `count` of them, then prints {sent}.
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";

import { encodeMessage, MessageKind, PathId } from "../../lib/link/message.ts";

const [endpoint, countArg, mode] = process.argv.slice(2);
const [host, port] = endpoint!.split(":");
const count = Number(countArg);
const socket = dgram.createSocket("udp4");
const session = (BigInt(Date.now() + 3_600_000) << 16n) | 1n; // "newer" than the real session
let sent = 0;
if (mode === "blast") {
  const payload = randomBytes(1372);
  const until = Date.now() + 10_000;
  for (let i = 0; i < count && Date.now() < until; i += 32) {
    await Promise.all(Array.from({ length: 32 }, () => new Promise<void>((resolve) => socket.send(payload, Number(port), host, () => resolve()))));
    sent += 32;
  }
  socket.close();
  console.log(JSON.stringify({ sent }));
  process.exit(0);
}
for (let i = 0; i < count; i++) {
  const plain = encodeMessage({ kind: MessageKind.Data, path: PathId.Primary, node: 1, session, seq: BigInt(i + 1), ack: 0n }, randomBytes(100));
  let datagram: Buffer = plain;
  if (mode === "forged") {
    datagram = Buffer.concat([plain.subarray(0, 28), randomBytes(8 + 100 + 16)]);
    datagram[0] = 2;
  }
  await new Promise<void>((resolve) => socket.send(datagram, Number(port), host, () => resolve()));
  sent++;
}
socket.close();
console.log(JSON.stringify({ sent }));
