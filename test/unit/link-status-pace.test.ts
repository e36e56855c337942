// Issue 13 section 4, what an idle node costs: the link's receive side reads the peer's status block
// in the turn a storage heartbeat record arrives in, not in a wake-up of its own. The real follow()
// loop and AdaptiveWait with the link's pace (linkStatusPace) on a fake clock, against a scripted
// ring whose records land once per heartbeat, late by up to the clock's storage share plus a mirror's
// copy delay (seeded): no watch ends for the status read, one read per record; with the peer's records
// gone, the status is still read every two heartbeats. In standby (the primary up), every other
// record's turn instead, still with no watch ending for it.
import test, { type ExecutionContext } from "ava";

import { DEFAULT_TIMERS, STORAGE_SHARE } from "../../lib/link/paths.ts";
import { linkStatusPace } from "../../lib/link/storage-path.ts";
import { DEFAULT_POLL_MAX_MS, DEFAULT_POLL_MIN_US, DEFAULT_POLL_STANDBY_MAX_MS } from "../../lib/defaults.ts";
import type { WatchOptions } from "../../lib/io/volume.ts";
import { AdaptiveWait, paceAfter } from "../../lib/poll/adaptive-wait.ts";
import { follow } from "../../lib/poll/follower.ts";
import type { PollOutcome } from "../../lib/ring/reader.ts";
import { generator, logSeed, simulationSeeds } from "../helpers/random.ts";

const HEARTBEAT_MS = DEFAULT_TIMERS.storage.heartbeatMs;
/** A record lands this late at most after its heartbeat's nominal time: the clock's storage share, plus a mirror's copy. */
const MAX_LATE_MS = STORAGE_SHARE * HEARTBEAT_MS + 30;

/** Records land at the given times; the watch sleeps on the fake clock (paceAfter, like the addon's) until one lands or its timeout passes. */
function scriptedRing(recordTimesMs: number[]) {
  let nowMs = 0;
  let delivered = 0;
  const landed = () => recordTimesMs.filter((at) => at <= nowMs).length;
  const timeouts: number[] = [];
  const deliveredAt: number[] = [];
  const periodicAt: number[] = [];
  const reader = {
    get seq(): bigint {
      return BigInt(delivered);
    },
    watch: async (o: WatchOptions): Promise<boolean> => {
      const maxSleepUs = o.maxSleepUs ?? o.sleepUs;
      const startMs = nowMs;
      const until = nowMs + o.timeoutMs;
      for (;;) {
        if (landed() > delivered) return true;
        if (nowMs >= until) {
          timeouts.push(nowMs);
          return false;
        }
        nowMs = Math.min(until, nowMs + Math.max(paceAfter(o.sleepUs, maxSleepUs, (nowMs - startMs) * 1000) / 1000, 0.001));
      }
    },
  };
  const poll = async (): Promise<PollOutcome> => {
    if (landed() <= delivered) return "waiting";
    delivered++;
    deliveredAt.push(nowMs);
    return "delivered";
  };
  return { reader, now: () => nowMs, poll, timeouts, deliveredAt, periodicAt };
}

/** The link's receive-side follower (Poller options as storage-path.ts sets them) over the scripted ring, in standby or not. */
async function run(recordTimesMs: number[], endMs: number, standby = false) {
  const { statusPollMs, statusIdleMs, statusStandbyMs } = linkStatusPace(HEARTBEAT_MS);
  const ring = scriptedRing(recordTimesMs);
  const pace = new AdaptiveWait({
    minSleepUs: DEFAULT_POLL_MIN_US,
    maxSleepUs: DEFAULT_POLL_MAX_MS * 1000,
    periodMs: statusPollMs,
    idlePeriodMs: statusIdleMs,
    standbyMaxSleepUs: DEFAULT_POLL_STANDBY_MAX_MS * 1000,
    standbyPeriodMs: statusStandbyMs,
  });
  pace.standby(standby);
  await follow(
    { reader: ring.reader, pace, running: () => ring.now() < endMs, now: ring.now },
    {
      poll: () => ring.poll(),
      periodic: async () => {
        ring.periodicAt.push(ring.now());
        return false;
      },
    },
  );
  return ring;
}

test("linkStatusPace: due half a heartbeat after a record, every two heartbeats without one", (t) => {
  t.deepEqual(linkStatusPace(250), { statusPollMs: 125, statusIdleMs: 500, statusStandbyMs: 375 });
  t.deepEqual(linkStatusPace(1), { statusPollMs: 1, statusIdleMs: 2, statusStandbyMs: 2 });
});

/** One minute of storage heartbeats. */
const HEARTBEATS = 240;

/**
 * One minute of heartbeat records (each late by up to MAX_LATE_MS), then 5 s without, through the real
 * follower; checks what both paces share: every record delivered, no watch ending only for the status
 * read while records come, every status read then made in a record's turn, and without records a read
 * at least every two heartbeats. Returns the reads while records came, for each pace's own count.
 */
async function statusReads(t: ExecutionContext, seed: number, standby: boolean) {
  const random = generator(seed);
  const records = Array.from({ length: HEARTBEATS }, (_, k) => 1000 + k * HEARTBEAT_MS + random() * MAX_LATE_MS);
  const lastMs = records.at(-1)!;
  const ring = await run(records, lastMs + 5000, standby);
  t.is(ring.deliveredAt.length, HEARTBEATS, `seed ${seed}: every record delivered`);
  // While records come: no watch times out (the status read never needs a turn of its own)...
  const settledMs = records[1]!;
  const early = ring.timeouts.filter((at) => at > settledMs && at < lastMs);
  t.deepEqual(early, [], `seed ${seed}: watches that ended only for the status read while records came`);
  // ... and every status read (from the second record on) is made in a record's turn.
  const whileRecords = ring.periodicAt.filter((at) => at > settledMs && at <= lastMs);
  t.true(
    whileRecords.every((at) => ring.deliveredAt.includes(at)),
    `seed ${seed}: status reads outside a record's turn: ${whileRecords.filter((at) => !ring.deliveredAt.includes(at)).join(", ")}`,
  );
  // The peer's records gone (its storage path down): the status is still read, every two heartbeats.
  const after = ring.periodicAt.filter((at) => at > lastMs);
  t.true(after.length >= 8, `seed ${seed}: ${after.length} status reads in 5 s without records`);
  for (let i = 1; i < after.length; i++) t.true(after[i]! - after[i - 1]! <= 2 * HEARTBEAT_MS + 1, `seed ${seed}: status read gap ${after[i]! - after[i - 1]!} ms`);
  return { records, ring, whileRecords, after };
}

test("an idle link reads the peer's status in the turns its heartbeat records arrive in: no wake-up of its own", async (t) => {
  for (const seed of simulationSeeds()) {
    logSeed(t, "simulation", seed);
    const { whileRecords } = await statusReads(t, seed, false);
    t.true(whileRecords.length >= HEARTBEATS - 3 && whileRecords.length <= HEARTBEATS, `seed ${seed}: ${whileRecords.length} status reads for ${HEARTBEATS} records`);
  }
});

test("in standby the peer's status is read in the turn of every other heartbeat record: no wake-up of its own, half the reads", async (t) => {
  for (const seed of simulationSeeds()) {
    logSeed(t, "simulation", seed);
    const { records, ring, whileRecords, after } = await statusReads(t, seed, true);
    for (const [i, at] of ring.deliveredAt.entries()) t.true(at - records[i]! <= DEFAULT_POLL_STANDBY_MAX_MS + 1, `seed ${seed}: record ${i} seen ${at - records[i]!} ms after it landed`);
    t.true(whileRecords.length >= HEARTBEATS / 3 && whileRecords.length <= HEARTBEATS / 2 + 10, `seed ${seed}: ${whileRecords.length} status reads for ${HEARTBEATS} records`);
    for (let i = 1; i < whileRecords.length; i++) t.true(whileRecords[i]! - whileRecords[i - 1]! <= 3 * HEARTBEAT_MS + MAX_LATE_MS + DEFAULT_POLL_STANDBY_MAX_MS, `seed ${seed}: status read gap ${whileRecords[i]! - whileRecords[i - 1]!} ms while records came`);
    // The first read without records within two heartbeats of the last record.
    t.true(after[0]! - ring.deliveredAt.at(-1)! <= 2 * HEARTBEAT_MS + 1, `seed ${seed}: first status read ${after[0]! - ring.deliveredAt.at(-1)!} ms after the last record`);
  }
});
