// A small ext4 file system on a loop device, mounted in a scratch directory, for ENOSPC tests.
// Teardown unmounts and detaches (teardowns run last-in first-out: unmount before detach).
import { join } from "node:path";
import { mkdir, open } from "node:fs/promises";
import type { ExecutionContext } from "ava";

import { run } from "./exec.ts";
import { attachLoop } from "./loop.ts";
import { sparseFile, sparseFileIn } from "./scratch.ts";

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

/**
 * Fills the file system at `mountpoint` with a file of 1 MiB chunks (each synced, so delayed
 * allocation cannot hide the shortage) until a write fails or `maxMiB` are written; returns the
 * filler's path (remove it to give the space back).
 */
export async function fillFileSystem(mountpoint: string, maxMiB: number): Promise<string> {
  const path = join(mountpoint, "filler");
  const filler = await open(path, "w");
  const chunk = Buffer.alloc(1024 * 1024, 1);
  try {
    for (let i = 0; i < maxMiB; i++) {
      try {
        await filler.write(chunk);
        await filler.sync();
      } catch {
        break;
      }
    }
  } finally {
    await filler.close();
  }
  return path;
}

/**
 * ENOSPC on demand: a sparse file of `sizeBytes` on a fresh `fileSystemMiB` ext4 that is then filled,
 * so writing any hole of the file fails with ENOSPC until `filler` is removed.
 */
export async function sparseFileOnFullExt4(t: ExecutionContext, sizeBytes: number, fileSystemMiB = 16): Promise<{ path: string; filler: string }> {
  const mountpoint = await mountExt4(t, fileSystemMiB);
  const path = await sparseFileIn(mountpoint, sizeBytes);
  /** Four times the file system: fillFileSystem stops at the first failed write long before. */
  const filler = await fillFileSystem(mountpoint, 4 * fileSystemMiB);
  return { path, filler };
}
