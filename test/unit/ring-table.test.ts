// The reader's decision table (lib/ring/decide.ts) on its own: every combination of facts matches
// exactly one row, every row is reachable, a model (the checks as an if-cascade in the order
// docs/format.md lists them) agrees with the table on every combination under both policies, and the
// boundaries of the timer, replay, damage, overrun and epoch rules hold (fake clock, no volume).
import test from "ava";

import { RecordKind } from "../../lib/format/layout.ts";
import type { FirstBlockVerdict, RecordHeader } from "../../lib/format/record.ts";
import type { StatusBlock, StatusDecode } from "../../lib/format/status.ts";
import * as core from "../../lib/ring/decide.ts";
import { ErrorCode } from "../../lib/index.ts";
import { statusFixture, superblockFixture } from "../helpers/blocks.ts";

const SLOTS: readonly core.SlotKind[] = ["empty", "older", "newer", "foreign", "torn", "header"];
const BODIES: readonly core.BodyKind[] = ["unread", "valid", "newer", "auth", "downgrade", "torn"];
const BITS = ["below", "writerPast", "unflagged", "epochHigher", "epochStale", "pastEnd", "keyUnknown", "replayed", "pad"] as const;

function* everyFacts(): Generator<core.Facts> {
  for (const slot of SLOTS) {
    for (const body of BODIES) {
      for (let mask = 0; mask < 1 << BITS.length; mask++) {
        const facts = { slot, body } as core.Facts;
        BITS.forEach((bit, i) => (facts[bit] = (mask & (1 << i)) !== 0));
        yield facts;
      }
    }
  }
}

/** The model: the checks one by one, in the order docs/format.md gives them (not the table). */
function model(f: core.Facts, keyed: boolean): core.Verb {
  switch (f.slot) {
    case "empty":
    case "older":
      if (f.below) return "end-epoch";
      return f.writerPast ? "suspect" : "wait";
    case "newer":
      return keyed ? "verify-overrun" : "overrun";
    case "foreign":
      return keyed ? "suspect/auth" : "wrong-pair";
    case "torn":
      return "suspect/torn";
    case "header":
      break;
  }
  if (f.unflagged) return keyed ? "suspect/downgrade" : "never";
  if (f.epochHigher) return keyed ? "adopt-epoch/suspect" : "adopt-epoch";
  if (f.epochStale || f.pastEnd) return "suspect";
  if (f.keyUnknown) return !keyed ? "never" : f.below ? "skip-epoch/torn" : "suspect/torn";
  switch (f.body) {
    case "unread":
      return "read-body";
    case "newer":
      return keyed ? "suspect/torn" : "overrun";
    case "auth":
      return "suspect/auth";
    case "downgrade":
      return "suspect/downgrade";
    case "torn":
      return "suspect/torn";
    case "valid":
      break;
  }
  if (f.replayed) return keyed ? "refuse" : "never";
  return f.pad ? "pad" : "deliver";
}

test("every combination of facts matches exactly one row, and every row is reachable", (t) => {
  const hits = new Map<string, number>();
  let combinations = 0;
  for (const facts of everyFacts()) {
    const matching = core.READER_TABLE.filter((row) => core.rowMatches(row, facts));
    if (matching.length !== 1) t.fail(`${matching.length} rows match ${JSON.stringify(facts)}`);
    const label = matching[0]!.label;
    hits.set(label, (hits.get(label) ?? 0) + 1);
    combinations++;
  }
  t.is(combinations, SLOTS.length * BODIES.length * 2 ** BITS.length);
  t.deepEqual([...hits.keys()].sort(), core.READER_TABLE.map((row) => row.label).sort(), "no row is dead");
  t.is(new Set(core.READER_TABLE.map((row) => row.label)).size, core.READER_TABLE.length, "labels are unique");
});

test("the table agrees with the model on every combination, keyless and keyed", (t) => {
  let compared = 0;
  for (const facts of everyFacts()) {
    const row = core.tableRow(facts);
    for (const policy of [core.KEYLESS, core.KEYED]) {
      const expected = model(facts, policy === core.KEYED);
      if (row[policy.column] !== expected) t.fail(`${policy.column} ${JSON.stringify(facts)}: row ${row.label} says ${row[policy.column]}, the model ${expected}`);
      compared++;
    }
  }
  t.is(compared, 2 * SLOTS.length * BODIES.length * 2 ** BITS.length);
});

test("docs/format.md lists the same rows with the same verbs, row for row", async (t) => {
  const { readFile } = await import("node:fs/promises");
  const doc = await readFile(new URL("../../docs/format.md", import.meta.url), "utf8");
  const docRows = new Map<string, { keyless: string; keyed: string }>();
  for (const line of doc.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    const label = /^\*\*([A-Z][0-9])\*\*$/.exec(cells[1] ?? "")?.[1];
    if (label !== undefined) docRows.set(label, { keyless: cells.at(-3)!.replaceAll("`", ""), keyed: cells.at(-2)!.replaceAll("`", "") });
  }
  t.deepEqual([...docRows.keys()], core.READER_TABLE.map((row) => row.label));
  for (const row of core.READER_TABLE) t.deepEqual(docRows.get(row.label), { keyless: row.keyless, keyed: row.keyed }, row.label);
});

const EPOCH = 5n;
function state(overrides: Partial<core.ReaderState> = {}): core.ReaderState {
  return { epoch: EPOCH, seq: 100n, block: 10, ringBlocks: 64, epochStartSeq: 50n, epochStartBlock: 3, invalidSinceMs: undefined, damageTimeoutMs: 1000, highWater: { epoch: 0n, seq: 0n }, ...overrides };
}
function header(overrides: Partial<RecordHeader> = {}): RecordHeader {
  return { kind: RecordKind.Batch, flags: 1, epoch: EPOCH, seq: 100n, blockCount: 2, payloadBytes: 100, frameCount: 1, timestampMs: 0n, ...overrides };
}
function status(overrides: Partial<StatusBlock> = {}): StatusBlock {
  return statusFixture({ volumeUuid: "uuid-a", epoch: EPOCH, generation: 7n, headSeq: 120n, headBlock: 40n, oldestSeq: 90n, ...overrides });
}
const allKeys = (): boolean => true;
const valid = { kind: "valid" } as const;
const at = (h: RecordHeader): FirstBlockVerdict => ({ kind: "header", header: h });

test("replay boundary: a record at the high-water seq is refused, the one after it is not (kills seq <= mark -> seq < mark)", (t) => {
  const s = state({ highWater: { epoch: EPOCH, seq: 100n } });
  const facts = (seq: bigint, epoch = EPOCH) => core.slotFacts(core.KEYED, { ...s, seq }, undefined, at(header({ seq, epoch })), valid, allKeys);
  t.true(facts(100n).replayed, "seq == mark: refused");
  t.true(facts(99n).replayed, "seq < mark: refused");
  t.false(facts(101n).replayed, "seq == mark + 1: delivered");
  t.true(facts(101n, EPOCH - 1n).replayed, "an older epoch than the mark: refused");
  t.is(core.decide(core.KEYED, facts(100n), s, 0).do, "refuse");
  t.is(core.decide(core.KEYED, facts(101n), s, 0).do, "deliver");
  t.false(core.slotFacts(core.KEYLESS, s, undefined, at(header()), valid, allKeys).replayed, "keyless has no anti-replay");
});

test("damage timer on a fake clock: waits strictly below damageTimeoutMs, acts at it", (t) => {
  const torn: core.Facts = core.slotFacts(core.KEYLESS, state(), undefined, { kind: "torn", detail: "" }, undefined, allKeys);
  const first = core.decide(core.KEYLESS, torn, state(), 5000);
  t.deepEqual(first, { do: "wait", row: "T1", invalidSinceMs: 5000, count: "tornSeen" }, "the timer starts at the first sight");
  t.is(core.decide(core.KEYLESS, torn, state({ invalidSinceMs: 5000 }), 5999).do, "wait");
  t.is(core.decide(core.KEYLESS, torn, state({ invalidSinceMs: 5000 }), 6000).do, "judge-damage");
  t.is(core.decide(core.KEYLESS, torn, state({ invalidSinceMs: 5000, damageTimeoutMs: 0 }), 5000).do, "judge-damage", "timeout 0: at once");
  // E1: below the epoch's first seq, nothing there: the same timer, then the jump to the epoch start.
  const gap = core.slotFacts(core.KEYLESS, state({ seq: 40n }), undefined, { kind: "empty" }, undefined, allKeys);
  t.is(core.decide(core.KEYLESS, gap, state({ seq: 40n, invalidSinceMs: 0 }), 999).do, "wait");
  t.deepEqual(core.decide(core.KEYLESS, gap, state({ seq: 40n, invalidSinceMs: 0 }), 1000), { do: "jump", row: "E1", to: { seq: 50n, block: 3, lost: 10n }, outcome: "epoch" });
  // E3 resets the timer.
  t.deepEqual(core.decide(core.KEYLESS, core.slotFacts(core.KEYLESS, state(), undefined, { kind: "empty" }, undefined, allKeys), state({ invalidSinceMs: 1 }), 9), { do: "wait", row: "E3", invalidSinceMs: undefined });
});

test("fact boundaries: below epochStartSeq, writer past, stale epoch, ring end", (t) => {
  const empty: FirstBlockVerdict = { kind: "empty" };
  t.true(core.slotFacts(core.KEYLESS, state({ seq: 49n }), undefined, empty, undefined, allKeys).below);
  t.false(core.slotFacts(core.KEYLESS, state({ seq: 50n }), undefined, empty, undefined, allKeys).below);
  // The writer is past only when its head is beyond the record after ours (head = seq + 1: still writing ours).
  t.false(core.slotFacts(core.KEYLESS, state(), status({ headSeq: 101n }), empty, undefined, allKeys).writerPast);
  t.true(core.slotFacts(core.KEYLESS, state(), status({ headSeq: 102n }), empty, undefined, allKeys).writerPast);
  t.false(core.slotFacts(core.KEYLESS, state(), status({ headSeq: 200n, epoch: EPOCH + 1n }), empty, undefined, allKeys).writerPast, "another epoch's head says nothing");
  // An older epoch's record is legitimate only below the current epoch's first seq.
  const stale = (seq: bigint) => core.slotFacts(core.KEYLESS, state({ seq }), undefined, at(header({ seq, epoch: EPOCH - 1n })), undefined, allKeys).epochStale;
  t.false(stale(49n));
  t.true(stale(50n));
  t.true(core.slotFacts(core.KEYLESS, state(), undefined, at(header({ epoch: EPOCH + 1n })), undefined, allKeys).epochHigher);
  const end = (block: number) => core.slotFacts(core.KEYLESS, state({ block }), undefined, at(header({ blockCount: 2 })), undefined, allKeys).pastEnd;
  t.false(end(62), "ends exactly at the ring end");
  t.true(end(63));
  t.true(core.slotFacts(core.KEYED, state(), undefined, at(header({ flags: 0 })), undefined, allKeys).unflagged);
  t.false(core.slotFacts(core.KEYLESS, state(), undefined, at(header({ flags: 0 })), undefined, allKeys).unflagged, "keyless never asks for the flag");
  t.true(core.slotFacts(core.KEYED, state(), undefined, at(header()), undefined, () => false).keyUnknown);
  t.true(core.slotFacts(core.KEYLESS, state(), undefined, at(header({ kind: RecordKind.Pad, blockCount: 1 })), valid, allKeys).pad);
});

test("damaged slot: skipped only when the writer is two records past; the search stays below its head; lost counted", (t) => {
  t.is(core.judgeDamage(state(), undefined), undefined);
  t.is(core.judgeDamage(state(), status({ headSeq: 101n })), undefined);
  t.deepEqual(core.judgeDamage(state(), status({ headSeq: 102n })), { headSeq: 102n, headBlock: 40 });
  t.is(core.judgeDamage(state(), status({ headSeq: 200n, epoch: EPOCH + 1n })), undefined);
  const stamp = (seq: bigint, blockIndex = 0) => ({ seq, blockIndex, blockCount: 1 });
  t.false(core.skipCandidate(core.KEYLESS, state(), 120n, stamp(100n)), "not ours again");
  t.true(core.skipCandidate(core.KEYLESS, state(), 120n, stamp(101n)));
  t.false(core.skipCandidate(core.KEYLESS, state(), 120n, stamp(105n, 1)), "not a record start");
  t.true(core.skipCandidate(core.KEYLESS, state(), 120n, stamp(130n)), "keyless: any later start");
  t.false(core.skipCandidate(core.KEYED, state(), 120n, stamp(120n)), "keyed: below the head only");
  t.true(core.skipCandidate(core.KEYED, state(), 120n, stamp(119n)));
  t.deepEqual(core.skipDamaged(state(), { seq: 104n, block: 20 }, { headSeq: 120n, headBlock: 40 }), { seq: 104n, block: 20, lost: 3n });
  t.deepEqual(core.skipDamaged(state(), undefined, { headSeq: 120n, headBlock: 40 }), { seq: 120n, block: 40, lost: 19n });
});

test("overrun: keyless resumes at the oldest intact record after ours, else at the newer record's start, else the status head, else here; keyed needs evidence", (t) => {
  const s = state({ block: 10 });
  t.deepEqual(core.resyncAfterOverrun(s, 130n, { seq: 130n, blockIndex: 2, blockCount: 3 }, undefined, undefined), { seq: 130n, block: 8, lost: 30n });
  t.deepEqual(core.resyncAfterOverrun(s, 130n, { seq: 130n, blockIndex: 11, blockCount: 12 }, status(), undefined), { seq: 120n, block: 40, lost: 20n }, "its start lies before ring block 0: the status head");
  t.deepEqual(core.resyncAfterOverrun(s, 130n, undefined, status({ headSeq: 90n }), undefined), { seq: 90n, block: 40, lost: 0n }, "a head behind us loses nothing");
  t.deepEqual(core.resyncAfterOverrun(s, 130n, undefined, status({ epoch: EPOCH + 1n }), undefined), { seq: 130n, block: 10, lost: 30n });
  // The oldest intact record after ours (scan.ts findOldestAfter) comes first: only what lies below it was overwritten.
  const newer = { seq: 130n, blockIndex: 2, blockCount: 3 };
  t.deepEqual(core.resyncAfterOverrun(s, 130n, newer, status(), { seq: 104n, block: 30 }), { seq: 104n, block: 30, lost: 4n }, "the oldest intact record");
  t.deepEqual(core.resyncAfterOverrun(s, 130n, newer, status(), { seq: 130n, block: 8 }), { seq: 130n, block: 8, lost: 30n }, "nothing older survived: the newer record");
  t.deepEqual(core.resyncAfterOverrun(s, 130n, newer, undefined, { seq: 100n, block: 30 }), { seq: 130n, block: 8, lost: 30n }, "a start at our own seq is no resume point");
  t.deepEqual(core.resyncAfterOverrun(s, 130n, newer, undefined, { seq: 131n, block: 30 }), { seq: 130n, block: 8, lost: 30n }, "a start above the newer record is no resume point");
  t.deepEqual(core.overrunClaim(s, 130n, { seq: 130n, blockIndex: 10, blockCount: 11 }), { seq: 130n, block: 0 });
  t.is(core.overrunClaim(s, 130n, { seq: 131n, blockIndex: 0, blockCount: 1 }), undefined);
  t.is(core.statusOverrun(s, status({ oldestSeq: 100n })), undefined, "the oldest intact record is ours: no overrun");
  t.deepEqual(core.statusOverrun(s, status({ oldestSeq: 101n })), { seq: 120n, block: 40, lost: 20n });
  t.is(core.statusOverrun(s, status({ oldestSeq: 101n, headSeq: 100n })), undefined);
});

test("epoch adoption: wait for a lagging superblock, refuse another volume, keep the position below epochStartSeq", (t) => {
  const sb = (epoch: bigint, epochStartSeq: bigint, volumeUuid = "uuid-a") => superblockFixture({ epoch, epochStartSeq, epochStartBlock: 7n, volumeUuid });
  t.deepEqual(core.adoptEpoch(core.KEYLESS, state(), "uuid-a", undefined, 6n), { do: "wait", replayed: false });
  t.deepEqual(core.adoptEpoch(core.KEYLESS, state(), "uuid-a", sb(6n, 100n, "uuid-b"), 6n), { do: "wrong-pair", volumeUuid: "uuid-b" });
  t.deepEqual(core.adoptEpoch(core.KEYLESS, state(), "uuid-a", sb(5n, 50n), 6n), { do: "wait", replayed: false });
  t.deepEqual(core.adoptEpoch(core.KEYED, state(), "uuid-a", sb(4n, 40n), 6n), { do: "wait", replayed: true }, "keyed: an older superblock restored");
  const s6 = sb(6n, 100n);
  t.deepEqual(core.adoptEpoch(core.KEYLESS, state({ seq: 100n }), "uuid-a", s6, 6n), { do: "adopt", superblock: s6, jump: { seq: 100n, block: 7 } });
  t.deepEqual(core.adoptEpoch(core.KEYLESS, state({ seq: 99n }), "uuid-a", s6, 6n), { do: "adopt", superblock: s6, jump: undefined });
});

test("status acceptance: keyed ignores older and pre-epoch status and counts MAC failures; another volume's status asks the superblock", (t) => {
  const ok = (s: StatusBlock): StatusDecode => ({ ok: true, status: s });
  const bad = (reason: "auth" | "downgrade"): StatusDecode => ({ ok: false, reason, detail: "" });
  const last = status({ generation: 9n });
  const older = status({ generation: 8n });
  t.like(core.acceptStatus(core.KEYED, state(), "uuid-a", last, [ok(older), bad("auth")], older), { do: "use", status: last, remember: false, replays: 1, authFailures: 1 });
  t.like(core.acceptStatus(core.KEYLESS, state(), "uuid-a", last, [ok(older), bad("auth")], older), { do: "use", status: older, remember: true, replays: 0, authFailures: 0 });
  const same = status({ generation: 9n });
  t.like(core.acceptStatus(core.KEYED, state(), "uuid-a", last, [ok(same), bad("downgrade")], same), { do: "use", status: same, remember: true, downgrades: 1 }, "the same generation is no replay");
  const before = status({ epoch: EPOCH - 1n, generation: 99n, volumeUuid: "uuid-a" });
  t.like(core.acceptStatus(core.KEYED, state(), "uuid-a", undefined, [ok(before), ok(before)], before), { do: "use", status: undefined, remember: false });
  const foreign = status({ volumeUuid: "uuid-b" });
  t.like(core.acceptStatus(core.KEYLESS, state(), "uuid-a", last, [ok(foreign), ok(foreign)], foreign), { do: "check-superblock" });
  t.like(core.acceptStatus(core.KEYLESS, state(), "uuid-a", last, [bad("auth"), bad("auth")], undefined), { do: "use", status: last, remember: false });
});

test("positions: past a record, a pad ends the lap, the ring end wraps; start plans; superblock failures", (t) => {
  t.deepEqual(core.past(state({ block: 10 }), header({ blockCount: 3 })), { seq: 101n, block: 13 });
  t.deepEqual(core.past(state({ block: 61 }), header({ blockCount: 3 })), { seq: 101n, block: 0 });
  t.deepEqual(core.past(state({ block: 20 }), header({ kind: RecordKind.Pad, blockCount: 1 })), { seq: 101n, block: 0 });
  t.deepEqual(core.epochStart(state({ seq: 60n })), { seq: 50n, block: 3, lost: 0n });
  const sb = { epoch: EPOCH, epochStartSeq: 50n };
  t.deepEqual(core.startPlan(core.KEYLESS, "head", sb, status()), { at: { seq: 120n, block: 40 } });
  t.deepEqual(core.startPlan(core.KEYLESS, "head", sb, status({ epoch: EPOCH - 1n })), {});
  t.deepEqual(core.startPlan(core.KEYLESS, "oldest", sb, status()), { seek: 90n });
  t.deepEqual(core.startPlan(core.KEYLESS, { seq: 77n }, sb, undefined), { seek: 77n });
  t.deepEqual(core.startPlan(core.KEYLESS, { afterAck: 80n }, sb, status()), { seek: 81n, dropDataBelow: "stamps" });
  t.deepEqual(core.startPlan(core.KEYED, { afterAck: 80n }, sb, status()), { seek: 81n, dropDataBelow: 120n });
  t.deepEqual(core.startPlan(core.KEYED, { afterAck: 80n }, sb, undefined), { seek: 81n, dropDataBelow: 50n });
  t.is(core.superblockFailure(core.KEYLESS, ErrorCode.WrongKey), undefined, "keyless: thrown");
  t.is(core.superblockFailure(core.KEYED, ErrorCode.Downgrade), "downgrades");
  t.is(core.superblockFailure(core.KEYED, ErrorCode.WrongKey), "authFailures");
  t.is(core.superblockFailure(core.KEYED, ErrorCode.IoError), undefined, "I/O errors are thrown");
});

test("overrun evidence: only a stamp of the newer seq itself, inside the ring before us, places it; no stamp and no status: here", (t) => {
  const s = state({ block: 10 });
  t.deepEqual(core.resyncAfterOverrun(s, 130n, undefined, undefined, undefined), { seq: 130n, block: 10, lost: 30n }, "no evidence at all: the newer seq, here");
  t.deepEqual(core.resyncAfterOverrun(s, 130n, { seq: 131n, blockIndex: 2, blockCount: 3 }, undefined, undefined), { seq: 130n, block: 10, lost: 30n }, "another record's stamp says nothing");
  t.deepEqual(core.resyncAfterOverrun(s, 130n, { seq: 130n, blockIndex: 10, blockCount: 11 }, undefined, undefined), { seq: 130n, block: 0, lost: 30n }, "its start at ring block 0");
  t.deepEqual(core.resyncAfterOverrun(s, 130n, undefined, status({ headSeq: 100n }), undefined), { seq: 100n, block: 40, lost: 0n }, "a head at our seq loses nothing");
  t.is(core.overrunClaim(s, 130n, undefined), undefined);
  t.is(core.overrunClaim(s, 130n, { seq: 131n, blockIndex: 2, blockCount: 3 }), undefined, "another record's stamp");
  t.is(core.overrunClaim(s, 130n, { seq: 130n, blockIndex: 11, blockCount: 12 }), undefined, "its start would lie before ring block 0");
  t.deepEqual(core.overrunClaim(s, 130n, { seq: 130n, blockIndex: 2, blockCount: 3 }), { seq: 130n, block: 8 });
  t.is(core.statusOverrun(s, undefined), undefined, "no status: no evidence");
  t.is(core.statusOverrun(s, status({ oldestSeq: 101n, epoch: EPOCH + 1n })), undefined, "another epoch's status: no evidence");
});

test("epoch adoption: a lagging superblock is a replay only when keyed and older than the reader's own epoch", (t) => {
  const sb = (epoch: bigint) => superblockFixture({ epoch, epochStartSeq: 40n, epochStartBlock: 7n, volumeUuid: "uuid-a" });
  t.deepEqual(core.adoptEpoch(core.KEYLESS, state(), "uuid-a", sb(EPOCH - 1n), EPOCH + 1n), { do: "wait", replayed: false }, "keyless: no anti-replay");
  t.deepEqual(core.adoptEpoch(core.KEYED, state(), "uuid-a", sb(EPOCH), EPOCH + 1n), { do: "wait", replayed: false }, "keyed, the reader's epoch: the mirror lags");
  t.deepEqual(core.adoptEpoch(core.KEYED, state(), "uuid-a", sb(EPOCH - 1n), EPOCH + 1n), { do: "wait", replayed: true });
});

test("start plans and seeks: oldest without a status starts where the reader stands; a seek that lands later counts the gap", (t) => {
  const sb = { epoch: EPOCH, epochStartSeq: 50n };
  t.deepEqual(core.startPlan(core.KEYLESS, "oldest", sb, undefined), {});
  t.deepEqual(core.startPlan(core.KEYLESS, "head", sb, undefined), {});
  t.deepEqual(core.seekTo(77n, undefined, 3), { seq: 77n, block: 3, lost: 0n }, "not found: the seq, here");
  t.deepEqual(core.seekTo(77n, { seq: 80n, block: 5 }, 3), { seq: 80n, block: 5, lost: 3n });
  t.deepEqual(core.seekTo(77n, { seq: 77n, block: 5 }, 3), { seq: 77n, block: 5, lost: 0n });
});

test("keyed superblock failures while following: a wrong key, an unformatted or a conflicting superblock count as auth failures", (t) => {
  for (const code of [ErrorCode.WrongKey, ErrorCode.NotFormatted, ErrorCode.SuperblockConflict]) t.is(core.superblockFailure(core.KEYED, code), "authFailures", code);
  t.is(core.superblockFailure(core.KEYLESS, ErrorCode.NotFormatted), undefined, "keyless: thrown");
  t.is(core.superblockFailure(core.KEYLESS, ErrorCode.Downgrade), undefined, "keyless: thrown");
});

test("keyed status acceptance at its edges: older by epoch or generation is a replay (same volume only); a status of an earlier epoch keeps the last of ours", (t) => {
  const ok = (s: StatusBlock): StatusDecode => ({ ok: true, status: s });
  const use = (last: StatusBlock | undefined, picked: StatusBlock) => core.acceptStatus(core.KEYED, state(), "uuid-a", last, [ok(picked), ok(picked)], picked);
  const last = status({ epoch: EPOCH, generation: 9n });
  t.like(use(last, status({ epoch: EPOCH - 1n, generation: 99n })), { do: "use", status: last, remember: false, replays: 1 }, "an older epoch, whatever its generation");
  const newer = status({ epoch: EPOCH + 1n, generation: 1n });
  t.like(use(last, newer), { do: "use", status: newer, remember: true, replays: 0 }, "a newer epoch starts its generations again");
  t.like(use(last, status({ volumeUuid: "uuid-b", generation: 8n })), { do: "check-superblock" }, "another volume's status is no replay of ours");
  // Of an epoch before the reader's and no replay: no decision from it; the last status stays only if it is of the reader's epoch.
  t.like(use(last, status({ volumeUuid: "uuid-b", epoch: EPOCH - 1n })), { do: "use", status: last, remember: false, replays: 0 });
  t.like(use(status({ epoch: EPOCH - 2n }), status({ epoch: EPOCH - 1n })), { do: "use", status: undefined, remember: false, replays: 0 });
});
