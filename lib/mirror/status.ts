// Mirror status for any mirror mode (local, remote, hook, or the array's own replication): reads the
// send volume and its copy (O_DIRECT, read-only) and compares them. Lag in records is the source's
// status head minus the copy's (the copy's head is what reached it: lunlink mirrors cap it at what
// they copied; an array copies it as is); lag in ms is how much older the newest status block on the
// copy is than the source's (both stamped by the writer's clock, so no clock skew enters). The copy's
// ring is scanned for its newest intact record (the last copied).
import { AuthMode } from "../format/layout.ts";
import type { StatusBlock } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { Volume } from "../io/volume.ts";
import { inspectRing } from "../ring/inspect.ts";
import { readStatusSlots } from "../ring/status.ts";
import { openSuperblock } from "../ring/superblocks.ts";

export interface MirrorSideStatus {
  path: string;
  volumeUuid: string | null;
  pairUuid: string | null;
  epoch: bigint | null;
  /** Next seq the writer will use, as this volume's status block says. */
  headSeq: bigint | null;
  /** Writer's wall clock when this status block was written. */
  statusWallMs: bigint | null;
  /** Newest intact record in the ring (the copy: the last one copied). */
  newestSeq: bigint | null;
  /** Why the volume could not be read as a lunlink volume (blank copy, conflict...). */
  problem: string | null;
}

export interface MirrorStatusReport {
  source: MirrorSideStatus;
  destination: MirrorSideStatus;
  /** "in-sync", "lagging", "not-a-copy" (another volume), "not-copied" (blank or unreadable copy). */
  state: "in-sync" | "lagging" | "not-a-copy" | "not-copied";
  lagRecords: bigint | null;
  lagMs: number | null;
}

/** One volume as a side of the report, and its status block (undefined if neither slot is valid). */
async function side(volume: Volume, scanRing: boolean): Promise<[MirrorSideStatus, StatusBlock | undefined]> {
  const base: MirrorSideStatus = { path: volume.path, volumeUuid: null, pairUuid: null, epoch: null, headSeq: null, statusWallMs: null, newestSeq: null, problem: null };
  let superblock: Superblock;
  try {
    superblock = (await openSuperblock(volume)).superblock;
  } catch (error) {
    if (error instanceof LunlinkError) return [{ ...base, problem: `${error.code}: ${error.message}` }, undefined];
    throw error;
  }
  const B = superblock.blockBytes;
  const mac = superblock.authMode === AuthMode.Keyed ? "unverified" : undefined; // a mirror has no key
  const { status } = await readStatusSlots(volume, B, mac);
  const ring = scanRing ? await inspectRing(volume, superblock) : undefined;
  const report = {
    ...base,
    volumeUuid: superblock.volumeUuid,
    pairUuid: superblock.pairUuid,
    epoch: superblock.epoch,
    headSeq: status?.headSeq ?? null,
    statusWallMs: status?.wallClockMs ?? null,
    newestSeq: ring?.newestSeq ?? null,
  };
  return [report, status];
}

export async function mirrorStatus(source: Volume, destination: Volume): Promise<MirrorStatusReport> {
  const [src, sourceStatus] = await side(source, false);
  const [dst, copyStatus] = await side(destination, true);
  const report: MirrorStatusReport = { source: src, destination: dst, state: "not-copied", lagRecords: null, lagMs: null };
  if (src.volumeUuid === null) throw new LunlinkError(ErrorCode.NotFormatted, `mirror status: the source ${source.path} is not a lunlink volume (${src.problem})`);
  if (dst.volumeUuid === null) return report;
  if (dst.volumeUuid !== src.volumeUuid) {
    report.state = "not-a-copy";
    return report;
  }
  if (sourceStatus !== undefined && copyStatus !== undefined) {
    // Sequences never repeat on a volume and grow across epochs, so heads compare across epochs too.
    report.lagRecords = sourceStatus.headSeq > copyStatus.headSeq ? sourceStatus.headSeq - copyStatus.headSeq : 0n;
    report.lagMs = Math.max(0, Number(sourceStatus.wallClockMs - copyStatus.wallClockMs));
  }
  report.state = report.lagRecords === 0n && dst.epoch === src.epoch ? "in-sync" : "lagging";
  return report;
}
