// One node of the link test, run inside its network namespace:
//   node --import=tsx test/helpers/link-peer.ts <config.json> <controlCount> <dataCount> <paceMs>
// Opens a Link from the node's config and, every paceMs, sends one numbered control message (until
// controlCount) and four numbered data messages (until dataCount). It records what it receives and,
// at the end (see stop/finish below), prints one JSON line: received control numbers (in arrival order), data numbers
// (distinct count, duplicates and the distinct numbers themselves), when each data message was sent
// (performance.now(), the clock of the link's transitions), the link's timers and its status.
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
const options = linkOptions(config);
const link = await Link.open(options);
const control: number[] = [];
const data = new Map<number, number>();
link.on("control", (p) => control.push(new DataView(p.buffer, p.byteOffset).getUint32(0, true)));
link.on("data", (p) => {
  const id = new DataView(p.buffer, p.byteOffset).getUint32(0, true);
  data.set(id, (data.get(id) ?? 0) + 1);
});
let sentControl = 0;
let sentData = 0;
const sentAtMs: number[] = [];
const message = (i: number, bytes: number) => {
  const b = new Uint8Array(bytes);
  new DataView(b.buffer).setUint32(0, i, true);
  return b;
};
// Ready (and sending) once both paths are up and the primary active, so a test's fault falls on a
// running link (a peer that starts slowly under load would otherwise leave this one isolated,
// sending into nothing). Bounded: after 30 s it starts anyway and the test's assertions speak.
{
  const deadline = Date.now() + 30_000;
  const up = () => {
    const s = link.status();
    return s.active === "primary" && s.paths.storage.state === "up";
  };
  while (!up() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}
const pace = setInterval(() => {
  if (sentControl < controlCount) void link.sendControl(message(sentControl++, 64));
  for (let k = 0; k < 4 && sentData < dataCount; k++) {
    sentAtMs.push(performance.now());
    link.sendData(message(sentData++, 200));
  }
}, paceMs);
console.log(JSON.stringify({ ready: true }));

// Two phases, so that neither peer reports while the other still has data in flight to it:
// "stop" ends sending and waits (bounded) until control is acked, the primary is active again and
// the peer has read every ring record written so far, then prints {"stopped":true}; "finish" (or
// the end of stdin) reports and exits. The test sends "finish" only after every peer has stopped.
const waitFor = async (done: () => boolean, limitMs: number) => {
  const deadline = Date.now() + limitMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
};
let stopping: Promise<void> | undefined;
const stop = () =>
  (stopping ??= (async () => {
    clearInterval(pace);
    while (sentControl < controlCount) await link.sendControl(message(sentControl++, 64));
    await waitFor(() => link.status().controlPending === 0, 10_000);
    // Every test ends with the primary up: wait (bounded) for the failback rather than sampling the
    // state at a fixed time, which a loaded machine can miss (hold-down plus late heartbeats).
    await waitFor(() => link.status().active === "primary", 10_000);
    await waitFor(() => link.status().ring.writerQueuedBytes === 0, 10_000);
    const head = BigInt(link.status().ring.headSeq);
    // (A storage path that is down drains nothing: the stalled-mirror test ends that way.)
    await waitFor(() => {
      const s = link.status();
      return s.paths.storage.state === "down" || (s.ring.peerAckSeq !== null && BigInt(s.ring.peerAckSeq) + 1n >= head);
    }, 10_000);
    console.log(JSON.stringify({ stopped: true }));
  })());
let finishing = false;
const finish = async () => {
  if (finishing) return;
  finishing = true;
  await stop();
  const duplicates = [...data.values()].filter((n) => n > 1).length;
  const status = link.status();
  const dataReceived = [...data.keys()].sort((x, y) => x - y);
  console.log(JSON.stringify({ control, dataDistinct: data.size, dataDuplicatesDelivered: duplicates, dataReceived, sentData, sentAtMs, timers: options.timers, status }));
  await link.close();
  process.exit(0);
};
process.stdin.on("data", (chunk) => {
  if (String(chunk).includes("stop")) void stop();
  if (String(chunk).includes("finish")) void finish();
});
process.stdin.on("end", () => void finish());
