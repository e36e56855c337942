// Loop devices for tests: attached by lib/node/lab-plumbing.ts's attachLoop (retried while another
// process races us for the same free device; direct I/O checked), always detached by name in
// teardown, even if the test failed.
import type { ExecutionContext } from "ava";

import { attachLoop as attach, detachLoop, type LoopOptions } from "../../lib/node/lab-plumbing.ts";

export async function attachLoop(t: ExecutionContext, backingFile: string, options: LoopOptions = {}): Promise<string> {
  const device = await attach(backingFile, options);
  t.teardown(() => detachLoop(device));
  return device;
}
