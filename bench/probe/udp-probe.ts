// UDP probe for `bench link`, run inside a lab namespace:
//   node --import=tsx bench/probe/udp-probe.ts send <addr:port> <intervalMs> <maxSeconds>
//   node --import=tsx bench/probe/udp-probe.ts recv <addr:port> <maxSeconds>
// The sender sends datagrams {seq u32, sentAtMs f64 (wall clock, sub-ms)} every intervalMs until
// stdin closes or maxSeconds pass. The receiver records (seq, sentAtMs, arrivedAtMs) for each one and,
// when stdin closes or maxSeconds pass, prints them as one JSON line. Both ends share the host clock.
import dgram from "node:dgram";
import { performance } from "node:perf_hooks";

const [mode, endpoint, a, b] = process.argv.slice(2);
const [host, portText] = endpoint!.split(":");
const port = Number(portText);
const wallMs = () => performance.timeOrigin + performance.now();

if (mode === "send") {
  const intervalMs = Number(a);
  const maxSeconds = Number(b);
  const socket = dgram.createSocket("udp4");
  const packet = Buffer.alloc(64);
  let seq = 0;
  const timer = setInterval(() => {
    packet.writeUInt32LE(seq++, 0);
    packet.writeDoubleLE(wallMs(), 4);
    socket.send(packet, port, host, () => undefined);
  }, intervalMs);
  const stop = () => {
    clearInterval(timer);
    socket.close();
    process.stdout.write(`${JSON.stringify({ sent: seq })}\n`, () => process.exit(0));
  };
  setTimeout(stop, maxSeconds * 1000).unref();
  process.stdin.on("end", stop).resume();
} else if (mode === "recv") {
  const maxSeconds = Number(a);
  const socket = dgram.createSocket("udp4");
  const rows: [number, number, number][] = [];
  const MAX_ROWS = 2_000_000;
  socket.on("message", (msg) => {
    if (msg.length < 12 || rows.length >= MAX_ROWS) return;
    rows.push([msg.readUInt32LE(0), msg.readDoubleLE(4), wallMs()]);
  });
  socket.bind(port, host, () => console.log(JSON.stringify({ listening: true })));
  const stop = () => {
    // A pipe write is asynchronous: exit only once the (large) line is out.
    process.stdout.write(`${JSON.stringify({ rows })}\n`, () => process.exit(0));
  };
  setTimeout(stop, maxSeconds * 1000).unref();
  process.stdin.on("end", stop).resume();
} else {
  console.error("usage: udp-probe.ts send|recv ...");
  process.exit(2);
}
