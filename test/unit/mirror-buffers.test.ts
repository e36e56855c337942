// Memory a parked request owns is never reused (issue 11). A destination whose write passes its
// deadline keeps the request parked in the kernel, which reads the buffer only when the device
// answers (minutes later, maybe): the fake volume here models exactly that (the bytes are taken from
// the buffer at release, not at submit). The remote server must give the next session a buffer of
// its own, and apply nothing of it before the parked write has landed.
import test from "ava";
import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";

import { ErrorCode, LunlinkError } from "../../lib/errors.ts";
import type { Volume } from "../../lib/io/volume.ts";
import { healthOf } from "../../lib/mirror/health.ts";
import { MessageDecoder, encodeMessage, type Message } from "../../lib/mirror/protocol.ts";
import { RemoteMirrorServer } from "../../lib/mirror/remote-server.ts";

const B = 4096;
const VOLUME_BLOCKS = 64;

/** A destination whose next write parks: rejected with IO_STALLED now, its bytes read from the buffer at release(). */
class ParkingVolume extends EventEmitter<{ recover: []; stall: [number] }> {
  readonly path = "fake:parking";
  readonly store = new Uint8Array(VOLUME_BLOCKS * B);
  readonly geometry = { kind: "file", sizeBytes: BigInt(VOLUME_BLOCKS * B), logicalBlockSize: 512, physicalBlockSize: 4096, memoryAlignment: 512, device: "0:0", memoryBacked: false };
  parkNextWrite = false;
  private parked: { offsetBytes: number; buffer: Uint8Array }[] = [];

  get stalled(): boolean {
    return this.parked.length > 0;
  }

  get inFlight(): number {
    return this.parked.length;
  }

  alloc(bytes: number): Uint8Array {
    return new Uint8Array(bytes);
  }

  async read(offsetBytes: number, buffer: Uint8Array): Promise<Uint8Array> {
    buffer.set(this.store.subarray(offsetBytes, offsetBytes + buffer.length));
    return buffer;
  }

  async write(offsetBytes: number, buffer: Uint8Array): Promise<void> {
    if (this.parkNextWrite) {
      this.parkNextWrite = false;
      this.parked.push({ offsetBytes, buffer }); // the kernel holds the buffer, not a copy
      this.emit("stall", this.parked.length);
      throw new LunlinkError(ErrorCode.IoStalled, `write ${this.path}: no answer from the device within 1 ms`, { path: this.path });
    }
    this.store.set(buffer, offsetBytes);
  }

  async flush(): Promise<void> {}

  /** The device answers: each parked write lands with whatever its buffer holds now. */
  release(): void {
    for (const { offsetBytes, buffer } of this.parked.splice(0)) this.store.set(buffer, offsetBytes);
    this.emit("recover");
  }
}

/** A raw protocol client: sends messages, collects what the server answers. */
async function client(port: number): Promise<{ socket: Socket; send(m: Message): void; until(type: Message["type"]): Promise<Message> }> {
  const socket = connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const decoder = new MessageDecoder();
  const got: Message[] = [];
  const waiters: (() => void)[] = [];
  socket.on("data", (chunk: Buffer) => {
    decoder.push(chunk);
    for (let m = decoder.next(); m !== undefined; m = decoder.next()) got.push(m);
    for (const w of waiters.splice(0)) w();
  });
  socket.on("close", () => {
    for (const w of waiters.splice(0)) w();
  });
  return {
    socket,
    send: (m) => socket.write(encodeMessage(m)),
    until: async (type) => {
      for (;;) {
        const m = got.find((x) => x.type === type);
        if (m !== undefined) return m;
        if (socket.destroyed || socket.readableEnded) throw new Error(`connection closed before a ${type} (got ${got.map((x) => x.type).join(", ")})`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

const hello: Message = { type: "hello", volumeUuid: "00000000-0000-4000-8000-000000000001", pairUuid: "00000000-0000-4000-8000-000000000002", blockBytes: B, writerNode: 1, volumeBlocks: VOLUME_BLOCKS };

test("a write parked past its deadline lands its own bytes, not the next session's (per-session buffers, retired on stall)", async (t) => {
  const destination = new ParkingVolume();
  const server = await RemoteMirrorServer.listen(destination as unknown as Volume, { host: "127.0.0.1", port: 0, force: true, closeTimeoutMs: 1000 });
  t.teardown(() => server.close());
  const states: string[] = [];
  server.on("state", (change) => states.push(`${change.health}${change.fault === null ? "" : `:${change.fault}`}`));

  // Session 1 writes 0xAA at block 10; the device stalls under it: the request parks, the session ends.
  destination.parkNextWrite = true;
  const first = await client(server.address.port);
  first.send(hello);
  first.send({ type: "write", seq: 1, offsetBytes: 10 * B, data: new Uint8Array(B).fill(0xaa) });
  const refused = (await first.until("error")) as Extract<Message, { type: "error" }>;
  t.is(refused.code, ErrorCode.IoStalled);

  // Session 2 (the pusher reconnecting) writes 0xBB at block 20. The device answers once the server
  // either applied it (the old, shared buffer: it now holds 0xBB) or holds it back until recovery.
  const second = await client(server.address.port);
  second.send(hello);
  second.send({ type: "write", seq: 1, offsetBytes: 20 * B, data: new Uint8Array(B).fill(0xbb) });
  const acked = second.until("ack");
  const heldBack = new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (healthOf(server.supervisor.state) === "faulted") {
        clearInterval(check);
        resolve();
      }
    }, 5);
    void acked.finally(() => clearInterval(check)).then(() => resolve(), () => resolve());
  });
  await heldBack;
  destination.release();
  t.like(await acked, { type: "ack", seq: 1 });
  second.socket.end();

  t.deepEqual([...new Set(destination.store.subarray(10 * B, 11 * B))], [0xaa], "block 10 holds session 1's bytes");
  t.deepEqual([...new Set(destination.store.subarray(20 * B, 21 * B))], [0xbb], "block 20 holds session 2's bytes");
  t.is(server.counters.buffersRetired, 1);
  t.deepEqual(states, ["faulted:stall", "healthy"], "one line per change of state");
  t.is(server.supervisor.counters.recoveries, 1);
});
