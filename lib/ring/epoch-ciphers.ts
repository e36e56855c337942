// Keyed reader: the record ciphers of the epochs whose verified superblock it saw, at most
// MAX_EPOCH_KEYS (the current one and those whose records may still be read; the oldest goes first).
// A record of an epoch not held here cannot be verified (decision table rows K1, K2).
import type { RecordCipher } from "../format/record-cipher.ts";
import type { BodyAuth } from "../format/record.ts";
import type { Superblock } from "../format/superblock.ts";
import type { RingKeys } from "./keys.ts";

export const MAX_EPOCH_KEYS = 4;

export class EpochCiphers {
  private readonly keys: RingKeys;
  private readonly ciphers = new Map<bigint, RecordCipher>();

  constructor(keys: RingKeys) {
    this.keys = keys;
  }

  /** Derives the record key of a verified superblock's epoch (no-op if held). */
  add(superblock: Superblock): void {
    if (this.ciphers.has(superblock.epoch)) return;
    this.ciphers.set(superblock.epoch, this.keys.recordCipher(superblock));
    while (this.ciphers.size > MAX_EPOCH_KEYS) this.ciphers.delete([...this.ciphers.keys()].reduce((a, b) => (b < a ? b : a)));
  }

  has(epoch: bigint): boolean {
    return this.ciphers.has(epoch);
  }

  /** How checkBody verifies a record of `epoch` at `ringBlock`; undefined if that epoch's key is not held. */
  bodyAuth(epoch: bigint, ringBlock: number): Exclude<BodyAuth, "framing"> | undefined {
    const cipher = this.ciphers.get(epoch);
    return cipher === undefined ? undefined : { cipher, ringBlock };
  }
}
