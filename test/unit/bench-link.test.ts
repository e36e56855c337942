// bench link's own bookkeeping (no lab, no device): the stage table names a hogged run apart from
// its quiet run, and a CPU hog that is not running is reported, not measured as if it were.
import test from "ava";

import { stageRunLabel } from "../../bench/link.ts";

test("the stage table's run label tells a hogged storage run from its quiet run of the same congestion control", (t) => {
  const quiet = [{}, { congestion: "cubic" }];
  const hogged = [{ hogged: true }, { congestion: "cubic", hogged: true }];
  const labels = [...quiet, ...hogged].map(stageRunLabel);
  t.is(new Set(labels).size, 4, labels.join(" | "));
  t.deepEqual(quiet.map(stageRunLabel), ["default", "cubic"], "the quiet runs keep their names");
});
