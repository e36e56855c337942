// Volume geometry as lunlink reports it: size, sector sizes and what the device is, from the
// addon's BLKGETSIZE64/BLKSSZGET/BLKPBSZGET (block devices) or fstat/statx/fstatfs (files).
import type { NativeGeometry } from "./native.ts";

export type VolumeKind = "block" | "file";

export interface VolumeGeometry {
  kind: VolumeKind;
  sizeBytes: bigint;
  /** Offsets and lengths of every I/O must be multiples of this (O_DIRECT). */
  logicalBlockSize: number;
  physicalBlockSize: number;
  /** Buffer addresses must be multiples of this; lunlink always aligns to logicalBlockSize or more. */
  memoryAlignment: number;
  /** "major:minor" of the block device, or of the device holding the file. */
  device: string;
  /** The file system holding a file volume ("ext4", "tmpfs", ...); undefined for block devices. */
  fileSystem?: string;
  /** True when the volume lives in RAM (tmpfs): it does not survive a reboot and is not shared storage. */
  memoryBacked: boolean;
}

// statfs(2) f_type magics for the file systems a volume file is likely to sit on.
const FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0xef53, "ext4"],
  [0x58465342, "xfs"],
  [0x9123683e, "btrfs"],
  [0x01021994, "tmpfs"],
  [0x858458f6, "ramfs"],
  [0x6969, "nfs"],
  [0x65735546, "fuse"],
  [0x794c7630, "overlayfs"],
  [0x2fc12fc1, "zfs"],
  [0x47504653, "gpfs"],
  [0x0bd00bd0, "lustre"],
  [0xff534d42, "cifs"],
  [0x01161970, "gfs2"],
  [0x7461636f, "ocfs2"],
]);

const TMPFS_MAGIC = 0x01021994;

export function geometryFrom(native: NativeGeometry): VolumeGeometry {
  const geometry: VolumeGeometry = {
    kind: native.isBlockDevice ? "block" : "file",
    sizeBytes: native.sizeBytes,
    logicalBlockSize: native.logicalBlockSize,
    physicalBlockSize: native.physicalBlockSize,
    memoryAlignment: Math.max(native.memoryAlignment, native.logicalBlockSize),
    device: `${native.deviceMajor}:${native.deviceMinor}`,
    memoryBacked: !native.isBlockDevice && native.fsMagic === TMPFS_MAGIC,
  };
  if (!native.isBlockDevice) {
    geometry.fileSystem = FILE_SYSTEMS.get(native.fsMagic) ?? `0x${native.fsMagic.toString(16)}`;
  }
  return geometry;
}

export function fileSystemName(magic: number | bigint): string {
  const m = Number(magic);
  return FILE_SYSTEMS.get(m) ?? `0x${m.toString(16)}`;
}
