// One TUN scenario, run inside a test network namespace (never the host's own):
//   ip netns exec NS node --import=tsx test/helpers/tun-peer.ts <scenario> <subnet>
// subnet is the first three octets of a /24 inside 198.18.0.0/15; the TUN gets <subnet>.1/24 and
// <subnet>.2 is the far end "behind" it. Prints one JSON line with what it observed; the test
// asserts on it. Every wait is bounded by a count and a time limit; the whole process by 25 s.
import dgram from "node:dgram";
import { execFileSync } from "node:child_process";

import { LunlinkError } from "../../lib/errors.ts";
import { TunDevice, type TunOptions } from "../../lib/tun/tun.ts";
import { buildUdpPacket, parseUdpPacket, writeUdpPacket } from "./ipv4.ts";

const [scenario, subnet = ""] = process.argv.slice(2);
if (!/^198\.1[89]\.\d{1,3}$/.test(subnet)) throw new Error(`subnet must be inside 198.18.0.0/15, got ${subnet}`);
const local = `${subnet}.1`;
const remote = `${subnet}.2`;
setTimeout(() => {
  console.error("tun-peer: 25 s limit reached");
  process.exit(3);
}, 25_000).unref();

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const payloadFor = (tag: string, i: number): Uint8Array => {
  const b = Buffer.alloc(24 + (i % 50));
  b.write(`${tag}:${i}:`);
  for (let k = 12; k < b.length; k++) b[k] = (i * 13 + k) & 0xff;
  return b;
};

/** Resolves when `done()` holds, or after `limitMs`; checks every 5 ms. */
async function until(done: () => boolean, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

function links(): string {
  return execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
}

async function openTun(options: TunOptions = {}): Promise<TunDevice> {
  return TunDevice.open({ name: "llttun0", address: `${local}/24`, ...options });
}

// (a) datagrams sent in the namespace to <subnet>.2 are routed into the TUN and read from it.
async function receive(): Promise<unknown> {
  const tun = await openTun();
  const port = 40_000;
  const count = 20;
  const seen: unknown[] = [];
  tun.onPackets((packets, lengths, n) => {
    let offset = 0;
    for (let i = 0; i < n; i++) {
      const length = lengths[i]!;
      const udp = parseUdpPacket(packets.subarray(offset, offset + length));
      offset += length;
      if (udp === undefined || udp.destinationPort !== port) continue; // IPv6 router solicitations and the like
      seen.push({ ...udp, length, payload: hex(udp.payload) });
    }
  });
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, local, resolve));
  for (let i = 0; i < count; i++) socket.send(payloadFor("a", i), port, remote);
  await until(() => seen.length >= count, 5000);
  const sourcePort = socket.address().port;
  socket.close();
  const counters = { ...tun.counters };
  await tun.close();
  return { name: tun.name, mtu: tun.mtu, sourcePort, packets: seen, counters, expected: Array.from({ length: count }, (_, i) => hex(payloadFor("a", i))) };
}

// (b) hand-built packets written to the TUN reach a bound socket byte-exact.
async function send(): Promise<unknown> {
  const tun = await openTun();
  const port = 40_001;
  const socket = dgram.createSocket("udp4");
  const received: { payload: string; address: string; port: number }[] = [];
  socket.on("message", (message, rinfo) => received.push({ payload: message.toString("hex"), address: rinfo.address, port: rinfo.port }));
  await new Promise<void>((resolve) => socket.bind(port, local, resolve));
  const singles = 3;
  const batched = 7;
  const expected: string[] = [];
  let singleOk = 0;
  for (let i = 0; i < singles; i++) {
    const payload = payloadFor("b", i);
    expected.push(hex(payload));
    if (tun.write(buildUdpPacket(remote, local, 5555, port, payload, i))) singleOk++;
  }
  const buffer = new Uint8Array(batched * 200);
  const lengths = new Uint16Array(batched);
  let offset = 0;
  for (let i = 0; i < batched; i++) {
    const payload = payloadFor("b", singles + i);
    expected.push(hex(payload));
    lengths[i] = writeUdpPacket(buffer, offset, remote, local, 5555, port, payload, singles + i);
    offset += lengths[i]!;
  }
  const batchOk = tun.writeBatch(buffer, lengths, batched);
  await until(() => received.length >= singles + batched, 5000);
  socket.close();
  const counters = { ...tun.counters };
  await tun.close();
  return { singleOk, batchOk, received, expected, counters, bytesExpected: offset + expected.slice(0, singles).reduce((s, p) => s + 28 + p.length / 2, 0) };
}

// (c) a burst: windows of sends (each below the TUN's 500-packet txqueue) read back completely.
async function burst(): Promise<unknown> {
  const tun = await openTun();
  const port = 40_002;
  const total = 5000;
  const window = 250;
  const got = new Uint8Array(total);
  let unique = 0;
  let malformed = 0;
  let maxBatch = 0;
  tun.onPackets((packets, lengths, n) => {
    maxBatch = Math.max(maxBatch, n);
    let offset = 0;
    for (let i = 0; i < n; i++) {
      const length = lengths[i]!;
      const udp = parseUdpPacket(packets.subarray(offset, offset + length));
      offset += length;
      if (udp === undefined || udp.destinationPort !== port) continue;
      const index = udp.payload.length === 8 ? new DataView(udp.payload.buffer, udp.payload.byteOffset).getUint32(0) : -1;
      if (index < 0 || index >= total) malformed++;
      else if (got[index] === 0) {
        got[index] = 1;
        unique++;
      }
    }
  });
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.connect(port, remote, resolve));
  let sent = 0;
  const payload = Buffer.alloc(8);
  while (sent < total) {
    const end = Math.min(total, sent + window);
    for (; sent < end; sent++) {
      payload.writeUInt32BE(sent, 0);
      payload.writeUInt32BE(0x6c756e6c, 4);
      socket.send(payload);
    }
    await until(() => unique >= sent, 3000);
    if (unique < sent) break; // lost: report what arrived instead of waiting on
  }
  socket.close();
  const counters = { ...tun.counters };
  await tun.close();
  return { sent, unique, malformed, maxBatch, counters };
}

function failure(what: string, error: unknown): unknown {
  if (!(error instanceof LunlinkError)) return { what, unexpected: String(error) };
  return { what, code: error.code, errno: error.errno, syscall: error.syscall, path: error.path, message: error.message };
}

async function expectFailure(what: string, open: () => Promise<unknown>): Promise<unknown> {
  try {
    const opened = await open();
    if (opened instanceof TunDevice) await opened.close();
    return { what, unexpected: "no error" };
  } catch (error) {
    return failure(what, error);
  }
}

// (d) coded errors, idempotent close, the interface gone after close.
async function errors(): Promise<unknown> {
  const results: unknown[] = [];
  results.push(await expectFailure("name too long", () => openTun({ name: "lunlink-too-long-name" })));
  results.push(await expectFailure("name with a slash", () => openTun({ name: "bad/name" })));
  results.push(await expectFailure("mtu too small", () => openTun({ mtu: 67 })));
  results.push(await expectFailure("mtu not an integer", () => openTun({ mtu: 1400.5 })));
  results.push(await expectFailure("cidr without prefix", () => openTun({ address: "198.18.7.1" })));
  results.push(await expectFailure("cidr octet 256", () => openTun({ address: "198.18.256.1/24" })));
  results.push(await expectFailure("cidr prefix 33", () => openTun({ address: "198.18.7.1/33" })));
  const first = await openTun({ name: "lltdup0" });
  results.push(await expectFailure("name held by another TUN", () => openTun({ name: "lltdup0" })));
  results.push(await expectFailure("name of a non-TUN interface", () => openTun({ name: "lo" })));
  const listedBeforeClose = links().includes("lltdup0");
  await first.close();
  let secondCloseOk = true;
  try {
    await first.close();
  } catch {
    secondCloseOk = false;
  }
  const listedAfterClose = links().includes("lltdup0");
  let writeAfterClose: unknown;
  try {
    first.write(new Uint8Array(28));
    writeAfterClose = { unexpected: "no error" };
  } catch (error) {
    writeAfterClose = failure("write after close", error);
  }
  // The name is free again once closed.
  const again = await openTun({ name: "lltdup0" });
  const reopened = again.name;
  await again.close();
  return { results, listedBeforeClose, listedAfterClose, secondCloseOk, writeAfterClose, reopened };
}

// Run without CAP_NET_ADMIN (the test starts this under setpriv): creating a TUN is refused.
async function noPermission(): Promise<unknown> {
  return expectFailure("open without CAP_NET_ADMIN", () => openTun({ name: "lltperm0" }));
}

const scenarios: Record<string, () => Promise<unknown>> = { receive, send, burst, errors, noPermission };
const run = scenario === undefined ? undefined : scenarios[scenario];
if (run === undefined) throw new Error(`unknown scenario ${scenario}; scenarios: ${Object.keys(scenarios).join(", ")}`);
console.log(JSON.stringify(await run()));
