// StoragePath.standby() steers the send ring's status pace too (issue #13 section 4): in standby a lone
// heartbeat record within the standby gap of the last status write leaves its status to a later
// record, and leaving standby writes the held status at once. The storage heartbeat is set long
// (2 s: gap 3 s, interval ~5 s; the steps between the open's status and the record take ~0.2 s).
import test from "ava";

import { FrameType } from "../../lib/format/layout.ts";
import { StoragePath } from "../../lib/link/storage-path.ts";
import { STATUS_LONE_RECORD_GAP_MS } from "../../lib/ring/writer-core.ts";
import { sleep } from "../helpers/exec.ts";
import { pairFiles } from "../helpers/pair-files.ts";
import { pollUntil } from "../helpers/until.ts";

test("standby holds a lone heartbeat record's status for a later record; standby(false) writes it at once", async (t) => {
  const { send, receive } = await pairFiles(t);
  const path = await StoragePath.open({ nodeId: 1, peerNodeId: 2, send, receive, heartbeatMs: 2000, onFrame: () => undefined });
  t.teardown(() => path.close());
  const writer = path.send.writer;
  if (writer === undefined) throw new Error("the send ring's writer is not up");
  await pollUntil("the status written at open", () => writer.counters.statusWrites >= 1, 5000, 10);
  // A record this long after the one before is lone (an idle link's heartbeat record).
  await sleep(STATUS_LONE_RECORD_GAP_MS + 50);

  path.standby(true);
  const before = writer.counters.statusWrites;
  t.is(path.append(0, FrameType.Heartbeat, new Uint8Array(40)), "queued");
  await writer.flush();
  await sleep(50); // the pump's turn after the record's completion
  t.is(writer.counters.records, 1);
  t.is(writer.counters.statusWrites, before, "in standby the lone record's status waits for a later record");

  path.standby(false);
  await pollUntil("the held status written after standby(false)", () => writer.counters.statusWrites > before, 5000, 5);
  t.is(writer.counters.statusWrites, before + 1, "one status write: the held one");
});
