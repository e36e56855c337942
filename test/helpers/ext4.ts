// A small ext4 file system on a loop device, mounted in a scratch directory, for ENOSPC tests.
// Teardown unmounts and detaches (teardowns run last-in first-out: unmount before detach).
import { join } from "node:path";
import { mkdir } from "node:fs/promises";
import type { ExecutionContext } from "ava";

import { run } from "./exec.ts";
import { attachLoop } from "./loop.ts";
import { sparseFile } from "./scratch.ts";

export async function mountExt4(t: ExecutionContext, sizeMiB: number): Promise<string> {
  const image = await sparseFile(t, sizeMiB * 1024 * 1024, "ext4.img");
  await run("mkfs.ext4", ["-q", "-F", "-m", "0", image]);
  const device = await attachLoop(t, image);
  const mountpoint = join(image, "..", "mnt");
  await mkdir(mountpoint);
  await run("mount", ["-t", "ext4", device, mountpoint]);
  t.teardown(() => run("umount", [mountpoint]).then(() => undefined));
  return mountpoint;
}
