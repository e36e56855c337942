// Exercises every addon entry point (for valgrind / ASan runs). LUNLINK_ADDON (lib/io/native.ts) may
// name another build of the addon (scripts/asan.sh).
import { Volume, alignedBuffer } from "../../dist/lib/index.js";
import { writeFileSync, truncateSync } from "node:fs";
const path = "/var/tmp/lunlink-vg.img";
writeFileSync(path, Buffer.alloc(4 << 20));
const v = await Volume.open(path, { ioThreads: 4, dsync: true });
const bufs = Array.from({ length: 16 }, (_, i) => { const b = v.alloc(65536); b.fill(i); return b; });
await Promise.all(bufs.map((b, i) => v.write(i * 65536, b)));
await v.flush();
const back = await Promise.all(bufs.map((_, i) => v.read(i * 65536, 65536)));
if (back.some((b, i) => b[100] !== i)) throw new Error("mismatch");
for (const bad of [() => v.write(1, bufs[0]), () => v.read(0, alignedBuffer(100)), () => v.read(1n << 40n, 4096)]) {
  try { await bad(); throw new Error("no error"); } catch (e) { if (!e.code) throw e; }
}
truncateSync(path, 65536);
try { await v.read(1 << 20, 4096); } catch (e) { console.log(e.code); }
await v.close();
try { await Volume.open("/nonexistent"); } catch (e) { console.log(e.code); }
try { await Volume.open("/dev/null"); } catch (e) { console.log(e.code); }
// Foreign (V8-allocated) buffers are bounced through native blocks; alloc() buffers stay attached
// when transferred; queued work is cancelled by close.
{
  writeFileSync(path, Buffer.alloc(1 << 20));
  const f = await Volume.open(path, { ioThreads: 1 });
  const { addon } = await import("../../dist/lib/io/native.js");
  const backing = new Uint8Array(new ArrayBuffer(65536 + 4096));
  let foreign;
  for (let shift = 0; shift < 4096 && foreign === undefined; shift += 8) {
    const view = backing.subarray(shift, shift + 65536);
    if (addon().addressAlignment(view) >= 4096) foreign = view;
  }
  foreign.fill(0x4f);
  await f.write(0, foreign);
  foreign.fill(0);
  await f.read(0, foreign);
  if (foreign[65535] !== 0x4f) throw new Error("bounced read mismatch");
  const owned = f.alloc(4096);
  structuredClone(owned, { transfer: [owned.buffer] });
  if (owned.byteLength !== 4096) throw new Error("an alloc() buffer was transferred");
  const queued = Promise.allSettled(Array.from({ length: 16 }, (_, i) => f.write(i * 65536, foreign)));
  await f.close();
  const outcomes = await queued;
  // Each queued write either ran or was cancelled by close (how many depends on the thread's pace).
  const bad = outcomes.find((o) => o.status === "rejected" && o.reason.code !== "ERR_LUNLINK_CANCELLED");
  if (bad !== undefined) throw bad.reason;
  console.log("cancelled by close:", outcomes.filter((o) => o.status === "rejected").length, "of", outcomes.length);
  writeFileSync(path, Buffer.alloc(65536));
  console.log("bounce and cancel done");
}
// A volume dropped without close: the finalizer abandons the pool.
for (let i = 0; i < 5; i++) await Volume.open(path);
globalThis.gc?.();
const ro = await Volume.open(path, { readOnly: true, exclusive: true, busyPollUs: 200 });
await ro.read(0, 4096);
await ro.close();
console.log("exercise done");
{
  const w = await Volume.open(path, { ioThreads: 2 });
  const seen = w.alloc(4096);
  const pending = w.watch(0, seen, { compareBytes: 16, sleepUs: 100, timeoutMs: 2000 });
  const b = w.alloc(4096); b.fill(9);
  const other = await Volume.open(path);
  await other.write(0, b); await other.close();
  if (!(await pending)) throw new Error("watch missed the change");
  // The native back-off (sleep growing from sleepUs to maxSleepUs), timed out, then ended by close.
  if (await w.watch(4096, w.alloc(4096), { compareBytes: 16, sleepUs: 50, maxSleepUs: 5000, timeoutMs: 60 })) throw new Error("watch reported a change");
  // A stamp watch (untilStamp): ends on a stamp of the magic with a seq at least the one watched for.
  const stamp = w.alloc(4096);
  new DataView(stamp.buffer, stamp.byteOffset).setUint32(0, 0x4b424c4c, true);
  new DataView(stamp.buffer, stamp.byteOffset).setBigUint64(8, 3n, true);
  const stampWatch = { compareBytes: 16, sleepUs: 50, maxSleepUs: 2000, timeoutMs: 2000, untilStamp: { magic: 0x4b424c4c, seq: 3n } };
  const until = w.watch(8192, w.alloc(4096), stampWatch);
  await w.write(8192, stamp);
  if (!(await until)) throw new Error("stamp watch missed its seq");
  if (await w.watch(8192, w.alloc(4096), { ...stampWatch, timeoutMs: 30, untilStamp: { magic: 0x4b424c4c, seq: 4n } })) throw new Error("stamp watch ended below its seq");
  // wakeWatches(): a watch asleep at a long pace ends after one more read (a queued one too), unchanged here.
  const asleep = [w.watch(4096, w.alloc(4096), { compareBytes: 16, sleepUs: 500000, timeoutMs: 5000 }), w.watch(12288, w.alloc(4096), { compareBytes: 16, sleepUs: 500000, timeoutMs: 5000 })];
  await new Promise((r) => setTimeout(r, 20));
  w.wakeWatches();
  if ((await Promise.all(asleep)).some((changed) => changed)) throw new Error("a woken watch reported a change");
  const idle = w.watch(4096, w.alloc(4096), { compareBytes: 16, sleepUs: 100, maxSleepUs: 20000, timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 50));
  await w.close();
  if (await idle) throw new Error("watch reported a change on close");
  console.log("watch done");
}
{
  // TUN entry points. In the root namespace (the default) only what leaves the host untouched:
  // open/close, MTU, up/down, info, reads of whatever the kernel sends (IPv6 link-local chatter),
  // writes of packets the kernel refuses before its stack sees them (version nibble 0: EINVAL).
  // With LUNLINK_EXERCISE_NETNS=1 (valgrind.sh runs it again inside a throwaway namespace) also an
  // address and real traffic both ways.
  const { TunDevice } = await import("../../dist/lib/index.js");
  const { Worker } = await import("node:worker_threads");
  const dgram = await import("node:dgram");
  const inNamespace = process.env.LUNLINK_EXERCISE_NETNS === "1";
  const tun = await TunDevice.open({ name: "lltvg%d", mtu: 1500, ...(inNamespace ? { address: "198.18.120.1/24" } : {}) });
  let seen = 0;
  tun.onPackets((packets, lengths, count) => { for (let i = 0; i < count; i++) seen += lengths[i] > 0 ? 1 : 0; });
  tun.setUp(false);
  tun.setUp(true);
  const junk = new Uint8Array(64);
  if (tun.write(junk)) throw new Error("a packet with IP version 0 was accepted");
  const lengths = new Uint32Array([20, 20, 24]);
  if (tun.writeBatch(junk, lengths, 3) !== 0) throw new Error("junk batch accepted");
  for (const bad of [() => tun.writeBatch(junk, new Uint32Array([65]), 1), () => tun.writeBatch(junk, lengths, 4), () => tun.write(new Uint8Array(0))]) {
    try { bad(); throw new Error("no error"); } catch (e) { if (!e.code) throw e; }
  }
  if (inNamespace) {
    const socket = dgram.createSocket("udp4");
    await new Promise((r) => socket.bind(0, "198.18.120.1", r));
    // Windows of 200, below the TUN's 500-packet txqueue, so nothing is dropped however slow valgrind is.
    const until = Date.now() + 60000;
    for (let sent = 0; sent < 2000 && Date.now() < until; ) {
      for (const end = sent + 200; sent < end; sent++) socket.send(Buffer.alloc(32, sent), 9, "198.18.120.2");
      while (seen < sent && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    }
    socket.close();
    if (seen < 2000) throw new Error(`read ${seen} of 2000 packets`);
  }
  // TUN offload (addon/gso.cc): a vnet-framed TCP superpacket cut natively (good, and every bad
  // header), written whole to the offload device and cut by a device opened without offload.
  const { addon: rawAddon } = await import("../../dist/lib/io/native.js");
  const superpacket = (gsoType, gsoSize, csumStart, csumOffset, flags = 1) => {
    const ip = new Uint8Array(20 + 20 + 5000);
    const v = new DataView(ip.buffer);
    v.setUint8(0, 0x45); v.setUint16(2, ip.length); v.setUint8(8, 64); v.setUint8(9, 6);
    ip.set([198, 18, 120, 2, 198, 18, 120, 1], 12);
    v.setUint16(20, 40000); v.setUint16(22, 9); v.setUint8(32, 0x50); v.setUint8(33, 0x18);
    const framed = new Uint8Array(10 + ip.length);
    const h = new DataView(framed.buffer);
    h.setUint8(0, flags); h.setUint8(1, gsoType); h.setUint16(2, 40, true); h.setUint16(4, gsoSize, true); h.setUint16(6, csumStart, true); h.setUint16(8, csumOffset, true);
    framed.set(ip, 10);
    return framed;
  };
  const cutOut = new Uint8Array(1 << 16);
  const cutLengths = new Uint32Array(64);
  if (rawAddon().segmentTcp(superpacket(1, 1360, 20, 16), cutOut, cutLengths) !== 4) throw new Error("segmentTcp: 4 segments expected");
  if (rawAddon().segmentTcp(superpacket(0, 0, 20, 16), cutOut, cutLengths) !== 1) throw new Error("segmentTcp: checksum completion");
  for (const [bad, code] of [[superpacket(1, 0, 20, 16), -3], [superpacket(1, 1360, 20, 9000), -5], [superpacket(3, 1360, 20, 16), -2], [superpacket(1, 1, 20, 16), -7], [new Uint8Array(4), -1]]) {
    if (rawAddon().segmentTcp(bad, cutOut, cutLengths) !== code) throw new Error(`segmentTcp: ${code} expected`);
  }
  tun.write(superpacket(1, 1360, 20, 16));
  tun.writeBatch(superpacket(1, 1360, 20, 16), new Uint32Array([5050]), 1);
  const plain = await TunDevice.open({ name: "lltvg%d", mtu: 1500, offload: false, ...(inNamespace ? { address: "198.18.121.1/24" } : {}) });
  if (plain.offload) throw new Error("offload: false was not honoured");
  plain.write(superpacket(1, 1360, 20, 16));
  plain.write(superpacket(1, 0, 20, 16));
  plain.write(superpacket(0, 0, 20, 16));
  console.log("offload counters", JSON.stringify(plain.counters), tun.offload);
  await plain.close();
  console.log("tun counters", JSON.stringify(tun.counters), "seen", seen);
  await tun.close();
  await tun.close();
  // Opened and dropped without close: the finalizer closes it.
  for (let i = 0; i < 3; i++) await TunDevice.open({ name: "lltvg%d", up: false });
  globalThis.gc?.();
  try { await TunDevice.open({ name: "lo" }); } catch (e) { console.log(e.code); }
  // The addon refuses to load in a worker (coded error); the main thread keeps going.
  const worker = new Worker(`(async () => {
    const { parentPort } = await import("node:worker_threads");
    try {
      const { TunDevice } = await import(${JSON.stringify(new URL("../../dist/lib/index.js", import.meta.url).href)});
      await TunDevice.open({ name: "lltvg%d" });
      parentPort.postMessage("opened");
    } catch (e) { parentPort.postMessage(e.code); }
  })();`, { eval: true });
  const refusal = await new Promise((resolve, reject) => { worker.on("message", resolve); worker.on("error", reject); });
  if (refusal !== "ERR_LUNLINK_WORKER_UNSUPPORTED") throw new Error(`worker: ${refusal}`);
  await new Promise((resolve) => worker.on("exit", resolve));
  console.log("tun done");
}
{
  // aeadSeal/aeadOpen (addon/aead.cc): sizes from empty to 64 KiB, a forged tag, bad arguments, and
  // a worker that uses both and exits (its environment's contexts are freed at teardown).
  const { Worker } = await import("node:worker_threads");
  const { Sealer, Opener } = await import("../../dist/lib/link/seal.js");
  const { generateKeys, sharedSecret } = await import("../../dist/lib/link/keys.js");
  const { encodeMessage } = await import("../../dist/lib/link/message.js");
  const a = generateKeys();
  const b = generateKeys();
  const sealer = new Sealer(sharedSecret(a.privateKey, b.publicKey), 3n, 1, 2);
  const opener = new Opener(sharedSecret(b.privateKey, a.publicKey), 1, 2, 77n);
  let opened = 0;
  for (const size of [0, 1, 15, 16, 17, 1400, 9000, 65000]) {
    const sealed = sealer.seal(encodeMessage({ kind: 4, path: 0, node: 1, session: 3n, seq: 1n, ack: 0n }, Buffer.alloc(size, size & 0xff)));
    if (opener.open(sealed).ok) opened++;
    sealed[sealed.length - 1] ^= 1;
    if (opener.open(sealed).ok) throw new Error("forged datagram opened");
  }
  if (opened !== 8) throw new Error(`opened ${opened} of 8`);
  const { addon } = await import("../../dist/lib/io/native.js");
  for (const bad of [() => addon().aeadSeal(new Uint8Array(1), new Uint8Array(12), new Uint8Array(0), new Uint8Array(0), new Uint8Array(16)), () => addon().aeadOpen("x")]) {
    try { bad(); throw new Error("accepted"); } catch (e) { if (e.message === "accepted") throw e; }
  }
  const worker = new Worker(`(async () => {
    const { parentPort } = await import("node:worker_threads");
    try {
      const { createRequire } = await import("node:module");
      createRequire(${JSON.stringify(import.meta.url)})(${JSON.stringify(process.env.LUNLINK_ADDON || new URL("../../build/Release/lunlink.node", import.meta.url).pathname)});
      parentPort.postMessage("loaded");
    } catch (e) { parentPort.postMessage(e.code); }
  })();`, { eval: true });
  const code = await new Promise((resolve, reject) => { worker.on("message", resolve); worker.on("error", reject); });
  if (code !== "ERR_LUNLINK_WORKER_UNSUPPORTED") throw new Error(`raw addon in a worker: ${code}`);
  console.log("aead done");
}
{
  // aeadSealSegments/aeadOpenSegments (records, in place): 1 and 17 blocks, a forged tag, bad tables.
  const { RecordCipher } = await import("../../dist/lib/format/record-cipher.js");
  const { addonAead } = await import("../../dist/lib/io/aead.js");
  for (const blocks of [1, 17]) {
    const record = Buffer.alloc(blocks * 4096, 7);
    const cipher = new RecordCipher(addonAead, Buffer.alloc(32, 1), 2n);
    cipher.seal(record, 4096, blocks, 5);
    if (!cipher.open(Buffer.from(record), 4096, blocks, 5)) throw new Error("record did not open");
    record[200] ^= 1;
    if (cipher.open(record, 4096, blocks, 5)) throw new Error("forged record opened");
  }
  for (const bad of [() => addonAead.sealSegments(Buffer.alloc(32), Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(64), new Uint32Array([8, 100]), 1, Buffer.alloc(16)), () => addonAead.openSegments(Buffer.alloc(32), Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(64), new Uint32Array([8, 4]), 1, Buffer.alloc(16))]) {
    try { bad(); throw new Error("accepted"); } catch (e) { if (e.message === "accepted") throw e; }
  }
  console.log("segments done");
}
{
  // NativeUdp (addon/udp.cc) on loopback: batches with and without GSO runs, receive thread, close
  // with batches in flight, a socket garbage-collected without close.
  const { UdpPath, UDP_SEND_BATCH_BYTES } = await import("../../dist/lib/link/udp-path.js");
  const pair = { sources: "any", batchBytes: UDP_SEND_BATCH_BYTES };
  const port = 30_000 + (process.pid % 10_000) * 2;
  let got = 0;
  const b = UdpPath.open({ ...pair, bind: { host: "127.0.0.1", port: port + 2 }, peers: [{ host: "127.0.0.1", port }], onDatagram: () => got++, onBatchEnd: () => undefined, onError: (e) => { throw e; } });
  const a = UdpPath.open({ ...pair, bind: { host: "127.0.0.1", port }, peers: [{ host: "127.0.0.1", port: port + 2 }], onDatagram: () => undefined, onBatchEnd: () => undefined, onError: (e) => { throw e; } });
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 300; i++) {
      const size = i % 7 === 0 ? 100 + i : 1400;
      a.reserve(0, i % 50 === 0, size).fill(i & 0xff);
      a.commit(0, i % 50 === 0, size);
    }
    a.flush();
    await new Promise((r) => setTimeout(r, 5));
  }
  for (let i = 0; i < 200 && got < 6000; i++) await new Promise((r) => setTimeout(r, 10));
  console.log("udp received", got, "of 6000");
  // Held heartbeats (the control socket's receive thread, drain): drained with their arrival times,
  // then one left held when the socket closes.
  const { MessageKind, PathId } = await import("../../dist/lib/link/message.js");
  const heartbeat = (seq) => a.writeMessage(0, { kind: MessageKind.Heartbeat, path: PathId.Primary, node: 1, session: 1n, seq: BigInt(seq), ack: 0n }, undefined, undefined);
  const before = got;
  for (let seq = 1; seq <= 3; seq++) heartbeat(seq);
  a.flush();
  for (let i = 0; i < 200 && got < before + 3; i++) {
    b.drainHeld();
    await new Promise((r) => setTimeout(r, 10));
  }
  console.log("udp held heartbeats drained", got - before, "of 3");
  heartbeat(4);
  a.flush();
  await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 100; i++) { a.reserve(0, false, 1000).fill(1); a.commit(0, false, 1000); }
  a.flush();
  b.close();
  a.close();
  const { addon } = await import("../../dist/lib/io/native.js");
  new (addon().NativeUdp)().bind(0x7f000001, 0, 0);
  globalThis.gc?.();
  console.log("udp done");
}
