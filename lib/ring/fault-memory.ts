// Counting bad content on a ring once per piece of content, not once per look at it. The reader
// re-reads a slot it cannot accept on every poll and every status tick (~50 times a second), so a
// counter bumped per attempt turns one forged block into thousands; an alert threshold on such a
// counter means nothing. Each fault is identified by where it was read and what was there (offset,
// seq/epoch, a CRC32C of the bytes); the last FAULT_MEMORY identities per reason are remembered and
// only a new one counts. Pure: no I/O, no clock.
import { crc32c } from "../format/checksum.ts";

/** The reader counters a fault can bump (RingReaderCounters keys). */
export type FaultReason = "authFailures" | "downgrades" | "replays" | "tornSeen" | "damaged";

/** Where the bad content was read: a ring slot, a status slot, the superblock. */
export type FaultSource = "record" | "status" | "superblock";

/** One counted fault, as the reader reports it to its observer (logged, rate-limited, by the link layer's owner). */
export interface RingFault {
  reason: FaultReason;
  source: FaultSource;
  /** Byte offset on the receive volume of what was read. */
  offsetBytes: number;
  /** The expected (or claimed) sequence and the reader's epoch at the time. */
  seq: bigint;
  epoch: bigint;
  /** The decision table row (records), or what failed (status, superblock). */
  detail: string;
  /** The counter's value after this fault. */
  total: number;
}

/** What a RingReader reports besides its counters (RingReaderOptions.observer). */
export interface RingObserver {
  /** A fault counted for the first time (a new identity). */
  fault?(fault: RingFault): void;
  /** A record delivered: its header's wall-clock timestamp (writer's clock, ms). */
  delivered?(timestampMs: bigint): void;
}

/** Identities remembered per reason: more than the distinct bad things one poll cycle meets (slot, two status slots, superblock, a scan's candidates). */
export const FAULT_MEMORY = 16;

export class FaultMemory {
  private readonly seen = new Map<FaultReason, string[]>();

  /** The identity of what was read at `offsetBytes` while expecting (epoch, seq): its bytes (as a CRC32C) or a short description. */
  static identity(source: FaultSource, offsetBytes: number, epoch: bigint, seq: bigint, what: Uint8Array | string): string {
    return `${source}:${offsetBytes}:${epoch}:${seq}:${typeof what === "string" ? what : crc32c(what).toString(16)}`;
  }

  /** True (and remembered) if this identity was not counted for this reason among the last FAULT_MEMORY. */
  isNew(reason: FaultReason, identity: string): boolean {
    let list = this.seen.get(reason);
    if (list === undefined) this.seen.set(reason, (list = []));
    if (list.includes(identity)) return false;
    list.push(identity);
    if (list.length > FAULT_MEMORY) list.shift();
    return true;
  }

  /** Forgets the identities of a source (it read fine again: the same bad content coming back is new). */
  forget(source: FaultSource): void {
    const prefix = `${source}:`;
    for (const [reason, list] of this.seen) this.seen.set(reason, list.filter((id) => !id.startsWith(prefix)));
  }
}
