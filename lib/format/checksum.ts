// Checksums of the format. Header, superblock and status block: CRC32C (@node-rs/crc32, SSE4.2/ARMv8
// instructions, 7.7 GB/s and 78 ns for an 88-byte header here). Record body: XXH3-128 (hash-wasm,
// 9.5 GB/s at 1 MiB, against 2.7 GB/s for @node-rs/xxhash's xxh128). Figures: `npm run bench -- codec`.
// Both are computed over views of preallocated buffers; nothing here allocates per call except
// hash-wasm's 16-byte digest, once per record.
import { crc32c as nativeCrc32c } from "@node-rs/crc32";
import { createXXHash128, type IHasher } from "hash-wasm";

/** CRC32C (Castagnoli) of `bytes[start, end)`. */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  const view = start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end);
  // The package's signature says Buffer; any Uint8Array is accepted by its N-API side.
  return nativeCrc32c(view as Buffer) >>> 0;
}

/** CRC32C of the bytes that gave `previous` followed by `bytes` (crc32cFrom(crc32c(a), b) = CRC32C of a then b). */
export function crc32cFrom(previous: number, bytes: Uint8Array): number {
  return nativeCrc32c(bytes as Buffer, previous) >>> 0;
}

// The WebAssembly hasher, instantiated once when this module loads (top-level await): every importer
// can checksum at once, and no entry point has to remember to load it first.
const hasher: IHasher = await createXXHash128();

/** XXH3-128 of `bytes[start, end)`, written as 16 bytes (little-endian halves) at `out[at]`. */
export function bodyCheck(bytes: Uint8Array, start: number, end: number, out: Uint8Array, at: number): void {
  hasher.init();
  hasher.update(bytes.subarray(start, end));
  out.set(hasher.digest("binary"), at);
}

/** True when the 16 bytes at `a[at]` equal the XXH3-128 of `bytes[start, end)`. */
export function bodyCheckMatches(bytes: Uint8Array, start: number, end: number, a: Uint8Array, at: number): boolean {
  hasher.init();
  hasher.update(bytes.subarray(start, end));
  const digest = hasher.digest("binary");
  for (let i = 0; i < 16; i++) if (digest[i] !== a[at + i]) return false;
  return true;
}
