// Issue 13 section 4, what an idle node costs: the node's Prometheus metrics must not add event-loop
// wake-ups of their own. prom-client's default event-loop lag histogram is a repeating libuv timer
// (monitorEventLoopDelay); at its default 10 ms resolution it woke an idle node 100 times a second.
// The spy sees the resolution LinkMetrics asks for, without waiting for any timer.
import test from "ava";
import { createRequire } from "node:module";

import { LinkMetrics, METRICS_LOOP_DELAY_RESOLUTION_MS } from "../../lib/link/metrics.ts";

/** The mutable CommonJS exports of node:perf_hooks (prom-client reads monitorEventLoopDelay from them at collect time). */
const perfHooks = createRequire(import.meta.url)("node:perf_hooks") as typeof import("node:perf_hooks");

test.serial("metrics: the default event-loop lag histogram samples at most once a second", async (t) => {
  const resolutions: (number | undefined)[] = [];
  const original = perfHooks.monitorEventLoopDelay;
  perfHooks.monitorEventLoopDelay = (options) => {
    resolutions.push(options?.resolution);
    return original(options);
  };
  let metrics: LinkMetrics;
  try {
    metrics = new LinkMetrics();
  } finally {
    perfHooks.monitorEventLoopDelay = original;
  }
  t.deepEqual(resolutions, [METRICS_LOOP_DELAY_RESOLUTION_MS], "one histogram, at the lunlink resolution");
  t.true(METRICS_LOOP_DELAY_RESOLUTION_MS >= 1000, "at most one wake-up a second");
  // The series are still exported.
  t.regex(await metrics.render(), /^nodejs_eventloop_lag_p99_seconds /m);
});

test.serial("metrics: without default metrics no event-loop histogram is created", (t) => {
  let created = 0;
  const original = perfHooks.monitorEventLoopDelay;
  perfHooks.monitorEventLoopDelay = (options) => {
    created++;
    return original(options);
  };
  try {
    new LinkMetrics({ defaultMetrics: false });
  } finally {
    perfHooks.monitorEventLoopDelay = original;
  }
  t.is(created, 0);
});
