// Formatting a send volume and reading its superblocks: the I/O shell around lib/format's codecs.
// Format order (docs/format.md): scan the ring for the highest stamp seq (so sequences never repeat,
// even across a reformat), invalidate both superblock copies, write the status slots, write copy B,
// fdatasync, write copy A, fdatasync. A crash at any point leaves no valid superblock, or a complete one.
// Keyed (RingKeys given): superblock and status are MACed; opening with keys accepts only a superblock
// whose MAC verifies (a keyless one is a downgrade, a wrong MAC a wrong key), without keys a keyed
// superblock is returned unverified (mirrors, inspection).
import { randomBytes } from "node:crypto";

import { AuthMode, CLUSTER_MAGIC, FORMAT_VERSION, MAX_BLOCK_BYTES, MIN_BLOCK_BYTES, MIN_CLUSTER_NODES, MIN_VOLUME_BLOCKS, RING_START_BLOCK, STATUS_SLOT_BLOCKS } from "../format/layout.ts";
import { encodeStatus } from "../format/status.ts";
import { decodeSuperblock, encodeSuperblock, type RegionPlace, type Superblock, type SuperblockDecode } from "../format/superblock.ts";
import { isUuid, newUuid } from "../format/uuid.ts";
import { ErrorCode, LunlinkError, invalidArgument } from "../errors.ts";
import type { Volume } from "../io/volume.ts";
import { RingKeys, keyIdText, type RingAuth } from "./keys.ts";
import { scanRing } from "./scan.ts";

export interface FormatOptions {
  writerNode: number;
  /** The pair's peer; 0 on a region of a cluster of more than two nodes (every member reads it). */
  peerNode: number;
  /** Formatting a region of a cluster volume (lib/ring/cluster.ts): its place, kept in the superblock. */
  region?: RegionPlace;
  /** Shared by both volumes of a pair; a new one is made if absent. */
  pairUuid?: string;
  /** Default: max(4096, logical, physical sector size). */
  blockBytes?: number;
  /** Default: the whole volume. */
  ringBlocks?: bigint;
  /** Overwrite a volume that already holds a lunlink superblock. */
  force?: boolean;
  /** Ring blocks read per request while scanning for old stamps (default 256). */
  scanBatchBlocks?: number;
  /** Keyed mode: authMode keyed, the superblock and status MACed under keys derived from auth.key. */
  auth?: RingAuth;
}

export interface FormatResult {
  superblock: Superblock;
  /** Highest stamp seq found in the ring before formatting (0 if none). */
  previousHighestSeq: bigint;
}

/** The block size a volume must use: max(4096, logical, physical). */
export function minimumBlockBytes(volume: Volume): number {
  return Math.max(MIN_BLOCK_BYTES, volume.geometry.logicalBlockSize, volume.geometry.physicalBlockSize);
}

export async function formatVolume(volume: Volume, options: FormatOptions): Promise<FormatResult> {
  const minimum = minimumBlockBytes(volume);
  const B = options.blockBytes ?? minimum;
  if (!Number.isInteger(B) || B < minimum || B > MAX_BLOCK_BYTES || (B & (B - 1)) !== 0) {
    throw invalidArgument("blockBytes", `a power of two in ${minimum}..${MAX_BLOCK_BYTES} for ${volume.path}`, B);
  }
  const manyNodes = (options.region?.nodeCount ?? MIN_CLUSTER_NODES) > MIN_CLUSTER_NODES;
  for (const key of manyNodes ? (["writerNode"] as const) : (["writerNode", "peerNode"] as const)) {
    const node = options[key];
    if (!Number.isInteger(node) || node < 1 || node > 0xffffffff) throw invalidArgument(key, "an integer in 1..4294967295", node);
  }
  if (manyNodes && options.peerNode !== 0) throw invalidArgument("peerNode", "0 on a ring of a cluster of more than two nodes (every member reads it)", options.peerNode);
  if (options.writerNode === options.peerNode) throw invalidArgument("peerNode", `a node id other than the writer's (${options.writerNode})`, options.peerNode);
  const keys = options.auth === undefined ? undefined : new RingKeys(options.auth);
  const pairUuid = options.pairUuid ?? newUuid();
  if (!isUuid(pairUuid)) throw invalidArgument("pairUuid", "a lower-case RFC 4122 UUID", pairUuid);

  const available = volume.geometry.sizeBytes / BigInt(B);
  const volumeBlocks = options.ringBlocks === undefined ? available : options.ringBlocks + BigInt(RING_START_BLOCK + 1);
  if (volumeBlocks < BigInt(MIN_VOLUME_BLOCKS) || volumeBlocks > available) {
    throw new LunlinkError(
      ErrorCode.VolumeTooSmall,
      `format ${volume.path}: ${volumeBlocks} blocks of ${B} bytes needed (at least ${MIN_VOLUME_BLOCKS}), the volume holds ${available}`,
      { path: volume.path },
    );
  }
  const ringBlocks = volumeBlocks - BigInt(RING_START_BLOCK + 1);

  if (options.force !== true) {
    const existing = await readSuperblocks(volume, B, volumeBlocks);
    if (existing.a.ok || existing.b.ok || existing.a.reason !== "blank" || existing.b.reason !== "blank") {
      throw new LunlinkError(
        ErrorCode.AlreadyFormatted,
        `format ${volume.path}: the volume already holds data where lunlink's superblocks go (copy A: ${describeDecode(existing.a)}, copy B: ${describeDecode(existing.b)}); use --force to overwrite it`,
        { path: volume.path },
      );
    }
  }

  const previousHighestSeq = (await scanRing(volume, B, ringBlocks, options.scanBatchBlocks ?? 256)).highestSeq;
  const superblock: Superblock = {
    volumeUuid: newUuid(),
    pairUuid,
    writerNode: options.writerNode,
    peerNode: options.peerNode,
    blockBytes: B,
    volumeBlocks,
    ringStartBlock: BigInt(RING_START_BLOCK),
    ringBlocks,
    epoch: 1n,
    epochStartSeq: previousHighestSeq + 1n,
    epochStartBlock: 0n,
    authMode: keys === undefined ? AuthMode.None : AuthMode.Keyed,
    keyId: keys?.keyId ?? 0,
    salt: new Uint8Array(randomBytes(32)),
    createdAtMs: BigInt(Date.now()),
    ...(options.region === undefined ? {} : { region: options.region }),
  };
  const block = volume.alloc(B);
  const lastOffset = (volumeBlocks - 1n) * BigInt(B);
  // 1. Invalidate both copies, so no reader trusts a half-formatted volume.
  await volume.write(0, block);
  await volume.write(lastOffset, block);
  await volume.flush();
  // 2. Status: slot 0 names the head; slot 1 blank.
  encodeStatus(
    {
      slot: 0,
      volumeUuid: superblock.volumeUuid,
      epoch: 1n,
      generation: 1n,
      headSeq: superblock.epochStartSeq,
      headBlock: 0n,
      oldestSeq: superblock.epochStartSeq,
      ackEpoch: 0n,
      ackSeq: 0n,
      heartbeat: 0n,
      deliveredEpoch: 0n,
      deliveredSeq: 0n,
      wallClockMs: superblock.createdAtMs,
    },
    block,
    keys?.statusMac,
  );
  await volume.write(STATUS_SLOT_BLOCKS[0] * B, block);
  block.fill(0);
  await volume.write(STATUS_SLOT_BLOCKS[1] * B, block);
  // 3. Copy B, sync, copy A, sync.
  await writeSuperblock(volume, superblock, keys);
  return { superblock, previousHighestSeq };
}

export interface SuperblockPair {
  a: SuperblockDecode;
  b: SuperblockDecode;
}

/** Writes a superblock the safe way: copy B, fdatasync, copy A, fdatasync. */
export async function writeSuperblock(volume: Volume, superblock: Superblock, keys?: RingKeys): Promise<void> {
  const block = volume.alloc(superblock.blockBytes);
  encodeSuperblock(superblock, block, keys?.superblockMac);
  await volume.write((superblock.volumeBlocks - 1n) * BigInt(superblock.blockBytes), block);
  await volume.flush();
  await volume.write(0, block);
  await volume.flush();
}

/** Reads copies A (block 0) and B (block volumeBlocks-1). */
async function readSuperblocks(volume: Volume, blockBytes: number, volumeBlocks: bigint, keys?: RingKeys): Promise<SuperblockPair> {
  const a = decodeSuperblock(await volume.read(0, blockBytes), keys?.superblockMac);
  const b = decodeSuperblock(await volume.read((volumeBlocks - 1n) * BigInt(blockBytes), blockBytes), keys?.superblockMac);
  return { a, b };
}

/**
 * Opens the superblock of a formatted volume: copy A tells the geometry, copy B is checked against it.
 * Both valid and agreeing -> the higher epoch; valid but naming another volume or geometry ->
 * ERR_LUNLINK_SUPERBLOCK_CONFLICT; one valid -> it (`repair` says which copy a writer must rewrite).
 * With keys, "valid" means the MAC verified; neither copy verifying is ERR_LUNLINK_DOWNGRADE (the volume
 * is not keyed) or ERR_LUNLINK_WRONG_KEY (keyed under another key, or another pair's volume).
 */
export async function openSuperblock(volume: Volume, keys?: RingKeys): Promise<{ superblock: Superblock; repair: "none" | "a" | "b" }> {
  const B0 = minimumBlockBytes(volume);
  const mac = keys?.superblockMac;
  const blockA = await volume.read(0, B0 > 65536 ? 65536 : B0);
  const a = decodeSuperblock(blockA, mac);
  // Copy A gives B and N; without it, try copy B at the end for each possible block size.
  let b: SuperblockDecode | undefined;
  if (a.ok) {
    const { blockBytes, volumeBlocks } = a.superblock;
    if (volumeBlocks * BigInt(blockBytes) > volume.geometry.sizeBytes) {
      throw new LunlinkError(ErrorCode.SuperblockConflict, `${volume.path}: the superblock describes ${volumeBlocks} blocks of ${blockBytes} bytes, more than the volume's ${volume.geometry.sizeBytes} bytes`, { path: volume.path });
    }
    b = decodeSuperblock(await volume.read((volumeBlocks - 1n) * BigInt(blockBytes), blockBytes), mac);
  } else {
    for (let B = B0; B <= MAX_BLOCK_BYTES && b?.ok !== true; B *= 2) {
      const blocks = volume.geometry.sizeBytes / BigInt(B);
      if (blocks < BigInt(MIN_VOLUME_BLOCKS)) break;
      b = decodeSuperblock(await volume.read((blocks - 1n) * BigInt(B), B), mac);
      if (b.ok && b.superblock.blockBytes !== B) b = { ok: false, reason: "geometry", detail: `copy B says block size ${b.superblock.blockBytes}, found at ${B}` };
    }
  }
  if (a.ok && b?.ok === true) {
    const x = a.superblock;
    const y = b.superblock;
    if (x.volumeUuid !== y.volumeUuid || x.pairUuid !== y.pairUuid || x.blockBytes !== y.blockBytes || x.volumeBlocks !== y.volumeBlocks) {
      throw new LunlinkError(
        ErrorCode.SuperblockConflict,
        `${volume.path}: superblock copies disagree (A: volume ${x.volumeUuid}, ${x.volumeBlocks} x ${x.blockBytes}; B: volume ${y.volumeUuid}, ${y.volumeBlocks} x ${y.blockBytes})`,
        { path: volume.path },
      );
    }
    if (x.epoch === y.epoch) return { superblock: x, repair: "none" };
    return x.epoch > y.epoch ? { superblock: x, repair: "b" } : { superblock: y, repair: "a" };
  }
  if (a.ok) return { superblock: a.superblock, repair: "b" };
  if (b?.ok === true) return { superblock: b.superblock, repair: "a" };
  const reasons = [a.reason, b?.ok === false ? b.reason : undefined];
  if (reasons.includes("version")) {
    const found = a.reason === "version" ? a.detail : b?.ok === false ? b.detail : "";
    throw new LunlinkError(
      ErrorCode.FormatVersion,
      `${volume.path} holds a lunlink volume of another format (${found}); this lunlink reads format version ${FORMAT_VERSION} only: run lunlink format --force on it (sequences continue above the old ring's; docs/format.md, Versioning)`,
      { path: volume.path },
    );
  }
  if (new DataView(blockA.buffer, blockA.byteOffset, blockA.byteLength).getUint32(0, true) === CLUSTER_MAGIC) {
    throw new LunlinkError(ErrorCode.NotFormatted, `${volume.path} is a cluster volume (cluster header at block 0), not a node volume: name the ring's node (lunlink append --node N, lunlink tail --writer W; docs/format.md)`, { path: volume.path });
  }
  if (keys !== undefined && (reasons.includes("auth") || reasons.includes("downgrade"))) {
    throw keyedOpenError(volume, keys, !reasons.includes("auth"), a, blockA);
  }
  throw new LunlinkError(
    ErrorCode.NotFormatted,
    `${volume.path} is not a lunlink volume of format version ${FORMAT_VERSION} (copy A: ${describeDecode(a)}; copy B: ${b === undefined ? "not read" : describeDecode(b)}); run lunlink format`,
    { path: volume.path },
  );
}

/** Why a keyed open failed, naming what the (unverified) superblock claims against what was configured. */
function keyedOpenError(volume: Volume, keys: RingKeys, downgrade: boolean, a: SuperblockDecode, blockA: Uint8Array): LunlinkError {
  const claimed = decodeSuperblock(blockA);
  const says = claimed.ok
    ? `it claims (unverified) authMode ${claimed.superblock.authMode === AuthMode.Keyed ? "keyed" : "none"}, key id ${keyIdText(claimed.superblock.keyId)}, pair ${claimed.superblock.pairUuid}, writer node ${claimed.superblock.writerNode}`
    : `copy A: ${describeDecode(a)}`;
  if (downgrade) {
    return new LunlinkError(
      ErrorCode.Downgrade,
      `${volume.path}: downgrade refused: a ring key is configured (key id ${keyIdText(keys.keyId)}), expected a keyed volume (authMode keyed), found one without authentication (${says}); format it with the key`,
      { path: volume.path },
    );
  }
  return new LunlinkError(
    ErrorCode.WrongKey,
    `${volume.path}: the superblock MAC does not verify under the configured ring key (key id ${keyIdText(keys.keyId)}); ${says}: wrong key, or another pair's volume`,
    { path: volume.path },
  );
}

function describeDecode(d: SuperblockDecode): string {
  return d.ok ? `valid, volume ${d.superblock.volumeUuid}` : `${d.reason} (${d.detail})`;
}
