// The frames the two-process tests send: frame i carries i and a pattern derived from it, so a
// receiver checks each frame alone and the whole stream by one hash.
import { createHash } from "node:crypto";

export function payloadFor(i: number): Uint8Array {
  const length = 16 + ((i * 7919) % 3000);
  const b = new Uint8Array(length);
  new DataView(b.buffer).setUint32(0, i, true);
  for (let k = 4; k < length; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

/** SHA-256 over frames 0..frames-1 in order: what a receiver that got each exactly once computes. */
export function expectedHash(frames: number): string {
  const hash = createHash("sha256");
  for (let i = 0; i < frames; i++) hash.update(payloadFor(i));
  return hash.digest("hex");
}
