// Runs fio with JSON output and extracts bandwidth, latency percentiles and CPU.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface FioResult {
  bytesPerSecond: number;
  latencyUsP50: number;
  latencyUsP99: number;
  cpuPercent: number;
}

interface FioJob {
  read: FioDirection;
  write: FioDirection;
  usr_cpu: number;
  sys_cpu: number;
}
interface FioDirection {
  bw_bytes: number;
  lat_ns?: { percentile?: Record<string, number> };
  clat_ns?: { percentile?: Record<string, number> };
}

export async function fio(args: string[]): Promise<FioResult> {
  const { stdout } = await execFileAsync("fio", [...args, "--output-format=json", "--lat_percentiles=1", "--group_reporting"], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const report = JSON.parse(stdout.slice(stdout.indexOf("{"))) as { jobs: FioJob[] };
  const job = report.jobs[0];
  if (job === undefined) throw new Error("fio printed no job");
  const dir = job.write.bw_bytes > 0 ? job.write : job.read;
  const pct = dir.lat_ns?.percentile ?? dir.clat_ns?.percentile ?? {};
  return {
    bytesPerSecond: dir.bw_bytes,
    latencyUsP50: (pct["50.000000"] ?? Number.NaN) / 1000,
    latencyUsP99: (pct["99.000000"] ?? Number.NaN) / 1000,
    cpuPercent: job.usr_cpu + job.sys_cpu,
  };
}
