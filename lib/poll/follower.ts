// follow(): the one loop that keeps a RingReader at the head of a ring, for the Poller (delivers
// frames) and RingMirror (copies records). Each turn: poll the expected block once; run the periodic
// task (status read or copy) when AdaptiveWait says it is due; then wait in the addon's watch (the
// volume's I/O thread re-reads the block with O_DIRECT and nanosleeps, backing its sleep off by
// itself; no JS timer, no JS turn until the block changes or the periodic task is due). After any
// progress poll again at once, whether a read or a watch found the record: a backlog (records landing
// faster than one watch each: a loaded mirror) is then read through the reader's read-ahead, one large
// read for many records; watching before each record kept it at one watch and one body read per
// record and dropped the read-ahead each time (bench link --stages: the mirror 47-89 ms behind at
// p50). The poll that finds the next slot empty right after progress is followed by a watch for the
// stamp of the next seq. The pace snaps back on the first record (adaptive-wait.ts). Bound: a turn
// does one poll, at most one periodic task and one wait; the loop ends when `running()` turns false.
import { performance } from "node:perf_hooks";

import { STAMP_MAGIC } from "../format/layout.ts";
import type { WatchOptions } from "../io/volume.ts";
import type { PollOutcome, RingReader } from "../ring/reader.ts";
import { AdaptiveWait, type AdaptiveWaitOptions } from "./adaptive-wait.ts";
import { stageTrace } from "../ring/stage-trace.ts";

/** Bytes of the expected block a watch compares: the stamp and the record header (docs/format.md). */
export const WATCH_COMPARE_BYTES = 96;

export interface FollowSteps {
  /** One read at the expected block; `fresh`: the reader's buffer holds it as a watch just read it. */
  poll(fresh: boolean): Promise<PollOutcome>;
  /** Right after each poll (resync after an overrun, adopt an epoch...). */
  after?(outcome: PollOutcome): Promise<void> | void;
  /** The periodic task (status read, status copy); true: it made progress (a new epoch), poll at once. */
  periodic(): Promise<boolean>;
  /** Called before each poll: a promise pauses following until it resolves (a full queue). */
  paused?(): Promise<void> | undefined;
}

export interface FollowOptions {
  /** Only its watch (it hands the options, maxSleepUs included, to Volume.watch) and the seq it expects are used here: the steps poll it. */
  reader: Pick<RingReader, "watch" | "seq">;
  /** The pace: its options (a fresh AdaptiveWait), or one the caller keeps to steer (Poller.standby). */
  pace: AdaptiveWaitOptions | AdaptiveWait;
  running: () => boolean;
  /** Monotonic ms (default performance.now); tests pass a fake one. */
  now?: () => number;
}

/** Follows until `running()` is false; rejects with the first error of a step or a read. */
export async function follow(options: FollowOptions, steps: FollowSteps): Promise<void> {
  const now = options.now ?? (() => performance.now());
  const reader = options.reader;
  const wait = options.pace instanceof AdaptiveWait ? options.pace : new AdaptiveWait(options.pace);
  let fresh = false;
  /** The last poll or periodic task made progress: the next wait is for the next seq's stamp. */
  let afterProgress = false;
  while (options.running()) {
    const paused = steps.paused?.();
    if (paused !== undefined) {
      await paused;
      continue;
    }
    const seqBefore = reader.seq;
    const polledFresh = fresh;
    const outcome = await steps.poll(fresh);
    if (stageTrace !== undefined && reader.seq > seqBefore) stageTrace.mark("seen", seqBefore, reader.seq);
    fresh = false;
    await steps.after?.(outcome);
    if (outcome !== "waiting") wait.record(now());
    let progress = outcome !== "waiting";
    let periodicProgress = false;
    if (wait.periodicDue(now())) {
      wait.periodicRan(now());
      if (await steps.periodic()) {
        wait.record(now());
        progress = periodicProgress = true;
      }
    }
    if (progress) afterProgress = true;
    if (!options.running()) continue;
    // In standby (the ring carries only heartbeat records) a record a watch found is followed by the
    // stamp watch for the next seq at once, not by a poll of the next slot first: the watch's first
    // read is that poll, done in the I/O thread, so the empty slot costs no read completion in JS (a
    // record already there ends the watch at once). Elsewhere a poll follows, for the read-ahead.
    const watchNext = polledFresh && outcome === "delivered" && !periodicProgress && wait.inStandby;
    if (progress && !watchNext) continue;
    const watch: WatchOptions = { compareBytes: WATCH_COMPARE_BYTES, ...wait.next(now()), ...(afterProgress ? { untilStamp: { magic: STAMP_MAGIC, seq: reader.seq } } : {}) };
    afterProgress = false;
    fresh = await reader.watch(watch);
    wait.waited(now(), fresh);
  }
}
