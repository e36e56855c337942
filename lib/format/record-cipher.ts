// Record AEAD (authMode keyed): ChaCha20-Poly1305, one record = one AEAD message, through the injected
// SegmentAead (aead.ts; the addon's, the same one that seals UDP datagrams).
// Key: the writer epoch's record key (ring/keys.ts). Nonce (12 bytes): epoch low 32 bits LE, then
// seq u64 LE; seqs never repeat within an epoch and every epoch has its own key, so a (key, nonce)
// pair is never used twice. Associated data (84 bytes): record bytes [0, 72) (stamp 0 and the header
// up to bodyCheck), bytes [88, 92) (reserved), then the record's ring block as u64 LE (not stored: a
// record copied to another slot fails). Plaintext: the payload stream, i.e. bytes [96, B) of block 0
// and [16, B) of every later block (later stamps stay plaintext for mirrors and are checked against
// the authenticated header). The 16-byte tag goes to bodyCheck (72). Encrypted and decrypted in place,
// in one call per record (the segment table is preallocated: no allocation per record).
import type { SegmentAead } from "./aead.ts";
import { MAX_RECORD_BLOCKS, RECORD_HEADER_END, STAMP_BYTES } from "./layout.ts";

export const RECORD_TAG_BYTES = 16;
const TAG_AT = 72;
const RESERVED_AT = 88;
const AAD_BYTES = TAG_AT + 4 + 8;

export class RecordCipher {
  readonly epoch: bigint;
  private readonly aead: SegmentAead;
  private readonly key: Uint8Array;
  private readonly nonce = new Uint8Array(12);
  private readonly nonceView = new DataView(this.nonce.buffer);
  private readonly aad = new Uint8Array(AAD_BYTES);
  private readonly aadView = new DataView(this.aad.buffer);
  /** [start, end) of each block's payload; grown to the largest record seen (at most MAX_RECORD_BLOCKS). */
  private segments = new Uint32Array(2 * 32);
  private segmentsFor = { blockBytes: 0, blockCount: 0 };

  constructor(aead: SegmentAead, key: Uint8Array, epoch: bigint) {
    if (key.length !== 32) throw new Error("assertion failed: a record key is 32 bytes");
    this.aead = aead;
    this.key = Uint8Array.from(key);
    this.epoch = epoch;
  }

  /** Encrypts the payload of a record whose header (flags, seq, lengths) is written; writes the tag. */
  seal(record: Uint8Array, blockBytes: number, blockCount: number, ringBlock: number): void {
    this.prepare(record, ringBlock);
    this.aead.sealSegments(this.key, this.nonce, this.aad, record, this.layout(blockBytes, blockCount), blockCount, record.subarray(TAG_AT, TAG_AT + RECORD_TAG_BYTES));
  }

  /**
   * Verifies the tag and decrypts in place. False: not authentic (forged, replayed to another slot or
   * epoch, sealed under another key, or corrupted); the payload bytes are then zero.
   */
  open(record: Uint8Array, blockBytes: number, blockCount: number, ringBlock: number): boolean {
    this.prepare(record, ringBlock);
    return this.aead.openSegments(this.key, this.nonce, this.aad, record, this.layout(blockBytes, blockCount), blockCount, record.subarray(TAG_AT, TAG_AT + RECORD_TAG_BYTES));
  }

  private layout(blockBytes: number, blockCount: number): Uint32Array {
    if (blockCount < 1 || blockCount > MAX_RECORD_BLOCKS) throw new Error(`assertion failed: a record has 1..${MAX_RECORD_BLOCKS} blocks, not ${blockCount}`);
    const f = this.segmentsFor;
    if (f.blockBytes === blockBytes && f.blockCount >= blockCount) return this.segments;
    if (this.segments.length < 2 * blockCount) this.segments = new Uint32Array(2 * blockCount);
    for (let i = 0; i < blockCount; i++) {
      this.segments[2 * i] = i === 0 ? RECORD_HEADER_END : i * blockBytes + STAMP_BYTES;
      this.segments[2 * i + 1] = (i + 1) * blockBytes;
    }
    this.segmentsFor = { blockBytes, blockCount };
    return this.segments;
  }

  private prepare(record: Uint8Array, ringBlock: number): void {
    const v = new DataView(record.buffer, record.byteOffset, RECORD_HEADER_END);
    this.nonceView.setUint32(0, Number(this.epoch & 0xffffffffn), true);
    this.nonceView.setBigUint64(4, v.getBigUint64(48, true), true);
    this.aad.set(record.subarray(0, TAG_AT), 0);
    this.aad.set(record.subarray(RESERVED_AT, RESERVED_AT + 4), TAG_AT);
    this.aadView.setBigUint64(TAG_AT + 4, BigInt(ringBlock), true);
  }
}
