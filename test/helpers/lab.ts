// The two-host lab (lib/node/lab.ts) for end-to-end tests: built with the test namespace prefix,
// both nodes up and healthy on both paths before the test starts, destroyed in teardown (with the
// nodes' transitions and errors in the test log if it failed).
import type { ExecutionContext } from "ava";

import { Lab, type LabOptions } from "../../lib/node/lab.ts";
import { NETNS_PREFIX } from "./netns.ts";

export async function upLab(t: ExecutionContext, options: Omit<LabOptions, "prefix"> = {}): Promise<Lab> {
  const logs: string[] = [];
  const lab = await Lab.create({ prefix: NETNS_PREFIX, volumeBytes: 32 * 1024 * 1024, ...options, onLog: (node, line) => {
      if (logs.length < 2000) logs.push(`${node} ${line}`);
      options.onLog?.(node, line);
    },
  });
  t.teardown(async () => {
    if (!t.passed) t.log(logs.filter((l) => l.includes("transition") || l.includes("error")).slice(-40).join("\n"));
    await lab.destroy();
  });
  await lab.startPair();
  return lab;
}
