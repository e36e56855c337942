// bench link's own bookkeeping (no lab, no device): the stage table names a hogged run apart from
// its quiet run, and a CPU hog that is not running is reported, not measured as if it were.
import test from "ava";

import { startHog } from "../../bench/hog.ts";
import { stageRunLabel } from "../../bench/link.ts";

test("the stage table's run label tells a hogged storage run from its quiet run of the same congestion control", (t) => {
  const quiet = [{}, { congestion: "cubic" }];
  const hogged = [{ hogged: true }, { congestion: "cubic", hogged: true }];
  const labels = [...quiet, ...hogged].map(stageRunLabel);
  t.is(new Set(labels).size, 4, labels.join(" | "));
  t.deepEqual(quiet.map(stageRunLabel), ["default", "cubic"], "the quiet runs keep their names");
});

test.serial("a CPU hog that never ran (stress-ng not found) is reported as not running, so its row shows no ratio against the quiet row", async (t) => {
  const path = process.env["PATH"];
  process.env["PATH"] = "/nonexistent-lunlink-test";
  const logged: string[] = [];
  const log = console.log;
  console.log = (...parts: unknown[]) => void logged.push(parts.join(" "));
  try {
    const hog = startHog(1);
    // The spawn failure (ENOENT) arrives as an event; bounded wait for it.
    for (let i = 0; i < 100 && logged.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    t.is(await hog.stop(), false);
  } finally {
    console.log = log;
    process.env["PATH"] = path;
  }
  t.regex(logged.join("\n"), /stress-ng: .*ENOENT/);
});
