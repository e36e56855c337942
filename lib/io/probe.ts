// probe: what a volume is, as `lunlink probe` prints it. Opens read-only with O_DIRECT (falling
// back to buffered only to tell the user that O_DIRECT is what failed), reads nothing.
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { VolumeKind } from "./geometry.ts";
import { Volume } from "./volume.ts";

export interface ProbeResult {
  path: string;
  kind: VolumeKind;
  sizeBytes: bigint;
  logicalBlockSize: number;
  physicalBlockSize: number;
  memoryAlignment: number;
  directIo: boolean;
  device: string;
  fileSystem?: string;
  memoryBacked: boolean;
  /** The I/O engine an open with default options gets here ("io_uring" or "threads"). */
  engine: string;
  /** Why io_uring is not used, when it is not. */
  engineFallback?: string;
  warnings: string[];
}

export async function probe(path: string, options: { ioTimeoutMs?: number } = {}): Promise<ProbeResult> {
  let directIo = true;
  let volume: Volume;
  const timeout = options.ioTimeoutMs === undefined ? {} : { ioTimeoutMs: options.ioTimeoutMs };
  try {
    volume = await Volume.open(path, { readOnly: true, direct: true, ioThreads: 1, ...timeout });
  } catch (error) {
    if (!(error instanceof LunlinkError) || error.code !== ErrorCode.NoDirectIo) throw error;
    directIo = false;
    volume = await Volume.open(path, { readOnly: true, direct: false, ioThreads: 1, ...timeout });
  }
  try {
    const g = volume.geometry;
    const warnings = [...volume.warnings];
    if (!directIo) warnings.push(`${path}: O_DIRECT is refused here; lunlink cannot use this volume`);
    const result: ProbeResult = {
      path,
      kind: g.kind,
      sizeBytes: g.sizeBytes,
      logicalBlockSize: g.logicalBlockSize,
      physicalBlockSize: g.physicalBlockSize,
      memoryAlignment: g.memoryAlignment,
      directIo,
      device: g.device,
      memoryBacked: g.memoryBacked,
      engine: volume.engine,
      warnings,
    };
    if (volume.engineFallback !== undefined) result.engineFallback = volume.engineFallback;
    if (g.fileSystem !== undefined) result.fileSystem = g.fileSystem;
    return result;
  } finally {
    await volume.close();
  }
}
