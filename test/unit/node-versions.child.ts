// The child process of node-versions.test.ts: run under one Node.js binary, it leaves native-owned
// blocks alive at exit (alignedBuffer, alloc()/bounce blocks of a volume, UDP receive slots), so that
// the environment's teardown finalizes every external ArrayBuffer the addon handed out. argv[2] is a
// scratch file under /var/tmp (O_DIRECT needs a disk file system). Prints one JSON line on success.
import { UdpSocket } from "../../lib/io/udp.ts";
import { Volume, alignedBuffer } from "../../lib/index.ts";
import { foreignAligned } from "../helpers/buffers.ts";

const BLOCK_BYTES = 4096;
const DATAGRAM_WAIT_MS = 10_000; // bound on waiting for the loopback datagram

const path = process.argv[2];
if (path === undefined) throw new Error("usage: node-versions.child.ts <scratch file>");

// Kept reachable until exit: the blocks must still be alive when the environment is torn down.
const kept: Uint8Array[] = [];
for (const sizeBytes of [BLOCK_BYTES, 16 * BLOCK_BYTES, 1 << 20]) kept.push(alignedBuffer(sizeBytes, BLOCK_BYTES));

const volume = await Volume.open(path);
const written = volume.alloc(2 * BLOCK_BYTES);
for (let i = 0; i < written.length; i++) written[i] = (i * 7 + 3) & 0xff;
await volume.write(BLOCK_BYTES, written);
const read = await volume.read(BLOCK_BYTES, 2 * BLOCK_BYTES);
const bounced = await volume.read(BLOCK_BYTES, foreignAligned(2 * BLOCK_BYTES)); // foreign: through a bounce block
kept.push(written, read);
await volume.close();

// One datagram to itself on loopback, so the receive slots (external ArrayBuffers too) are live.
const socket = UdpSocket.bind({ host: "127.0.0.1", port: 0 }, 1 << 20);
const received = await new Promise<number>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`no loopback datagram within ${DATAGRAM_WAIT_MS} ms`)), DATAGRAM_WAIT_MS);
  socket.start(
    (_datagrams, _table, _arrivals, count) => {
      clearTimeout(timer);
      resolve(count);
    },
    (error) => {
      clearTimeout(timer);
      reject(error);
    },
  );
  const payload = alignedBuffer(64, 64);
  payload.fill(0x5a);
  kept.push(payload);
  socket.sendBatch(payload, Uint32Array.of(payload.length), 1, 0x7f000001, socket.port);
});
socket.close();

const sameRead = Buffer.compare(read, written) === 0 && Buffer.compare(bounced, written) === 0;
process.stdout.write(`${JSON.stringify({ node: process.version, sameRead, received, keptBlocks: kept.length })}\n`);
