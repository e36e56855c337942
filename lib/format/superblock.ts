// Superblock codec (pure), format version 2. Two copies: region blocks 0 and R-1. Byte layout
// (docs/format.md):
//   0 magic u32 | 4 version u16 | 6 encodedBytes u16 | 8 volumeUuid 16 | 24 pairUuid 16
//  40 writerNode u32 | 44 peerNode u32 | 48 blockBytes u32 | 52 nodeCount u16 | 54 regionIndex u16
//  56 volumeBlocks u64 (region blocks) | 64 ringStartBlock u64 | 72 ringBlocks u64 | 80 epoch u64
//  88 epochStartSeq u64 | 96 epochStartBlock u64 | 104 authMode u8 | 105 reserved 3 (0) | 108 keyId u32
// 112 salt 32 | 144 createdAtMs u64 | 152 regionStartBlock u64 | 160 reserved 8 (0) | 168 check 32
// (CRC32C of bytes 0..168 in its first 4 bytes; the rest zero when authMode is none, a truncated
// HMAC-SHA256 when keyed: sealed.ts) | 200 end. The rest of the block is zero. A reader trusts no
// field before the check passed; with a key, before the MAC passed. A version 1 superblock decodes as
// reason "version" (its check sits at 152, so it is recognised before the v2 check is tried).
import { AuthMode, FORMAT_VERSION, MAX_CLUSTER_NODES, MAX_CLUSTER_NODE_ID, MIN_CLUSTER_NODES, RING_START_BLOCK, SUPERBLOCK_MAGIC, isValidBlockSize, MIN_RING_BLOCKS } from "./layout.ts";
import { isSealProblem, seal, unseal } from "./sealed.ts";
import { readUuid, writeUuid } from "./uuid.ts";

export const SUPERBLOCK_BYTES = 200;
const CHECK_AT = 168;
/** Version 1's check offset: a v1 superblock is recognised by its own CRC and refused by version. */
const V1_CHECK_AT = 152;

/** Where a ring lies in a cluster volume; absent on a node volume (a pair's: node count 2, region 0 at block 0). */
export interface RegionPlace {
  nodeCount: number;
  regionIndex: number;
  /** Absolute block of region block 0 on the volume. */
  regionStartBlock: bigint;
}

export interface Superblock {
  volumeUuid: string;
  pairUuid: string;
  writerNode: number;
  peerNode: number;
  blockBytes: number;
  volumeBlocks: bigint;
  ringStartBlock: bigint;
  ringBlocks: bigint;
  epoch: bigint;
  epochStartSeq: bigint;
  epochStartBlock: bigint;
  authMode: AuthMode;
  keyId: number;
  salt: Uint8Array;
  createdAtMs: bigint;
  /** Set on a region of a cluster volume (docs/format.md, Cluster header). */
  region?: RegionPlace;
}

export type SuperblockDecode =
  | { ok: true; superblock: Superblock }
  | { ok: false; reason: "blank" | "magic" | "version" | "checksum" | "geometry" | "auth" | "downgrade"; detail: string };

/** Encodes and seals; `macKey` (keyed volumes, authMode keyed) adds the MAC to the check area. */
export function encodeSuperblock(sb: Superblock, out: Uint8Array, macKey?: Uint8Array): void {
  if (out.length < sb.blockBytes || out.length < SUPERBLOCK_BYTES) throw new Error("assertion failed: superblock buffer too small");
  if (sb.salt.length !== 32) throw new Error("assertion failed: salt must be 32 bytes");
  if ((macKey !== undefined) !== (sb.authMode === AuthMode.Keyed)) throw new Error("assertion failed: a MAC key exactly when authMode is keyed");
  out.fill(0, 0, sb.blockBytes);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(0, SUPERBLOCK_MAGIC, true);
  v.setUint16(4, FORMAT_VERSION, true);
  v.setUint16(6, SUPERBLOCK_BYTES, true);
  writeUuid(out, 8, sb.volumeUuid);
  writeUuid(out, 24, sb.pairUuid);
  v.setUint32(40, sb.writerNode, true);
  v.setUint32(44, sb.peerNode, true);
  v.setUint32(48, sb.blockBytes, true);
  v.setUint16(52, sb.region?.nodeCount ?? MIN_CLUSTER_NODES, true);
  v.setUint16(54, sb.region?.regionIndex ?? 0, true);
  v.setBigUint64(56, sb.volumeBlocks, true);
  v.setBigUint64(64, sb.ringStartBlock, true);
  v.setBigUint64(72, sb.ringBlocks, true);
  v.setBigUint64(80, sb.epoch, true);
  v.setBigUint64(88, sb.epochStartSeq, true);
  v.setBigUint64(96, sb.epochStartBlock, true);
  v.setUint8(104, sb.authMode);
  v.setUint32(108, sb.keyId, true);
  out.set(sb.salt, 112);
  v.setBigUint64(144, sb.createdAtMs, true);
  v.setBigUint64(152, sb.region?.regionStartBlock ?? 0n, true);
  seal(out, CHECK_AT, macKey);
}

/**
 * Decodes a superblock. With `macKey` only a keyed superblock whose MAC verifies is accepted (none:
 * "downgrade"; wrong: "auth"). Without one, the CRC32C is checked and a keyed superblock is returned
 * unverified (mirrors and inspection have no key); authMode none must then have a zero MAC area.
 */
export function decodeSuperblock(block: Uint8Array, macKey?: Uint8Array): SuperblockDecode {
  if (block.length < SUPERBLOCK_BYTES) return { ok: false, reason: "geometry", detail: `block of ${block.length} bytes` };
  const v = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const version = v.getUint16(4, true);
  if (version !== FORMAT_VERSION && v.getUint32(0, true) === SUPERBLOCK_MAGIC) {
    // An older (or newer) format: named by its version, not reported as a bad checksum. Version 1's
    // CRC is checked where version 1 keeps it, so a torn block is not mistaken for a v1 superblock.
    const older = unseal(block, SUPERBLOCK_MAGIC, version === 1 ? V1_CHECK_AT : CHECK_AT, "unverified");
    if (!isSealProblem(older)) return { ok: false, reason: "version", detail: `format version ${version}; this lunlink reads version ${FORMAT_VERSION}` };
  }
  // Keyless, authMode (covered by the CRC) says whether the MAC bytes may be set; checked below.
  const sealed = unseal(block, SUPERBLOCK_MAGIC, CHECK_AT, macKey ?? "unverified");
  if (isSealProblem(sealed)) return { ok: false, ...sealed };
  const authMode = v.getUint8(104);
  if (authMode === AuthMode.None && sealed.macPresent) {
    return macKey === undefined
      ? { ok: false, reason: "checksum", detail: "check area holds a MAC but authMode is none" }
      : { ok: false, reason: "downgrade", detail: "authMode none under a valid MAC" };
  }
  if (authMode === AuthMode.Keyed && !sealed.macPresent) return { ok: false, reason: "checksum", detail: "authMode keyed without a MAC" };
  if (version !== FORMAT_VERSION) {
    return { ok: false, reason: "version", detail: `format version ${version}; this lunlink reads version ${FORMAT_VERSION}` };
  }
  const sb: Superblock = {
    volumeUuid: readUuid(block, 8),
    pairUuid: readUuid(block, 24),
    writerNode: v.getUint32(40, true),
    peerNode: v.getUint32(44, true),
    blockBytes: v.getUint32(48, true),
    volumeBlocks: v.getBigUint64(56, true),
    ringStartBlock: v.getBigUint64(64, true),
    ringBlocks: v.getBigUint64(72, true),
    epoch: v.getBigUint64(80, true),
    epochStartSeq: v.getBigUint64(88, true),
    epochStartBlock: v.getBigUint64(96, true),
    authMode: authMode as AuthMode,
    keyId: v.getUint32(108, true),
    salt: block.slice(112, 144),
    createdAtMs: v.getBigUint64(144, true),
  };
  const nodeCount = v.getUint16(52, true);
  const regionIndex = v.getUint16(54, true);
  const regionStartBlock = v.getBigUint64(152, true);
  if (nodeCount !== MIN_CLUSTER_NODES || regionIndex !== 0 || regionStartBlock !== 0n) sb.region = { nodeCount, regionIndex, regionStartBlock };
  if (v.getBigUint64(160, true) !== 0n) return { ok: false, reason: "geometry", detail: "reserved bytes 160..168 are not zero" };
  const problem = geometryProblem(sb);
  if (problem !== undefined) return { ok: false, reason: "geometry", detail: problem };
  return { ok: true, superblock: sb };
}

/** Why a checksummed superblock still cannot describe a volume, or undefined if it can. */
export function geometryProblem(sb: Superblock): string | undefined {
  if (!isValidBlockSize(sb.blockBytes)) return `block size ${sb.blockBytes} is not a power of two in 4096..65536`;
  if (sb.ringStartBlock !== BigInt(RING_START_BLOCK)) return `ring starts at block ${sb.ringStartBlock}, expected ${RING_START_BLOCK}`;
  if (sb.ringBlocks < BigInt(MIN_RING_BLOCKS)) return `ring of ${sb.ringBlocks} blocks, at least ${MIN_RING_BLOCKS} needed`;
  if (sb.ringStartBlock + sb.ringBlocks + 1n !== sb.volumeBlocks) {
    return `ring ${sb.ringStartBlock}+${sb.ringBlocks} does not end one block before the last block ${sb.volumeBlocks - 1n}`;
  }
  if (sb.epochStartBlock >= sb.ringBlocks) return `epoch start block ${sb.epochStartBlock} is outside the ring of ${sb.ringBlocks} blocks`;
  if (sb.authMode !== AuthMode.None && sb.authMode !== AuthMode.Keyed) return `unknown authMode ${sb.authMode}`;
  const nodeCount = sb.region?.nodeCount ?? MIN_CLUSTER_NODES;
  if (nodeCount < MIN_CLUSTER_NODES || nodeCount > MAX_CLUSTER_NODES) return `node count ${nodeCount} is not in ${MIN_CLUSTER_NODES}..${MAX_CLUSTER_NODES}`;
  if (sb.region !== undefined) {
    if (sb.region.regionIndex >= nodeCount) return `region index ${sb.region.regionIndex} is not below the node count ${nodeCount}`;
    if (sb.region.regionStartBlock < 1n) return `a cluster region starts at block ${sb.region.regionStartBlock}, after the cluster header (block 0)`;
    if (sb.writerNode > MAX_CLUSTER_NODE_ID) return `cluster node id ${sb.writerNode} is above ${MAX_CLUSTER_NODE_ID}`;
  }
  if (nodeCount > MIN_CLUSTER_NODES) {
    if (sb.writerNode === 0 || sb.peerNode !== 0) return `a ring of a ${nodeCount}-node cluster names a writer (non-zero) and no single peer (0): writer ${sb.writerNode}, peer ${sb.peerNode}`;
  } else if (sb.writerNode === 0 || sb.peerNode === 0 || sb.writerNode === sb.peerNode) {
    return `node ids must be non-zero and different (writer ${sb.writerNode}, peer ${sb.peerNode})`;
  }
  return undefined;
}
