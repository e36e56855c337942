// Counting bad content on a ring once per piece of content, not once per look at it. The reader
// re-reads a slot it cannot accept on every poll and every status tick (~50 times a second), so a
// counter bumped per attempt turns one forged block into thousands; an alert threshold on such a
// counter means nothing. Each fault is identified by where it was read and what was there (offset,
// seq/epoch, a CRC32C of the bytes); the last FAULT_MEMORY identities per reason are remembered and
// only a new one counts. Pure: no I/O, no clock.
import { crc32c } from "../format/checksum.ts";
import { RECORD_HEADER_END, STATUS_SLOT_BLOCKS } from "../format/layout.ts";
import type { StatusBlock, StatusDecode } from "../format/status.ts";

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

  /** Counts `fault` into `counters` if its identity is new; returns it with the counter's new total to report, or undefined (counted before). */
  count(counters: Record<FaultReason, number>, fault: Omit<RingFault, "total">, what: Uint8Array | string): RingFault | undefined {
    if (!this.isNew(fault.reason, FaultMemory.identity(fault.source, fault.offsetBytes, fault.epoch, fault.seq, what))) return undefined;
    return { ...fault, total: ++counters[fault.reason] };
  }

  /** Forgets the identities of a source (it read fine again: the same bad content coming back is new). */
  forget(source: FaultSource): void {
    const prefix = `${source}:`;
    for (const [reason, list] of this.seen) this.seen.set(reason, list.filter((id) => !id.startsWith(prefix)));
  }
}

/** Accepted records that still count as faults: authentic but replayed (refused), or frames that do not parse (damaged). */
export function acceptFault(outcome: "refused" | "damaged", epoch: bigint): { reason: FaultReason; detail: string } {
  if (outcome === "refused") return { reason: "replays", detail: `authentic record at or below the replay floor (epoch ${epoch})` };
  return { reason: "damaged", detail: "checksums passed but the frames do not parse" };
}

/**
 * The bytes a bad record is known by: its header without the header's own CRC32C (bytes [0, 92):
 * stamp, seq, lengths, timestamp and tag, never touched by a failed open; a CRC32C over bytes that
 * end with their own CRC32C is the same constant for every valid header) when it has one, else the
 * whole first block. Not the payload: a failed open zeroes what it decrypted in place, so
 * payload-only variations of one forged header count once.
 */
export function recordIdentity(block: Uint8Array, hasHeader: boolean, blockBytes: number): Uint8Array {
  return block.subarray(0, hasHeader ? RECORD_HEADER_END - 4 : blockBytes);
}

/** A fault of a status read: what to count, where it was read, what identifies it. */
export interface StatusFault {
  reason: "authFailures" | "downgrades" | "replays";
  offsetBytes: number;
  what: Uint8Array | string;
  detail: string;
}

/**
 * The faults of one read of both status slots, as the status decision (decide.ts acceptStatus)
 * counted them: a slot that failed its MAC (auth) or lacks one where one belongs (downgrade), known
 * by its bytes (an empty or torn slot is normal, not a fault); an authentic status older than one
 * already seen (replay), known by its (epoch, generation).
 */
export function statusFaults(counted: { authFailures: number; downgrades: number; replays?: number }, read: { slots: readonly StatusDecode[]; bytes: Uint8Array; status: StatusBlock | undefined }, blockBytes: number): StatusFault[] {
  const faults: StatusFault[] = [];
  if (counted.authFailures + counted.downgrades > 0) {
    read.slots.forEach((slot, i) => {
      if (slot.ok || (slot.reason !== "auth" && slot.reason !== "downgrade")) return;
      const reason = slot.reason === "auth" ? "authFailures" : "downgrades";
      faults.push({ reason, offsetBytes: STATUS_SLOT_BLOCKS[i]! * blockBytes, what: read.bytes.subarray(i * blockBytes, (i + 1) * blockBytes), detail: `status slot ${i}: ${slot.reason}` });
    });
  }
  const status = read.status;
  if ((counted.replays ?? 0) > 0 && status !== undefined) {
    faults.push({ reason: "replays", offsetBytes: STATUS_SLOT_BLOCKS[status.slot]! * blockBytes, what: `${status.epoch}/${status.generation}`, detail: `older status restored (epoch ${status.epoch}, generation ${status.generation})` });
  }
  return faults;
}
