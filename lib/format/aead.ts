// The AEAD the format layer seals records with, as an interface: lib/format does no I/O and imports
// nothing above it, so the implementation (ChaCha20-Poly1305 from the addon, lib/io/aead.ts) is
// injected by the layer that composes ring and keys (lib/ring/keys.ts). One implementation serves
// records and UDP datagrams. Contract: RFC 8439 ChaCha20-Poly1305, 32-byte key, 12-byte nonce,
// 16-byte tag; the plaintext is the concatenation of `count` [start, end) ranges of `buffer`
// (segments[2i], segments[2i+1]: ordered, non-overlapping), encrypted or decrypted in place.
export interface SegmentAead {
  /** Encrypts the ranges in place and writes the tag (16 bytes, outside every range). */
  sealSegments(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, buffer: Uint8Array, segments: Uint32Array, count: number, tag: Uint8Array): void;
  /** Verifies `tag` and decrypts in place: true if authentic; false and every range zeroed otherwise. */
  openSegments(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, buffer: Uint8Array, segments: Uint32Array, count: number, tag: Uint8Array): boolean;
}
