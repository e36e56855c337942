// Benchmark scratch space: a directory under /var/tmp (ext4; tmpfs would be memory), files written
// through once (so no tool pays for block allocation inside a measurement), loop devices with
// --direct-io=on (so the loop driver does not serve O_DIRECT from page cache). All removed after.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";

export interface BenchScratch {
  dir: string;
  /** A fully written file of `bytes` in the scratch directory. */
  file(name: string, bytes: number): string;
  /** A loop device (dio=on) over a fully written file of `bytes`. */
  loop(name: string, bytes: number): string;
}

export async function withScratch<T>(run: (scratch: BenchScratch) => Promise<T>): Promise<T> {
  const dir = mkdtempSync("/var/tmp/lunlink-bench-");
  const loops: string[] = [];
  const file = (name: string, bytes: number): string => {
    const path = join(dir, name);
    execFileSync("fio", ["--name=fill", `--filename=${path}`, "--rw=write", "--bs=1M", `--size=${bytes}`, "--direct=1", "--ioengine=psync"], { stdio: "ignore" });
    return path;
  };
  // A benchmark stopped with Ctrl-C or a timeout still detaches its loop devices.
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const device of loops) {
      try {
        execFileSync("losetup", ["-d", device]);
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
    process.kill(process.pid, signal);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await run({
      dir,
      file,
      loop: (name, bytes) => {
        const device = execFileSync("losetup", ["--find", "--show", "--direct-io=on", file(name, bytes)], { encoding: "utf8" }).trim();
        loops.push(device);
        return device;
      },
    });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    for (const device of loops) execFileSync("losetup", ["-d", device]);
    rmSync(dir, { recursive: true, force: true });
  }
}
