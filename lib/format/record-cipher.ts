// Record AEAD (authMode keyed): ChaCha20-Poly1305 from node:crypto, one record = one AEAD message.
// Key: the writer epoch's record key (ring/keys.ts). Nonce (12 bytes): epoch low 32 bits LE, then
// seq u64 LE; seqs never repeat within an epoch and every epoch has its own key, so a (key, nonce)
// pair is never used twice. Associated data (84 bytes): record bytes [0, 72) (stamp 0 and the header
// up to bodyCheck), bytes [88, 92) (reserved), then the record's ring block as u64 LE (not stored: a
// record copied to another slot fails). Plaintext: the payload stream, i.e. bytes [96, B) of block 0
// and [16, B) of every later block (later stamps stay plaintext for mirrors and are checked against
// the authenticated header). The 16-byte tag goes to bodyCheck (72). Encrypted and decrypted in place.
import { createCipheriv, createDecipheriv } from "node:crypto";

import { RECORD_HEADER_END, STAMP_BYTES } from "./layout.ts";

export const RECORD_TAG_BYTES = 16;
const TAG_AT = 72;
const RESERVED_AT = 88;
const AAD_BYTES = TAG_AT + 4 + 8;

export class RecordCipher {
  readonly epoch: bigint;
  private readonly key: Buffer;
  private readonly nonce = Buffer.alloc(12);
  private readonly aad = Buffer.alloc(AAD_BYTES);

  constructor(key: Uint8Array, epoch: bigint) {
    if (key.length !== 32) throw new Error("assertion failed: a record key is 32 bytes");
    this.key = Buffer.from(key);
    this.epoch = epoch;
  }

  /** Encrypts the payload of a record whose header (flags, seq, lengths) is written; writes the tag. */
  seal(record: Uint8Array, blockBytes: number, blockCount: number, ringBlock: number): void {
    this.prepare(record, ringBlock);
    const cipher = createCipheriv("chacha20-poly1305", this.key, this.nonce, { authTagLength: RECORD_TAG_BYTES });
    cipher.setAAD(this.aad, { plaintextLength: blockCount * blockBytes - RECORD_HEADER_END - (blockCount - 1) * STAMP_BYTES });
    for (let i = 0; i < blockCount; i++) {
      const start = i === 0 ? RECORD_HEADER_END : i * blockBytes + STAMP_BYTES;
      record.set(cipher.update(record.subarray(start, (i + 1) * blockBytes)), start);
    }
    cipher.final();
    record.set(cipher.getAuthTag(), TAG_AT);
  }

  /**
   * Verifies the tag and decrypts in place. False: not authentic (forged, replayed to another slot or
   * epoch, sealed under another key, or corrupted); the payload bytes are then garbage.
   */
  open(record: Uint8Array, blockBytes: number, blockCount: number, ringBlock: number): boolean {
    this.prepare(record, ringBlock);
    const decipher = createDecipheriv("chacha20-poly1305", this.key, this.nonce, { authTagLength: RECORD_TAG_BYTES });
    decipher.setAAD(this.aad, { plaintextLength: blockCount * blockBytes - RECORD_HEADER_END - (blockCount - 1) * STAMP_BYTES });
    decipher.setAuthTag(record.subarray(TAG_AT, TAG_AT + RECORD_TAG_BYTES));
    for (let i = 0; i < blockCount; i++) {
      const start = i === 0 ? RECORD_HEADER_END : i * blockBytes + STAMP_BYTES;
      record.set(decipher.update(record.subarray(start, (i + 1) * blockBytes)), start);
    }
    try {
      decipher.final();
      return true;
    } catch {
      return false;
    }
  }

  private prepare(record: Uint8Array, ringBlock: number): void {
    const v = new DataView(record.buffer, record.byteOffset, RECORD_HEADER_END);
    this.nonce.writeUInt32LE(Number(this.epoch & 0xffffffffn), 0);
    this.nonce.writeBigUInt64LE(v.getBigUint64(48, true), 4);
    this.aad.set(record.subarray(0, TAG_AT), 0);
    this.aad.set(record.subarray(RESERVED_AT, RESERVED_AT + 4), TAG_AT);
    this.aad.writeBigUInt64LE(BigInt(ringBlock), TAG_AT + 4);
  }
}
