// Scratch space for device tests on a real disk file system (/var/tmp: ext4 here; tmpfs would be
// memory and ramfs refuses O_DIRECT). Every test gets its own directory, removed in teardown.
import { mkdtemp, rm, open } from "node:fs/promises";
import { join } from "node:path";
import type { ExecutionContext } from "ava";

export async function scratchDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp("/var/tmp/lunlink-test-");
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A sparse file of `sizeBytes` in a fresh scratch directory. */
export async function sparseFile(t: ExecutionContext, sizeBytes: number, name = "volume.img"): Promise<string> {
  return sparseFileIn(await scratchDir(t), sizeBytes, name);
}

/** A sparse file of `sizeBytes` named `name` in `dir` (a mounted test file system, say); removed with `dir`. */
export async function sparseFileIn(dir: string, sizeBytes: number, name = "volume.img"): Promise<string> {
  const path = join(dir, name);
  const handle = await open(path, "w");
  await handle.truncate(sizeBytes);
  await handle.close();
  return path;
}
