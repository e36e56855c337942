// Ring key schedule (authMode keyed). The link hands each direction's ring a 32-byte key; everything
// on the volume is keyed by subkeys derived from it with HKDF-SHA256 (lib/link/keys.ts deriveKey, label
// prefix "lunlink v1 "): superblock MAC ("ring superblock", empty salt), status MAC ("ring status",
// empty salt), key id ("ring key id", first 4 bytes, stored in the superblock to name the key in
// errors), and per writer epoch the record key ("record epoch <n>", salt = the superblock's 32-byte
// salt, fresh random per epoch). No subkey is used for two purposes. A cluster ring (read by every
// member) is keyed by clusterRingKey: one key per writer from the cluster secret all members hold
// (group authentication: docs/format.md, Keyed clusters).
import { deriveKey } from "../format/kdf.ts";
import { uuidBytes } from "../format/uuid.ts";
import { RecordCipher } from "../format/record-cipher.ts";
import { addonAead } from "../io/aead.ts";
import type { Superblock } from "../format/superblock.ts";
import { invalidArgument } from "../errors.ts";

/** What formatVolume, RingWriter.open and RingReader.open take to work in keyed mode. */
export interface RingAuth {
  /** 32 bytes, one per direction (the link: deriveKey(sharedSecret, pairUuidBytes, "ring <writer>-><peer>")). */
  key: Uint8Array;
}

/**
 * A writer starts a new epoch (new salt, new record key) before this many records in one epoch.
 * Nonces are (epoch, seq) with seq unique per epoch, so they cannot repeat before seq wraps at 2^64;
 * 2^48 records per key keeps the AEAD's per-key usage far below its bounds.
 */
export const REKEY_AFTER_RECORDS = 2n ** 48n;
/** Sequences are u64 on disk; a writer refuses to go past this (no volume reaches it: 2^63 records). */
export const MAX_SEQ = 2n ** 63n;

const EMPTY = new Uint8Array(0);

export class RingKeys {
  readonly superblockMac: Buffer;
  readonly statusMac: Buffer;
  /** Names the key (not secret: a one-way function of it); stored in the superblock's keyId. */
  readonly keyId: number;
  private readonly ringKey: Buffer;

  constructor(auth: RingAuth) {
    if (!(auth.key instanceof Uint8Array) || auth.key.length !== 32) {
      throw invalidArgument("auth.key", "a 32-byte Uint8Array (the ring key of this direction)", auth.key);
    }
    this.ringKey = Buffer.from(auth.key);
    this.superblockMac = deriveKey(this.ringKey, EMPTY, "ring superblock");
    this.statusMac = deriveKey(this.ringKey, EMPTY, "ring status");
    this.keyId = deriveKey(this.ringKey, EMPTY, "ring key id").readUInt32LE(0);
  }

  /** The AEAD of records written in the epoch this (verified) superblock starts. */
  recordCipher(superblock: Pick<Superblock, "salt" | "epoch">): RecordCipher {
    return new RecordCipher(addonAead, deriveKey(this.ringKey, superblock.salt, `record epoch ${superblock.epoch}`), superblock.epoch);
  }
}

/**
 * The ring key of writer `writerNode`'s ring in a cluster: HKDF over the cluster secret (32 bytes,
 * `lunlink keys cluster-secret`), salted with the cluster UUID, label "ring <writer>->cluster". Every
 * member derives every writer's key, so any member can verify (and could forge) any ring; no outsider can.
 */
export function clusterRingKey(clusterSecret: Uint8Array, clusterUuid: string, writerNode: number): Buffer {
  if (!(clusterSecret instanceof Uint8Array) || clusterSecret.length !== 32) throw invalidArgument("clusterSecret", "32 bytes (lunlink keys cluster-secret)", `${clusterSecret instanceof Uint8Array ? clusterSecret.length : typeof clusterSecret} bytes`);
  return deriveKey(clusterSecret, uuidBytes(clusterUuid), `ring ${writerNode}->cluster`);
}

export function keyIdText(keyId: number): string {
  return `0x${keyId.toString(16).padStart(8, "0")}`;
}
