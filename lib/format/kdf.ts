// Key derivation shared by every layer that seals or MACs bytes (ring records, status and
// superblocks, UDP datagrams): HKDF-SHA256 from node:crypto, with a label naming the key's use so
// no two uses ever share a key. Pure: no I/O, no state.
import { hkdfSync } from "node:crypto";

export const KEY_BYTES = 32;

/** A 32-byte working key: HKDF-SHA256(secret, salt, "lunlink v1 " + label). */
export function deriveKey(secret: Uint8Array, salt: Uint8Array, label: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, salt, `lunlink v1 ${label}`, KEY_BYTES));
}
