// The reader's fault decisions as pure functions (lib/ring/fault-memory.ts): whether a fault counts
// (once per identity, into the right counter, with the total it reached), which status slots are
// faults and how they are known, what an accepted record's fault is, and which bytes identify a record.
import test from "ava";

import { RECORD_HEADER_END, STATUS_SLOT_BLOCKS } from "../../lib/format/layout.ts";
import type { StatusBlock, StatusDecode } from "../../lib/format/status.ts";
import { FaultMemory, acceptFault, recordIdentity, statusFaults, type FaultReason } from "../../lib/ring/fault-memory.ts";

const B = 4096;

function counters(): Record<FaultReason, number> {
  return { authFailures: 0, downgrades: 0, replays: 0, tornSeen: 0, damaged: 0 };
}

test("count: a new identity bumps its reason's counter and reports the total; the same identity again does not", (t) => {
  const memory = new FaultMemory();
  const c = counters();
  const fault = { reason: "authFailures" as const, source: "record" as const, offsetBytes: 8192, seq: 5n, epoch: 2n, detail: "row B2" };
  t.deepEqual(memory.count(c, fault, new Uint8Array([1])), { ...fault, total: 1 });
  t.is(memory.count(c, fault, new Uint8Array([1])), undefined, "same bytes, same place: counted once");
  t.like(memory.count(c, fault, new Uint8Array([2])), { total: 2 }, "other bytes: another fault");
  t.like(memory.count(c, { ...fault, seq: 6n }, new Uint8Array([1])), { total: 3 }, "another expected seq: another fault");
  t.like(memory.count(c, { ...fault, reason: "damaged" }, new Uint8Array([1])), { reason: "damaged", total: 1 }, "each reason has its own memory and counter");
  t.deepEqual(c, { ...counters(), authFailures: 3, damaged: 1 });
  memory.forget("record");
  t.like(memory.count(c, fault, new Uint8Array([1])), { total: 4 }, "forgotten (read fine since): counted again");
});

const AUTH: StatusDecode = { ok: false, reason: "auth", detail: "" };
const DOWNGRADE: StatusDecode = { ok: false, reason: "downgrade", detail: "" };
const BLANK: StatusDecode = { ok: false, reason: "blank", detail: "" };
const TORN: StatusDecode = { ok: false, reason: "checksum", detail: "" };
const status = { slot: 1, epoch: 4n, generation: 9n } as StatusBlock;
const GOOD: StatusDecode = { ok: true, status };

const STATUS_ROWS: { name: string; counted: { authFailures: number; downgrades: number; replays?: number }; slots: StatusDecode[]; picked?: StatusBlock; want: [string, number, string][] }[] = [
  { name: "nothing counted: no faults, whatever the slots", counted: { authFailures: 0, downgrades: 0 }, slots: [AUTH, DOWNGRADE], want: [] },
  { name: "slot 0 forged", counted: { authFailures: 1, downgrades: 0 }, slots: [AUTH, GOOD], want: [["authFailures", STATUS_SLOT_BLOCKS[0] * B, "status slot 0: auth"]] },
  { name: "slot 1 unsealed", counted: { authFailures: 0, downgrades: 1 }, slots: [BLANK, DOWNGRADE], want: [["downgrades", STATUS_SLOT_BLOCKS[1] * B, "status slot 1: downgrade"]] },
  {
    name: "both bad",
    counted: { authFailures: 1, downgrades: 1 },
    slots: [DOWNGRADE, AUTH],
    want: [
      ["downgrades", STATUS_SLOT_BLOCKS[0] * B, "status slot 0: downgrade"],
      ["authFailures", STATUS_SLOT_BLOCKS[1] * B, "status slot 1: auth"],
    ],
  },
  { name: "blank and torn slots are normal, not faults", counted: { authFailures: 1, downgrades: 0 }, slots: [BLANK, TORN], want: [] },
  { name: "an older status restored: a replay, at its slot", counted: { authFailures: 0, downgrades: 0, replays: 1 }, slots: [BLANK, GOOD], picked: status, want: [["replays", STATUS_SLOT_BLOCKS[1] * B, "older status restored (epoch 4, generation 9)"]] },
  { name: "a replay without a picked status: nothing to name", counted: { authFailures: 0, downgrades: 0, replays: 1 }, slots: [BLANK, BLANK], want: [] },
];

for (const row of STATUS_ROWS) {
  test(`statusFaults: ${row.name}`, (t) => {
    const bytes = new Uint8Array(2 * B);
    bytes[0] = 0xa0;
    bytes[B] = 0xb1;
    const faults = statusFaults(row.counted, { slots: row.slots, bytes, status: row.picked }, B);
    t.deepEqual(
      faults.map((f) => [f.reason, f.offsetBytes, f.detail]),
      row.want,
    );
    for (const f of faults) {
      if (f.reason === "replays") t.is(f.what, "4/9", "a replayed status is known by its (epoch, generation)");
      else t.is((f.what as Uint8Array)[0], f.offsetBytes === STATUS_SLOT_BLOCKS[0] * B ? 0xa0 : 0xb1, "a bad slot is known by its own bytes");
    }
  });
}

test("acceptFault: a refused record is a replay naming its epoch; frames that do not parse are damage", (t) => {
  t.deepEqual(acceptFault("refused", 7n), { reason: "replays", detail: "authentic record at or below the replay floor (epoch 7)" });
  t.like(acceptFault("damaged", 7n), { reason: "damaged" });
});

test("recordIdentity: the header without its own CRC32C when there is a header, else the whole block", (t) => {
  const block = new Uint8Array(B);
  t.is(recordIdentity(block, true, B).length, RECORD_HEADER_END - 4);
  t.is(recordIdentity(block, false, B).length, B);
  t.is(recordIdentity(block, true, B).buffer, block.buffer, "a view, not a copy");
});
