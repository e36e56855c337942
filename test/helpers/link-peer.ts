// One node of the link test, run inside its network namespace:
//   node --import=tsx test/helpers/link-peer.ts <config.json> <controlCount> <dataCount> <paceMs>
// Opens a Link from the node's config and, every paceMs, sends one numbered control message (until
// controlCount) and four numbered data messages (until dataCount). It records what it receives and,
// when stdin says "finish" (or closes), waits until every control message it sent is acked (at
// most 10 s) and for the primary to be active again (at most 10 s more), then prints one JSON line: received control numbers (in arrival order), data numbers
// (distinct count and duplicates), and the link's status.
import { loadConfig, linkOptions } from "../../lib/node/config.ts";
import { Link } from "../../lib/link/link.ts";
import { raiseScheduling } from "../../lib/node/scheduling.ts";

const [configPath, controlArg, dataArg, paceArg] = process.argv.slice(2);
const controlCount = Number(controlArg);
const dataCount = Number(dataArg);
const paceMs = Number(paceArg);
setTimeout(() => {
  console.error("link-peer: 60 s limit reached");
  process.exit(3);
}, 60_000).unref();

const config = await loadConfig(configPath!);
// A node as `lunlink up` runs it (lib/node/run.ts): real-time unless the config says otherwise.
await raiseScheduling(config.scheduling);
const link = await Link.open(linkOptions(config));
const control: number[] = [];
const data = new Map<number, number>();
link.on("control", (p) => control.push(new DataView(p.buffer, p.byteOffset).getUint32(0, true)));
link.on("data", (p) => {
  const id = new DataView(p.buffer, p.byteOffset).getUint32(0, true);
  data.set(id, (data.get(id) ?? 0) + 1);
});
let sentControl = 0;
let sentData = 0;
const message = (i: number, bytes: number) => {
  const b = new Uint8Array(bytes);
  new DataView(b.buffer).setUint32(0, i, true);
  return b;
};
const pace = setInterval(() => {
  if (sentControl < controlCount) void link.sendControl(message(sentControl++, 64));
  for (let k = 0; k < 4 && sentData < dataCount; k++) link.sendData(message(sentData++, 200));
}, paceMs);
console.log(JSON.stringify({ ready: true }));

let finishing = false;
const finish = async () => {
  if (finishing) return;
  finishing = true;
  clearInterval(pace);
  while (sentControl < controlCount) await link.sendControl(message(sentControl++, 64));
  const deadline = Date.now() + 10_000;
  while (link.status().controlPending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // Every test ends with the primary up: wait (bounded) for the failback rather than sampling the
  // state at a fixed time, which a loaded machine can miss (hold-down plus late heartbeats).
  while (link.status().active !== "primary" && Date.now() < deadline + 10_000) await new Promise((r) => setTimeout(r, 20));
  // Give the peer's last data a moment to arrive, then report.
  await new Promise((r) => setTimeout(r, 300));
  const duplicates = [...data.values()].filter((n) => n > 1).length;
  const status = link.status();
  console.log(JSON.stringify({ control, dataDistinct: data.size, dataDuplicatesDelivered: duplicates, sentData, status }));
  await link.close();
  process.exit(0);
};
process.stdin.on("data", (chunk) => {
  if (String(chunk).includes("finish")) void finish();
});
process.stdin.on("end", () => void finish());
