// What a benchmark ran on, printed above every table: numbers are only comparable within one run.
import { cpus, release } from "node:os";
import { execFileSync } from "node:child_process";

export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  let fio = "fio not found";
  try {
    fio = execFileSync("fio", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    // reported as missing
  }
  return `machine: ${cpus().length} x ${cpu}, Linux ${release()}, Node ${process.version}, ${fio}`;
}
