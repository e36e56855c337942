// The check area shared by the superblock and the status block: 32 bytes after the fields. Its first
// 4 bytes always hold the CRC32C of every byte before it (the plaintext framing a keyless mirror can
// check). authMode none: the other 28 bytes are zero. Keyed: they hold HMAC-SHA256 under a MAC key
// derived from the ring key, over the same bytes, truncated to 28 bytes (224 bits). One place seals
// and one place verifies; the MAC is compared in constant time.
import { createHmac, timingSafeEqual } from "node:crypto";

import { crc32c } from "./checksum.ts";

export const CHECK_BYTES = 32;
/** Bytes of the truncated HMAC-SHA256 in a keyed check area (after the 4-byte CRC32C). */
export const CHECK_MAC_BYTES = 28;

export type SealProblem = { reason: "blank" | "magic" | "checksum" | "auth" | "downgrade"; detail: string };

/** The bytes a block's check covers, with whether a MAC is present (keyless readers cannot verify it). */
export interface Unsealed {
  /** The 28 MAC bytes are not all zero: the block claims to be keyed. */
  macPresent: boolean;
}

/** Writes the check over bytes [0, checkAt): CRC32C, then the MAC when a key is given (zeros otherwise). */
export function seal(out: Uint8Array, checkAt: number, macKey?: Uint8Array): void {
  out.fill(0, checkAt, checkAt + CHECK_BYTES);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(checkAt, crc32c(out, 0, checkAt), true);
  if (macKey !== undefined) out.set(mac(out, checkAt, macKey), checkAt + 4);
}

/**
 * Verifies magic and CRC32C, then, with a key, the MAC (absent MAC: "downgrade"; wrong: "auth").
 * "unverified" (keyless mirrors, inspection): a MAC is reported, not verified. Without either, the
 * block must be unkeyed: the 28 MAC bytes must be zero (authMode none).
 */
export function unseal(block: Uint8Array, magic: number, checkAt: number, macKey?: Uint8Array | "unverified"): SealProblem | Unsealed {
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
  let macPresent = false;
  for (let i = checkAt + 4; i < end; i++) if (block[i] !== 0) macPresent = true;
  if (macKey === "unverified") return { macPresent };
  if (macKey === undefined) {
    for (let i = checkAt + 4; i < end; i++) if (block[i] !== 0) return { reason: "checksum", detail: `check byte ${i} is not zero (authMode none)` };
    return { macPresent };
  }
  if (!macPresent) return { reason: "downgrade", detail: "no MAC (written without a ring key, authMode none), a keyed block expected" };
  if (!timingSafeEqual(mac(block, checkAt, macKey), block.subarray(checkAt + 4, end))) {
    return { reason: "auth", detail: "HMAC-SHA256 does not verify under the configured ring key" };
  }
  return { macPresent };
}

export function isSealProblem(r: SealProblem | Unsealed): r is SealProblem {
  return "reason" in r;
}

function mac(bytes: Uint8Array, checkAt: number, macKey: Uint8Array): Uint8Array {
  return createHmac("sha256", macKey).update(bytes.subarray(0, checkAt)).digest().subarray(0, CHECK_MAC_BYTES);
}
