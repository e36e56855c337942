// RecordsInFlight, the writer's bookkeeping of writes in flight, on its own: the head moves only over
// the completed prefix, the issue position runs ahead of it and wraps at the ring's end, lone writes
// (pad, status, rekey, owner check) start only drained and block records, and a seeded random drive
// (issues and completions in any order) never lets the head pass a write still in flight.
import test from "ava";

import { RecordsInFlight } from "../../lib/ring/records-in-flight.ts";
import { generator, logSeed, simulationSeeds } from "../helpers/random.ts";

test("completions in any order: the head moves only over the completed prefix", (t) => {
  const r = new RecordsInFlight<string>(3, 16, 10n, 0);
  t.deepEqual(r.issue(2, "a"), { seq: 10n, startBlock: 0 });
  t.deepEqual(r.issue(1, "b"), { seq: 11n, startBlock: 2 });
  t.deepEqual(r.issue(3, "c"), { seq: 12n, startBlock: 3 });
  t.true(r.full);
  t.is(r.issueSeq, 13n);
  t.is(r.issueBlock, 6);
  r.complete(12n);
  r.complete(11n);
  t.is(r.retire(), undefined, "seq 10 is still in flight: nothing retires");
  t.is(r.headSeq, 10n);
  t.is(r.headBlock, 0);
  r.complete(10n);
  const retired: string[] = [];
  for (let e = r.retire(); e !== undefined; e = r.retire()) retired.push(e.slot);
  t.deepEqual(retired, ["a", "b", "c"]);
  t.is(r.headSeq, 13n);
  t.is(r.headBlock, 6);
  t.true(r.drained);
});

test("a completion without a seq names the only record not yet done; it is refused when ambiguous or unknown", (t) => {
  const r = new RecordsInFlight<number>(2, 16, 1n, 0);
  r.issue(1, 0);
  r.complete(undefined);
  t.is(r.retire()?.seq, 1n);
  r.issue(1, 0);
  r.issue(1, 1);
  t.throws(() => r.complete(undefined), { message: /several records/ });
  t.throws(() => r.complete(9n), { message: /matches no record/ });
  r.complete(3n);
  t.throws(() => r.complete(3n), { message: /matches no record/ }, "a write completes once");
  r.complete(undefined); // seq 2: the only one not done
  t.is(r.retire()?.seq, 2n);
  t.is(r.retire()?.seq, 3n);
});

test("the issue position and the head wrap at the ring's end; a record that would run past it is refused (the lap ends with a pad)", (t) => {
  const r = new RecordsInFlight<number>(2, 8, 1n, 5);
  t.false(r.wraps(3));
  t.true(r.wraps(4));
  t.throws(() => r.issue(4, 0), { message: /issued at block 5 of 8/ });
  r.issue(3, 0);
  t.is(r.issueBlock, 0);
  r.complete(1n);
  r.retire();
  t.is(r.headBlock, 0);
  t.is(r.headSeq, 2n);
});

test("lone writes run alone: only drained, and no record is issued beside one", (t) => {
  const r = new RecordsInFlight<number, "pad" | "status">(2, 8, 1n, 6);
  r.issue(1, 0);
  t.throws(() => r.startAlone("status"), { message: /1 record writes in flight/ });
  r.complete(1n);
  r.retire();
  r.startAlone("pad");
  t.is(r.alone, "pad");
  t.throws(() => r.issue(1, 0), { message: /with pad in flight/ });
  t.throws(() => r.startAlone("status"), { message: /with pad in flight/ });
  t.is(r.endAlone(), "pad");
  t.is(r.endAlone(), undefined);
  // The pad at block 7 ends the lap: it takes seq 2, the next lap starts at block 0 with seq 3.
  r.padWritten();
  t.is(r.headSeq, 3n);
  t.is(r.headBlock, 0);
  t.is(r.issueSeq, 3n);
  t.is(r.issueBlock, 0);
});

test("clear() lets the records in flight go without moving the head over them (a failed writer)", (t) => {
  const r = new RecordsInFlight<number>(3, 16, 1n, 0);
  r.issue(1, 0);
  r.issue(1, 1);
  r.complete(2n);
  r.clear();
  t.true(r.drained);
  t.is(r.headSeq, 1n);
  t.is(r.headBlock, 0);
});

test("seeded random drive: the head is always the lowest write not yet completed, and never passes one in flight", (t) => {
  for (const seed of simulationSeeds()) {
    logSeed(t, "simulation", seed);
    const random = generator(seed);
    const ringBlocks = 32;
    const max = 1 + Math.floor(random() * 4);
    const r = new RecordsInFlight<bigint>(max, ringBlocks, 1n, 0);
    let completedBelow = 1n; // every seq below it completed
    const done = new Set<bigint>();
    const issued = new Map<bigint, { startBlock: number; blocks: number }>();
    for (let step = 0; step < 2000; step++) {
      const choice = random();
      if (choice < 0.45 && !r.full) {
        const blocks = 1 + Math.floor(random() * 4);
        if (r.wraps(blocks)) {
          if (!r.drained) continue;
          r.startAlone("pad");
          r.endAlone();
          r.padWritten();
          completedBelow++;
          continue;
        }
        const at = r.issue(blocks, r.issueSeq);
        issued.set(at.seq, { startBlock: at.startBlock, blocks });
      } else if (r.length > 0) {
        const pending: bigint[] = [];
        for (let i = 0; i < r.length; i++) if (!r.at(i)!.done) pending.push(r.at(i)!.seq);
        if (pending.length === 0) continue;
        const seq = pending[Math.floor(random() * pending.length)]!;
        r.complete(seq);
        done.add(seq);
        for (let e = r.retire(); e !== undefined; e = r.retire()) {
          t.is(e.slot, e.seq);
          t.deepEqual({ startBlock: e.startBlock, blocks: e.blocks }, issued.get(e.seq));
        }
        while (done.has(completedBelow)) completedBelow++;
      }
      if (r.headSeq !== completedBelow) t.fail(`seed ${seed} step ${step}: head ${r.headSeq}, every write below ${completedBelow} completed`);
      const oldest = r.at(0);
      if (oldest !== undefined && (oldest.seq !== r.headSeq || oldest.startBlock !== r.headBlock || oldest.done)) t.fail(`seed ${seed} step ${step}: the oldest write in flight is not at the head`);
      if (r.length > max) t.fail(`seed ${seed} step ${step}: ${r.length} writes in flight, bound ${max}`);
    }
    t.true(r.headSeq > 100n, "the drive wrote records");
  }
});
