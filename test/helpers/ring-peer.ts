// One side of the two-process ring test, run as its own process:
//   node --import=tsx test/helpers/ring-peer.ts appender <sendVolume> <ackVolume> <frames>
//   node --import=tsx test/helpers/ring-peer.ts tailer <receiveVolume> <ackSendVolume> <frames>
// The appender writes frames (node 1) and learns the tailer's ack from the tailer's status block on
// the second volume; the tailer (node 2) reads every frame and writes its ack into that status block.
// Each prints one JSON line with its counters when done.
import { createHash } from "node:crypto";

import { FrameType } from "../../lib/format/layout.ts";
import { Volume } from "../../lib/index.ts";
import { Poller } from "../../lib/poll/poller.ts";
import { RingReader } from "../../lib/ring/reader.ts";
import { RingWriter, type Ack } from "../../lib/ring/writer.ts";
import { payloadFor } from "./ring-payloads.ts";

const [mode, dataPath, ackPath, framesArg] = process.argv.slice(2);
const frames = Number(framesArg);
// Bounded in time, and gone with its parent: the test pipes stdin, which closes if the parent dies.
setTimeout(() => {
  console.error("ring-peer: 120 s limit reached");
  process.exit(3);
}, 120_000).unref();
process.stdin.on("end", () => process.exit(4));
process.stdin.on("error", () => process.exit(4));
process.stdin.resume();

if (mode === "appender") {
  const send = await Volume.open(dataPath!, { dsync: true, exclusive: true });
  const acks = await Volume.open(ackPath!, { readOnly: true });
  const ackReader = await RingReader.open(acks, { nodeId: 1 });
  let peerAck: Ack | undefined;
  // One status read at a time, and the last one awaited before the volume closes (a read still in
  // flight at close failed with ERR_LUNLINK_CLOSED and crashed the process after its report).
  let ackPolling: Promise<void> | undefined;
  const ackPoll = setInterval(() => {
    ackPolling ??= ackReader
      .readStatus()
      .then((s) => {
        if (s !== undefined && s.ackSeq > 0n) peerAck = { epoch: s.ackEpoch, seq: s.ackSeq };
      })
      .finally(() => (ackPolling = undefined));
  }, 2);
  const writer = await RingWriter.open(send, { nodeId: 1, maxRecordBlocks: 4, flushThresholdBytes: 8192, maxDelayMs: 1, overwriteUnacked: false, fullQueue: "wait", queueLimitBytes: 256 * 1024, peerAck: () => peerAck });
  for (let i = 0; i < frames; i++) await writer.append(FrameType.Data, payloadFor(i));
  await writer.flush();
  await writer.close();
  clearInterval(ackPoll);
  await ackPolling;
  console.log(JSON.stringify({ ...writer.counters, epoch: Number(writer.epoch) }));
  await send.close();
  await acks.close();
} else if (mode === "tailer") {
  const receive = await Volume.open(dataPath!, { readOnly: true });
  const ackSend = await Volume.open(ackPath!, { dsync: true, exclusive: true });
  let delivered: Ack | undefined;
  const ackWriter = await RingWriter.open(ackSend, { nodeId: 2, statusIntervalMs: 2, localAck: () => delivered });
  const reader = await RingReader.open(receive, { nodeId: 2, start: "head" });
  const poller = new Poller(reader, { pollMinUs: 50, pollMaxMs: 2, statusPollMs: 5 });
  const hash = createHash("sha256");
  let count = 0;
  let inOrder = true;
  let corrupt = 0;
  poller.start();
  console.log(JSON.stringify({ ready: true }));
  // Where the tailer stands, every 5 s on stderr: a test that times out waiting for the report shows
  // it (json-lines puts stderr in its error), so a stuck stream names its cause (lost, damaged, lag).
  const progress = setInterval(() => {
    const { lost, damaged, overruns } = reader.counters;
    console.error(JSON.stringify({ progress: count, seq: Number(reader.seq), lost: Number(lost), damaged, overruns, lag: Number(poller.lagRecords) }));
  }, 5000);
  progress.unref();
  for await (const frame of poller.frames()) {
    const i = new DataView(frame.payload.buffer, frame.payload.byteOffset).getUint32(0, true);
    if (i !== count) inOrder = false;
    if (Buffer.compare(frame.payload, payloadFor(i)) !== 0) corrupt++;
    hash.update(frame.payload);
    count++;
    delivered = { epoch: reader.epoch, seq: frame.seq };
    if (count === frames) break;
  }
  clearInterval(progress);
  await new Promise((r) => setTimeout(r, 50)); // let the last ack reach the status block
  await poller.stop();
  await ackWriter.close();
  console.log(JSON.stringify({ count, inOrder, corrupt, hash: hash.digest("hex"), lost: Number(reader.counters.lost), overruns: reader.counters.overruns, damaged: reader.counters.damaged }));
  await receive.close();
  await ackSend.close();
} else {
  console.error("usage: ring-peer.ts appender|tailer <volume> <volume> <frames>");
  process.exit(2);
}
process.exit(0); // stdin is still being watched for the parent's death

