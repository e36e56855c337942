// Frames through a running mirror, in one process: a RingWriter on the send volume, a Poller on the
// copy whose reader acks back to the writer (overwriteUnacked false, so nothing may be lost), and
// every frame checked by content. Used by the local and the remote mirror tests alike.
import { FrameType, Poller, RingReader, RingWriter, type Volume } from "../../lib/index.ts";
import type { RingAuth } from "../../lib/ring/keys.ts";

/** Frame i: i, then bytes of i, 100..1264 bytes long. */
export function mirrorFrame(i: number): Uint8Array {
  const b = new Uint8Array(100 + (i % 13) * 97);
  new DataView(b.buffer).setUint32(0, i, true);
  b.fill(i & 0xff, 4);
  return b;
}

export interface StreamResult {
  /** Frame numbers in the order the reader on the copy delivered them. */
  seen: number[];
  reader: RingReader;
  writer: RingWriter;
}

/** Writes `total` frames to `send` while the mirror (already resynced) copies to `copy`; reads them all there. */
export async function streamThroughMirror(send: Volume, copy: Volume, total: number, auth?: RingAuth): Promise<StreamResult> {
  const keyed = auth === undefined ? {} : { auth };
  const reader = await RingReader.open(copy, { nodeId: 2, start: "head", ...keyed });
  const writer = await RingWriter.open(send, { nodeId: 1, maxDelayMs: 1, maxRecordBlocks: 4, overwriteUnacked: false, fullQueue: "wait", queueLimitBytes: 64 * 1024, peerAck: () => reader.ack, ...keyed });
  const poller = new Poller(reader, { pollMinUs: 50, pollMaxMs: 2, statusPollMs: 5 });
  poller.start();
  const seen: number[] = [];
  const consume = (async () => {
    for await (const f of poller.frames()) {
      const i = new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0, true);
      if (Buffer.compare(f.payload, mirrorFrame(i)) !== 0) throw new Error(`frame ${i} corrupted`);
      seen.push(i);
      if (seen.length === total) break;
    }
  })();
  for (let i = 0; i < total; i++) await writer.append(FrameType.Data, mirrorFrame(i));
  await writer.flush();
  await consume;
  await poller.stop();
  await writer.close();
  return { seen, reader, writer };
}
