// The floor under an idle node's design (bench idle's reference row): a bare Node.js process that
// does only what the link's primary path must do when idle, a UDP heartbeat every heartbeatMs to its
// peer and the peer's heartbeats arriving, on loopback. Forked by bench/idle.ts with an IPC channel:
// it sends the port it bound, receives its peer's port, then runs until the parent disconnects.
import dgram from "node:dgram";

const heartbeatMs = Number(process.argv[2]);
if (!(heartbeatMs > 0)) throw new Error(`usage: heartbeat-floor.mjs HEARTBEAT_MS (got ${JSON.stringify(process.argv[2])})`);
/** A heartbeat datagram's size: the link's sealed heartbeat is about this long. */
const HEARTBEAT_BYTES = 64;

const socket = dgram.createSocket("udp4");
socket.on("message", () => undefined);
socket.bind(0, "127.0.0.1", () => process.send({ port: socket.address().port }));
process.once("message", ({ peerPort }) => {
  const heartbeat = Buffer.alloc(HEARTBEAT_BYTES);
  const timer = setInterval(() => socket.send(heartbeat, peerPort, "127.0.0.1"), heartbeatMs);
  process.once("disconnect", () => {
    clearInterval(timer);
    socket.close();
  });
});
