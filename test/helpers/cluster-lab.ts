// The cluster lab (lib/node/cluster-lab.ts) for device tests: built with the test namespace prefix and
// the test scratch prefix (so scripts/sweep-test-leftovers.sh recognises a killed run's leftovers),
// destroyed in the test's teardown, with the nodes' transitions and errors in the test log if it failed.
import type { ExecutionContext } from "ava";

import { ClusterLab as Lab, type ClusterLabOptions } from "../../lib/node/cluster-lab.ts";
import { NETNS_PREFIX } from "./netns.ts";

export type { ClusterLabNode } from "../../lib/node/cluster-lab.ts";
export type ClusterLab = Lab;

export const ClusterLab = {
  /** Builds the namespaces, the switch, the rings (one shared cluster volume, or per-node volumes and mirrors) and every node's config; nodes not started. */
  async create(t: ExecutionContext, count: number, config: Record<string, unknown> = {}, layout: Pick<ClusterLabOptions, "layout" | "remoteMirror"> = {}): Promise<ClusterLab> {
    const lab = await Lab.create({ count, prefix: NETNS_PREFIX, dirPrefix: "/var/tmp/lunlink-test-", config, ...layout });
    t.teardown(async () => {
      await lab.destroy();
      if (!t.passed) t.log(lab.logs.filter((l) => /transition|error|"level":[45]0/.test(l)).slice(-60).join("\n"));
    });
    return lab;
  },
};
