// Exercises every addon entry point (for valgrind / ASan runs).
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
  const idle = w.watch(4096, w.alloc(4096), { compareBytes: 16, sleepUs: 100, timeoutMs: 5000 });
  await w.close();
  if (await idle) throw new Error("watch reported a change on close");
  console.log("watch done");
}
