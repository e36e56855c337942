// The check area shared by the superblock and the status block: 32 bytes after the fields. With
// authMode none it holds the CRC32C of every byte before it, then 28 zero bytes; with keys it will
// hold a MAC (security issue). One place seals and one place verifies, so keyed mode changes only here.
import { crc32c } from "./checksum.ts";

export const CHECK_BYTES = 32;

export type SealProblem = { reason: "blank" | "magic" | "checksum"; detail: string };

/** Writes the check over bytes [0, checkAt) and zeroes the rest of the check area. */
export function seal(out: Uint8Array, checkAt: number): void {
  out.fill(0, checkAt, checkAt + CHECK_BYTES);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(checkAt, crc32c(out, 0, checkAt), true);
}

/** Verifies magic and check; undefined when the block is intact. */
export function unseal(block: Uint8Array, magic: number, checkAt: number): SealProblem | undefined {
  const end = checkAt + CHECK_BYTES;
  const v = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const found = v.getUint32(0, true);
  if (found !== magic) {
    return block.subarray(0, end).every((b) => b === 0)
      ? { reason: "blank", detail: "all zero" }
      : { reason: "magic", detail: `magic 0x${found.toString(16)}, expected 0x${magic.toString(16)}` };
  }
  const stored = v.getUint32(checkAt, true);
  const computed = crc32c(block, 0, checkAt);
  if (stored !== computed) return { reason: "checksum", detail: `CRC32C 0x${stored.toString(16)}, computed 0x${computed.toString(16)}` };
  for (let i = checkAt + 4; i < end; i++) {
    if (block[i] !== 0) return { reason: "checksum", detail: `check byte ${i} is not zero (authMode none)` };
  }
  return undefined;
}
