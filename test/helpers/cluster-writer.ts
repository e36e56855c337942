// One node's writer on a cluster volume, run as its own process (the same-id ownership test):
//   node --import=tsx test/helpers/cluster-writer.ts <clusterVolume> <nodeId> <liveCheckMs>
// Opens the node's region and writes a data frame every 5 ms until its stdin closes or 60 s pass.
// Prints one JSON line per event: {"event":"open","epoch"} | {"event":"refused","code","message"} |
// {"event":"stopped","code","message"} (the writer failed while running) | {"event":"closed"}.
import { FrameType } from "../../lib/format/layout.ts";
import { LunlinkError, Volume } from "../../lib/index.ts";
import { openCluster, openRegion } from "../../lib/ring/cluster.ts";
import { RingWriter } from "../../lib/ring/writer.ts";

const [path, nodeArg, liveArg] = process.argv.slice(2);
const node = Number(nodeArg);
const say = (line: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(line)}\n`);
const coded = (error: unknown) => (error instanceof LunlinkError ? { code: error.code, message: error.message } : { code: "?", message: String(error) });
setTimeout(() => process.exit(3), 60_000).unref();

// Not exclusive: two nodes share the cluster LUN (exclusion between hosts is the cluster's job).
const volume = await Volume.open(path!, { dsync: true });
const header = await openCluster(volume);
const { view } = await openRegion(volume, header, node);
let writer: RingWriter;
try {
  writer = await RingWriter.open(view.asVolume(), { nodeId: node, liveCheckMs: Number(liveArg), statusIntervalMs: 20, ownerCheckMs: 50, maxDelayMs: 0 });
} catch (error) {
  say({ event: "refused", ...coded(error) });
  await volume.close();
  process.exit(0);
}
say({ event: "open", epoch: String(writer.epoch) });
const run = writer.run().then(
  () => undefined,
  (error: unknown) => say({ event: "stopped", ...coded(error) }),
);
const payload = new Uint8Array(64);
const tick = setInterval(() => {
  if (writer.error === undefined) writer.tryAppend(FrameType.Data, payload);
}, 5);
const finish = async (): Promise<void> => {
  clearInterval(tick);
  if (writer.error === undefined) await writer.close();
  await run;
  await volume.close();
  say({ event: "closed" });
  process.exit(0);
};
process.stdin.on("end", () => void finish());
process.stdin.resume();
