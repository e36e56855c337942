// The writer's status timing on an idle link (issue #13 section 4), on a fake clock: a lone record
// (an idle link's heartbeat record, STATUS_LONE_RECORD_GAP_MS after the one before it) has its
// status written in the turn its write completed, not STATUS_IDLE_MS later on a timer wake-up of its
// own; records of a conversation still wait STATUS_IDLE_MS, so a status write does not sit in front
// of the next one.
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { RingWriterCore, STATUS_IDLE_MS, STATUS_LONE_RECORD_GAP_MS, type WriterAction, type WriterInput } from "../../lib/ring/writer-core.ts";
import { testWriterCore } from "../helpers/writer-core.ts";

const input = (): WriterInput => ({ wallMs: 0, peerAck: undefined, localAck: undefined, delivered: undefined, roomWanted: false });

/** Performs actions (completing each at once) until the core sleeps; returns what it did. */
function drive(core: RingWriterCore, nowMs: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < 100; i++) {
    const action: WriterAction = core.next(nowMs, input());
    out.push(action.kind === "write" ? action.what : action.kind === "sleep" ? `sleep until ${action.untilMs}` : action.kind);
    if (action.kind === "sleep" || action.kind === "stop") return out;
    if (action.kind === "readSuperblock") core.superblockRead(nowMs, core.superblock, "mem:test");
    else core.completed(nowMs);
  }
  throw new Error("the core never slept");
}

test("a lone heartbeat record gets its status in its own turn; a conversation's records wait STATUS_IDLE_MS", (t) => {
  const core = testWriterCore({ options: { maxDelayMs: 0, flushThresholdBytes: 1 << 20, statusIntervalMs: 250, ownerCheckMs: 100_000 }, ringBlocks: 64 });
  t.deepEqual(drive(core, 0), ["status", "sleep until 250"]);
  // An idle link: one heartbeat record 200 ms after the last: record, then its status at once.
  let now = 200;
  t.true(now >= STATUS_LONE_RECORD_GAP_MS);
  core.append(now, FrameType.Heartbeat, new Uint8Array(40), 0);
  t.deepEqual(drive(core, now), ["record", "status", `sleep until ${now + 250}`], "no sleep of STATUS_IDLE_MS between the record and its status");
  now += 250 - 1;
  core.append(now, FrameType.Heartbeat, new Uint8Array(40), 0);
  t.deepEqual(drive(core, now), ["record", "status", `sleep until ${now + 250}`]);
  // A conversation: records 2 ms apart; after the second, the status waits STATUS_IDLE_MS for more.
  now += 150;
  core.append(now, FrameType.Data, new Uint8Array(100), 0);
  t.deepEqual(drive(core, now), ["record", "status", `sleep until ${now + 250}`], "the first record of a burst is lone");
  now += 2;
  core.append(now, FrameType.Data, new Uint8Array(100), 0);
  t.deepEqual(drive(core, now), ["record", `sleep until ${now + STATUS_IDLE_MS}`]);
  now += 2;
  core.append(now, FrameType.Data, new Uint8Array(100), 0);
  t.deepEqual(drive(core, now), ["record", `sleep until ${now + STATUS_IDLE_MS}`]);
  t.deepEqual(drive(core, now + STATUS_IDLE_MS), ["status", `sleep until ${now + STATUS_IDLE_MS + 250}`]);
});
