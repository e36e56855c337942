// ChaCha20-Poly1305 (RFC 8439) through the addon (addon/aead.cc): the typed facade lib/link and
// lib/ring use, so only lib/io touches the raw addon. The one AEAD of the product: sealed UDP
// datagrams (aeadSeal/aeadOpen) and ring records (`addonAead`, the format layer's SegmentAead).
// Synchronous CPU work on the calling (main) thread, no I/O.
import type { SegmentAead } from "../format/aead.ts";
import { addon } from "./native.ts";

/** Seals `plaintext`: `out` (plaintext.length + 16 bytes) gets the ciphertext, then the tag. */
export function aeadSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
  addon().aeadSeal(key, nonce, aad, plaintext, out);
}

/** True and the plaintext in `out` if the tag verifies; false and `out` zeroed otherwise. */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean {
  return addon().aeadOpen(key, nonce, aad, ciphertext, tag, out);
}

/** The addon's AEAD as the format layer's SegmentAead (records: in place around the block stamps). */
export const addonAead: SegmentAead = {
  sealSegments: (key, nonce, aad, buffer, segments, count, tag) => addon().aeadSealSegments(key, nonce, aad, buffer, segments, count, tag),
  openSegments: (key, nonce, aad, buffer, segments, count, tag) => addon().aeadOpenSegments(key, nonce, aad, buffer, segments, count, tag),
};
