// The RingReader's decision table (docs/format.md, "Reader decision table"), as data. What the reader
// read at its expected slot is reduced to Facts; exactly one row of READER_TABLE matches any Facts
// (test/unit/ring-table.test.ts checks every combination), and the row names one verb per policy
// column, keyless or keyed. Pure: no I/O and no clock of its own (the shell passes `now`), so the
// table, the damage timer and every follow-up judgement are tested without a volume or a sleep.
import type { FirstBlockVerdict, BodyVerdict, RecordHeader, Stamp } from "../format/record.ts";
import { RecordFlag, RecordKind } from "../format/layout.ts";
import type { StatusBlock, StatusDecode } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { ErrorCode } from "../errors.ts";

/** How keyless and keyed readers differ, as data (the table's two columns and the rules around it). */
export interface ReaderPolicy {
  readonly column: "keyless" | "keyed";
  /** A record without the authenticated flag is a downgrade (row H1). */
  readonly requireAuthFlag: boolean;
  /** Authentic records at or below the high-water mark are refused (replays). */
  readonly antiReplay: boolean;
  /** Status slots count their MAC failures; a status older than one seen, or of an epoch before the superblock's, is ignored. */
  readonly verifiedStatus: boolean;
  /** A superblock that fails to verify while following is counted and waited out instead of thrown. */
  readonly countsSuperblockFailures: boolean;
  /** Skipping a damaged slot: to the next stamp that starts a record (keyless), or the next record that verifies (keyed). */
  readonly skipTo: "stamp" | "authentic";
  /** Restart after an ack: data older than the highest stamp (keyless) or the authenticated status head (keyed) is stale. */
  readonly staleBoundary: "stamps" | "status";
}

export const KEYLESS: ReaderPolicy = { column: "keyless", requireAuthFlag: false, antiReplay: false, verifiedStatus: false, countsSuperblockFailures: false, skipTo: "stamp", staleBoundary: "stamps" };
export const KEYED: ReaderPolicy = { column: "keyed", requireAuthFlag: true, antiReplay: true, verifiedStatus: true, countsSuperblockFailures: true, skipTo: "authentic", staleBoundary: "status" };

export type SlotKind = FirstBlockVerdict["kind"];
export type BodyKind = "unread" | BodyVerdict["kind"];

/** What was read at the expected slot, and what the reader knows, reduced to the table's columns. */
export interface Facts {
  slot: SlotKind;
  /** The expected seq lies below the current epoch's epochStartSeq (the previous writer's range). */
  below: boolean;
  /** The last status read (this epoch) says the writer is past the record after the expected one. */
  writerPast: boolean;
  /** Header: the policy requires the authenticated flag, and it is clear. */
  unflagged: boolean;
  /** Header: its epoch is higher than the reader's. */
  epochHigher: boolean;
  /** Header: an older epoch, yet a seq at or above epochStartSeq (cannot be legitimate). */
  epochStale: boolean;
  /** Header: the record would run past the ring end. */
  pastEnd: boolean;
  /** Header: no key for its epoch (keyed only: the reader never saw that epoch's superblock). */
  keyUnknown: boolean;
  body: BodyKind;
  /** Authentic and at or below the anti-replay high-water mark (keyed only). */
  replayed: boolean;
  pad: boolean;
}

export type Verb =
  | "wait" // nothing new: poll again (damage timer reset)
  | "read-body" // the first block passed: read the record's other blocks, then decide again
  | "end-epoch" // below epochStartSeq and absent: after damageTimeoutMs, continue at epochStartSeq (gap lost)
  | "suspect" // torn or invalid: wait; past damageTimeoutMs, skip it if the writer is past it (damaged)
  | "suspect/torn" // as suspect, counted in tornSeen
  | "suspect/auth" // as suspect, counted in authFailures
  | "suspect/downgrade" // as suspect, counted in downgrades
  | "overrun" // lapped: resume at the oldest intact record after ours, else the newer record (its stamp) or the status head; lost counted
  | "verify-overrun" // keyed: an overrun only if the newer record verifies or the status says so (then as overrun, the oldest record verified too); else suspect/torn
  | "wrong-pair" // ERR_LUNLINK_WRONG_PAIR
  | "adopt-epoch" // read the superblock; adopt its epoch (wait while the mirrored copy lags)
  | "adopt-epoch/suspect" // keyed: as adopt-epoch, and while not adopted, suspect
  | "skip-epoch/torn" // keyed: an epoch whose key the reader never had: continue at epochStartSeq (lost), tornSeen
  | "refuse" // keyed: authentic but replayed: replays counted, skipped
  | "pad" // end of lap: continue at ring block 0
  | "deliver" // visit the frames, advance (frames that do not parse: damaged, skipped)
  | "never"; // the policy never produces these facts: an assertion

type Bit = 0 | 1 | "_";
type Match<T extends string> = T | readonly T[] | "_";

export interface Row {
  readonly label: string;
  readonly slot: Match<SlotKind>;
  readonly below: Bit;
  readonly writerPast: Bit;
  readonly unflagged: Bit;
  readonly epochHigher: Bit;
  readonly epochStale: Bit;
  readonly pastEnd: Bit;
  readonly keyUnknown: Bit;
  readonly body: Match<BodyKind>;
  readonly replayed: Bit;
  readonly pad: Bit;
  readonly keyless: Verb;
  readonly keyed: Verb;
}

const _ = "_";
const NOTHING = ["empty", "older"] as const;
const CHECKED = ["valid", "newer", "auth", "downgrade", "torn"] as const;

function row(label: string, slot: Match<SlotKind>, bits: readonly [Bit, Bit, Bit, Bit, Bit, Bit, Bit], body: Match<BodyKind>, last: readonly [Bit, Bit], keyless: Verb, keyed: Verb): Row {
  const [below, writerPast, unflagged, epochHigher, epochStale, pastEnd, keyUnknown] = bits;
  const [replayed, pad] = last;
  return { label, slot, below, writerPast, unflagged, epochHigher, epochStale, pastEnd, keyUnknown, body, replayed, pad, keyless, keyed };
}

/**
 * The table. Legend: below = seq < epochStartSeq; past = status head > seq + 1; unfl = unflagged;
 * up = epoch higher; stale = older epoch, seq >= epochStartSeq; end = past the ring end; key? = key
 * unknown; repl = replayed. Rows are mutually exclusive; their order is the order of the checks.
 */
// prettier-ignore
export const READER_TABLE: readonly Row[] = [
  //  label  slot       below past unfl up stale end key?   body      repl pad    keyless              keyed
  row("E1", NOTHING,   [1,    _,   _,   _, _,    _,  _],  _,        [_,  _],  "end-epoch",         "end-epoch"),
  row("E2", NOTHING,   [0,    1,   _,   _, _,    _,  _],  _,        [_,  _],  "suspect",           "suspect"),
  row("E3", NOTHING,   [0,    0,   _,   _, _,    _,  _],  _,        [_,  _],  "wait",              "wait"),
  row("N1", "newer",   [_,    _,   _,   _, _,    _,  _],  _,        [_,  _],  "overrun",           "verify-overrun"),
  row("F1", "foreign", [_,    _,   _,   _, _,    _,  _],  _,        [_,  _],  "wrong-pair",        "suspect/auth"),
  row("T1", "torn",    [_,    _,   _,   _, _,    _,  _],  _,        [_,  _],  "suspect/torn",      "suspect/torn"),
  row("H1", "header",  [_,    _,   1,   _, _,    _,  _],  _,        [_,  _],  "never",             "suspect/downgrade"),
  row("H2", "header",  [_,    _,   0,   1, _,    _,  _],  _,        [_,  _],  "adopt-epoch",       "adopt-epoch/suspect"),
  row("H3", "header",  [_,    _,   0,   0, 1,    _,  _],  _,        [_,  _],  "suspect",           "suspect"),
  row("H4", "header",  [_,    _,   0,   0, 0,    1,  _],  _,        [_,  _],  "suspect",           "suspect"),
  row("K1", "header",  [1,    _,   0,   0, 0,    0,  1],  _,        [_,  _],  "never",             "skip-epoch/torn"),
  row("K2", "header",  [0,    _,   0,   0, 0,    0,  1],  _,        [_,  _],  "never",             "suspect/torn"),
  row("R1", "header",  [_,    _,   0,   0, 0,    0,  0],  "unread", [_,  _],  "read-body",         "read-body"),
  row("B1", "header",  [_,    _,   0,   0, 0,    0,  0],  "newer",  [_,  _],  "overrun",           "suspect/torn"),
  row("B2", "header",  [_,    _,   0,   0, 0,    0,  0],  "auth",   [_,  _],  "suspect/auth",      "suspect/auth"),
  row("B3", "header",  [_,    _,   0,   0, 0,    0,  0],  "downgrade", [_, _], "suspect/downgrade", "suspect/downgrade"),
  row("B4", "header",  [_,    _,   0,   0, 0,    0,  0],  "torn",   [_,  _],  "suspect/torn",      "suspect/torn"),
  row("V1", "header",  [_,    _,   0,   0, 0,    0,  0],  "valid",  [1,  _],  "never",             "refuse"),
  row("V2", "header",  [_,    _,   0,   0, 0,    0,  0],  "valid",  [0,  1],  "pad",               "pad"),
  row("V3", "header",  [_,    _,   0,   0, 0,    0,  0],  "valid",  [0,  0],  "deliver",           "deliver"),
];

/** The verbs of a record that passed every check (what "authentic at this position" means). */
export const ACCEPTING: ReadonlySet<Verb> = new Set<Verb>(["refuse", "pad", "deliver"]);

/** Table lookups per poll: one on the first block, one more once the record's body is read (row R1). */
export const MAX_DECISIONS_PER_POLL = 2;

/** The counter a verb bumps when its row matches (whatever the damage timer then says); the shell counts each bad record once (fault-memory.ts). */
export const VERB_COUNTS: Partial<Record<Verb, "tornSeen" | "authFailures" | "downgrades">> = {
  "suspect/torn": "tornSeen",
  "suspect/auth": "authFailures",
  "suspect/downgrade": "downgrades",
  "skip-epoch/torn": "tornSeen",
};

function bitMatches(bit: Bit, value: boolean): boolean {
  return bit === "_" || (bit === 1) === value;
}

function enumMatches<T extends string>(match: Match<T>, value: T): boolean {
  if (match === "_") return true;
  return typeof match === "string" ? match === value : match.includes(value);
}

export function rowMatches(r: Row, f: Facts): boolean {
  return (
    enumMatches(r.slot, f.slot) &&
    bitMatches(r.below, f.below) &&
    bitMatches(r.writerPast, f.writerPast) &&
    bitMatches(r.unflagged, f.unflagged) &&
    bitMatches(r.epochHigher, f.epochHigher) &&
    bitMatches(r.epochStale, f.epochStale) &&
    bitMatches(r.pastEnd, f.pastEnd) &&
    bitMatches(r.keyUnknown, f.keyUnknown) &&
    enumMatches(r.body, f.body) &&
    bitMatches(r.replayed, f.replayed) &&
    bitMatches(r.pad, f.pad)
  );
}

/** The one row that matches (an assertion if none or several do: the table is exhaustive and exclusive); memoized per combination of facts. */
export function tableRow(f: Facts): Row {
  let key = SLOT_KINDS.indexOf(f.slot) * BODY_KINDS.length + BODY_KINDS.indexOf(f.body);
  for (const bit of FACT_BITS) key = 2 * key + (f[bit] ? 1 : 0);
  return (ROW_BY_FACTS[key] ??= findRow(f));
}

const SLOT_KINDS: readonly SlotKind[] = ["empty", "older", "newer", "foreign", "torn", "header"];
const BODY_KINDS: readonly BodyKind[] = ["unread", "valid", "newer", "auth", "downgrade", "torn"];
const FACT_BITS = ["below", "writerPast", "unflagged", "epochHigher", "epochStale", "pastEnd", "keyUnknown", "replayed", "pad"] as const;
/** The row of each combination of facts seen (at most 6 x 6 x 2^9 entries). */
const ROW_BY_FACTS: (Row | undefined)[] = [];

function findRow(f: Facts): Row {
  let found: Row | undefined;
  for (const r of READER_TABLE) {
    if (!rowMatches(r, f)) continue;
    if (found !== undefined) throw new Error(`assertion failed: rows ${found.label} and ${r.label} both match ${JSON.stringify(f)}`);
    found = r;
  }
  if (found === undefined) throw new Error(`assertion failed: no row matches ${JSON.stringify(f)}`);
  return found;
}

/** Where the reader stands and what it knows: the core's input besides the facts. */
export interface ReaderState {
  epoch: bigint;
  seq: bigint;
  block: number;
  ringBlocks: number;
  /** The current (verified) superblock's epoch start. */
  epochStartSeq: bigint;
  epochStartBlock: number;
  /** When the expected slot was first seen invalid (undefined: it was not). */
  invalidSinceMs: number | undefined;
  damageTimeoutMs: number;
  /** Keyed anti-replay high-water mark (notBefore, then the last delivered). */
  highWater: { epoch: bigint; seq: bigint };
}

/** Reduces what was read at the expected slot to the table's facts. `keyKnown`: whether a body check exists for the header's epoch. */
export function slotFacts(policy: ReaderPolicy, s: ReaderState, status: StatusBlock | undefined, first: FirstBlockVerdict, body: BodyVerdict | undefined, keyKnown: (epoch: bigint) => boolean): Facts {
  const header: RecordHeader | undefined = first.kind === "header" ? first.header : undefined;
  return {
    slot: first.kind,
    below: s.seq < s.epochStartSeq,
    writerPast: status !== undefined && status.epoch === s.epoch && status.headSeq > s.seq + 1n,
    unflagged: header !== undefined && policy.requireAuthFlag && (header.flags & RecordFlag.Authenticated) === 0,
    epochHigher: header !== undefined && header.epoch > s.epoch,
    epochStale: header !== undefined && header.epoch < s.epoch && header.seq >= s.epochStartSeq,
    pastEnd: header !== undefined && s.block + header.blockCount > s.ringBlocks,
    keyUnknown: header !== undefined && !keyKnown(header.epoch),
    body: body?.kind ?? "unread",
    replayed: header !== undefined && policy.antiReplay && (header.seq <= s.highWater.seq || header.epoch < s.highWater.epoch),
    pad: header?.kind === RecordKind.Pad,
  };
}

export type Position = { seq: bigint; block: number };
export type Jump = Position & { lost: bigint };

export type Action =
  | { do: "wait"; row: string; invalidSinceMs: number | undefined }
  | { do: "judge-damage"; row: string }
  | { do: "jump"; row: string; to: Jump; outcome: "epoch" }
  | { do: Exclude<Verb, "wait" | "suspect" | "suspect/torn" | "suspect/auth" | "suspect/downgrade" | "end-epoch" | "skip-epoch/torn">; row: string };

/** The damage timer: wait while the slot has been invalid for less than damageTimeoutMs, else act. */
export function damageTimer(s: ReaderState, nowMs: number): { expired: boolean; invalidSinceMs: number } {
  const since = s.invalidSinceMs ?? nowMs;
  return { expired: nowMs - since >= s.damageTimeoutMs, invalidSinceMs: since };
}

/** The jump to the current epoch's start, the gap counted lost. */
export function epochStart(s: ReaderState): Jump {
  return { seq: s.epochStartSeq, block: s.epochStartBlock, lost: s.epochStartSeq > s.seq ? s.epochStartSeq - s.seq : 0n };
}

/** The table row and the policy's verb for it, with the damage timer resolved against `nowMs`. */
export function decide(policy: ReaderPolicy, facts: Facts, s: ReaderState, nowMs: number): Action & { count?: "tornSeen" | "authFailures" | "downgrades" } {
  const r = tableRow(facts);
  const verb = r[policy.column];
  const count = VERB_COUNTS[verb];
  const counted = count === undefined ? {} : { count };
  switch (verb) {
    case "wait":
      return { do: "wait", row: r.label, invalidSinceMs: undefined };
    case "suspect":
    case "suspect/torn":
    case "suspect/auth":
    case "suspect/downgrade":
      return { ...suspect(r.label, s, nowMs), ...counted };
    case "end-epoch": {
      const timer = damageTimer(s, nowMs);
      if (!timer.expired) return { do: "wait", row: r.label, invalidSinceMs: timer.invalidSinceMs };
      return { do: "jump", row: r.label, to: epochStart(s), outcome: "epoch" };
    }
    case "skip-epoch/torn":
      return { do: "jump", row: r.label, to: epochStart(s), outcome: "epoch", ...counted };
    default:
      return { do: verb, row: r.label };
  }
}

/** A suspect slot: wait until damageTimeoutMs has passed, then judge it (with the writer's status). */
export function suspect(label: string, s: ReaderState, nowMs: number): Action {
  const timer = damageTimer(s, nowMs);
  return timer.expired ? { do: "judge-damage", row: label } : { do: "wait", row: label, invalidSinceMs: timer.invalidSinceMs };
}

/** Just past a record that passed its checks (refused, pad or delivered): a pad ends the lap (ring block 0). */
export function past(s: ReaderState, header: RecordHeader): Position {
  if (header.kind === RecordKind.Pad) return { seq: s.seq + 1n, block: 0 };
  const block = s.block + header.blockCount;
  return { seq: s.seq + 1n, block: block >= s.ringBlocks ? 0 : block };
}

/** Past the timeout, a slot is damaged only if the writer (same epoch) is past the record after it; then the search stops below the head. */
export function judgeDamage(s: ReaderState, status: StatusBlock | undefined): { headSeq: bigint; headBlock: number } | undefined {
  if (status === undefined || status.epoch !== s.epoch || status.headSeq <= s.seq + 1n) return undefined;
  return { headSeq: status.headSeq, headBlock: Number(status.headBlock) };
}

/** Whether a stamp found while skipping a damaged slot may be where to continue (keyed: then it must verify). */
export function skipCandidate(policy: ReaderPolicy, s: ReaderState, headSeq: bigint, stamp: Stamp): boolean {
  if (stamp.blockIndex !== 0 || stamp.seq <= s.seq) return false;
  return policy.skipTo === "stamp" || stamp.seq < headSeq;
}

/** After a damaged slot: the record found, else the status head; what lay between is lost. */
export function skipDamaged(s: ReaderState, found: Position | undefined, head: { headSeq: bigint; headBlock: number }): Jump {
  const to = found ?? { seq: head.headSeq, block: head.headBlock };
  return { ...to, lost: to.seq - s.seq - 1n };
}

/**
 * Keyless overrun: the oldest intact record after ours (`oldest`, scan.ts findOldestAfter: the writer
 * has not overwritten it yet, and holds it if it carries control until our ack passes it), else the
 * newer record's own start (its stamp), else the status head (same epoch), else the newer seq here.
 * Only the records below where we resume were overwritten: they are what is lost.
 */
export function resyncAfterOverrun(s: ReaderState, newerSeq: bigint, stamp: Stamp | undefined, status: StatusBlock | undefined, oldest: Position | undefined): Jump {
  const resumed = resumeAtOldest(s, newerSeq, oldest);
  if (resumed !== undefined) return resumed;
  if (stamp !== undefined && stamp.seq === newerSeq && stamp.blockIndex <= s.block) return { seq: newerSeq, block: s.block - stamp.blockIndex, lost: newerSeq - s.seq };
  if (status !== undefined && status.epoch === s.epoch) return { seq: status.headSeq, block: Number(status.headBlock), lost: status.headSeq > s.seq ? status.headSeq - s.seq : 0n };
  return { seq: newerSeq, block: s.block, lost: newerSeq - s.seq };
}

/** An overrun's resume point when the oldest intact record after ours lies at or before the newer one (else undefined: resume as before). */
export function resumeAtOldest(s: ReaderState, newerSeq: bigint, oldest: Position | undefined): Jump | undefined {
  if (oldest === undefined || oldest.seq <= s.seq || oldest.seq > newerSeq) return undefined;
  return { ...oldest, lost: oldest.seq - s.seq };
}

/** Keyed overrun, first evidence: where the newer record starts, to be verified there. */
export function overrunClaim(s: ReaderState, newerSeq: bigint, stamp: Stamp | undefined): Position | undefined {
  return stamp !== undefined && stamp.seq === newerSeq && stamp.blockIndex <= s.block ? { seq: newerSeq, block: s.block - stamp.blockIndex } : undefined;
}

/** Keyed overrun, second evidence: the authenticated status says the oldest intact record is past ours. */
export function statusOverrun(s: ReaderState, status: StatusBlock | undefined): Jump | undefined {
  if (status === undefined || status.epoch !== s.epoch || status.oldestSeq <= s.seq || status.headSeq <= s.seq) return undefined;
  return { seq: status.headSeq, block: Number(status.headBlock), lost: status.headSeq - s.seq };
}

/** A newer epoch was claimed (a header or the status): what the current superblock says to do. */
export type EpochDecision = { do: "wait"; replayed: boolean } | { do: "wrong-pair"; volumeUuid: string } | { do: "adopt"; superblock: Superblock; jump: Position | undefined };

export function adoptEpoch(policy: ReaderPolicy, s: ReaderState, volumeUuid: string, superblock: Superblock | undefined, claimedEpoch: bigint): EpochDecision {
  if (superblock === undefined) return { do: "wait", replayed: false };
  if (superblock.volumeUuid !== volumeUuid) return { do: "wrong-pair", volumeUuid: superblock.volumeUuid };
  // An older superblock restored onto the volume (keyed: counted), or a mirrored copy that lags the records.
  if (superblock.epoch < claimedEpoch) return { do: "wait", replayed: policy.antiReplay && superblock.epoch < s.epoch };
  // Our next seq belongs to the new epoch, which starts at epochStartBlock (not necessarily where we
  // waited: a writer that reopened continues after the last stamp it found). Else keep the position:
  // the older epoch's records below epochStartSeq are still read in order.
  const jump = s.seq >= superblock.epochStartSeq ? { seq: superblock.epochStartSeq, block: Number(superblock.epochStartBlock) } : undefined;
  return { do: "adopt", superblock, jump };
}

/**
 * Where a reader opened with `start` begins: at a position, or at a seq found by its stamp (seek);
 * after a restart (afterAck) data below `dropDataBelow` predates it: the status head may lag, the
 * stamps do not ("stamps": the highest stamp + 1), but keyed, stamps are not authenticated, so the
 * authenticated status head decides.
 */
export function startPlan(
  policy: ReaderPolicy,
  start: "head" | "oldest" | { seq: bigint } | { afterAck: bigint },
  superblock: Pick<Superblock, "epoch" | "epochStartSeq">,
  status: StatusBlock | undefined,
): { at?: Position; seek?: bigint; dropDataBelow?: bigint | "stamps" } {
  if (start === "head") return status !== undefined && status.epoch === superblock.epoch ? { at: { seq: status.headSeq, block: Number(status.headBlock) } } : {};
  if (start === "oldest") return status === undefined ? {} : { seek: status.oldestSeq };
  if ("seq" in start) return { seek: start.seq };
  return { seek: start.afterAck + 1n, dropDataBelow: policy.staleBoundary === "stamps" ? "stamps" : (status?.headSeq ?? superblock.epochStartSeq) };
}

/** Where a seek lands: the record of `seq` (its stamp); if absent, the oldest later one (the gap lost); if none, `seq` here. */
export function seekTo(seq: bigint, found: Position | undefined, block: number): Jump {
  return found === undefined ? { seq, block, lost: 0n } : { ...found, lost: found.seq - seq };
}

/** Keyed, while following: which counter a superblock that does not open counts (undefined: the error is thrown). */
export function superblockFailure(policy: ReaderPolicy, code: string): "downgrades" | "authFailures" | undefined {
  if (!policy.countsSuperblockFailures) return undefined;
  if (code === ErrorCode.Downgrade) return "downgrades";
  return code === ErrorCode.WrongKey || code === ErrorCode.NotFormatted || code === ErrorCode.SuperblockConflict ? "authFailures" : undefined;
}

/** Which status a read of both slots yields. `check-superblock`: it names another volume; only the superblock may say foreign. */
export type StatusDecision =
  | { do: "use"; status: StatusBlock | undefined; remember: boolean; authFailures: number; downgrades: number; replays: number }
  | { do: "check-superblock"; authFailures: number; downgrades: number };

export function acceptStatus(policy: ReaderPolicy, s: ReaderState, volumeUuid: string, last: StatusBlock | undefined, slots: readonly [StatusDecode, StatusDecode], picked: StatusBlock | undefined): StatusDecision {
  const failures = (reason: "auth" | "downgrade"): number => (policy.verifiedStatus ? slots.filter((slot) => !slot.ok && slot.reason === reason).length : 0);
  const authFailures = failures("auth");
  const downgrades = failures("downgrade");
  const keep = { do: "use" as const, status: last, remember: false, authFailures, downgrades, replays: 0 };
  if (picked === undefined) return keep;
  if (policy.verifiedStatus) {
    // An authentic status older than one already seen was restored onto the volume: ignored.
    if (last !== undefined && picked.volumeUuid === last.volumeUuid && (picked.epoch < last.epoch || (picked.epoch === last.epoch && picked.generation < last.generation))) {
      return { ...keep, replays: 1 };
    }
    // Of an epoch before the verified superblock's (a lagging mirror, a restore): no decision is taken from it.
    if (picked.epoch < s.epoch) return { ...keep, status: last?.epoch === s.epoch ? last : undefined };
  }
  if (picked.volumeUuid !== volumeUuid) return { do: "check-superblock", authFailures, downgrades };
  return { do: "use", status: picked, remember: true, authFailures, downgrades, replays: 0 };
}

/** A value the table guarantees in the row at hand (an assertion: a programmer error if missing). */
export function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("assertion failed: a value the decision table guarantees is missing");
  return value;
}
