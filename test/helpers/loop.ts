// Loop devices for tests: attached with `losetup --find --show` (retried while another process
// races us for the same free device), always detached by name in teardown, even if the test failed.
import type { ExecutionContext } from "ava";

import { readFile } from "node:fs/promises";

import { run, sleep } from "./exec.ts";

export interface LoopOptions {
  sectorSize?: 512 | 1024 | 2048 | 4096;
  /** --direct-io=on: the loop driver does O_DIRECT on the backing file (no page cache in between). */
  directIo?: boolean;
}

export async function attachLoop(t: ExecutionContext, backingFile: string, options: LoopOptions = {}): Promise<string> {
  const args = ["--find", "--show"];
  if (options.sectorSize !== undefined) args.push("--sector-size", String(options.sectorSize));
  if (options.directIo === true) args.push("--direct-io=on");
  args.push(backingFile);
  let lastError: unknown;
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const device = (await run("losetup", args)).trim();
      t.teardown(() => detachLoop(device));
      if (options.directIo === true) await ensureDirectIo(device);
      return device;
    } catch (error) {
      lastError = error;
      if (!/busy|EBUSY|resource temporarily/i.test(String(error))) break;
      await sleep(50 * (attempt + 1));
    }
  }
  throw lastError;
}

export async function detachLoop(device: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      await run("losetup", ["-d", device]);
      return;
    } catch (error) {
      if (!/busy/i.test(String(error))) throw error;
      await sleep(100);
    }
  }
}

/**
 * The loop driver falls back to buffered I/O on the backing file without saying so when it cannot
 * do direct I/O at attach time; reads are then served from page cache (a stalled backing device
 * would not stall them). Sets it again until /sys says dio = 1, or says why not.
 */
async function ensureDirectIo(device: string): Promise<void> {
  const flag = `/sys/block/${device.replace("/dev/", "")}/loop/dio`;
  for (let attempt = 0; attempt < 10; attempt++) {
    if ((await readFile(flag, "utf8")).trim() === "1") return;
    await run("losetup", ["--direct-io=on", device]).catch(() => undefined);
    await sleep(50 * (attempt + 1));
  }
  throw new Error(`${device}: the loop driver refuses direct I/O on its backing file (${flag} stays 0)`);
}
