// Cluster volumes: the I/O shell around lib/format/cluster.ts. Formatting lays out N regions (each
// formatted as a node volume through a RegionVolume view, so sequences continue above any old stamps
// in it) and then the header (copy B, fdatasync, copy A, fdatasync: a crash leaves no valid header or
// a complete one). Opening a node's region checks that its superblock agrees with the header's entry
// (node, index, start, size, cluster UUID): a region copied elsewhere or a header pointing elsewhere is
// never used as that node's ring. Peer acks: node P's ack of our ring is P's status row about us.
// Keyed clusters: every region is keyed by its writer's clusterRingKey (one cluster secret, all
// regions keyed or none); after a restart, this node's own status rows about its peers (MACed) give
// each peer ring's replay floor (persistedPeerMarks).
import { CLUSTER_MAGIC, MAX_BLOCK_BYTES, MAX_CLUSTER_NODES, MAX_CLUSTER_NODE_ID, MIN_CLUSTER_NODES, MIN_VOLUME_BLOCKS } from "../format/layout.ts";
import { clusterProblem, decodeClusterHeader, encodeClusterHeader, planRegions, type ClusterDecode, type ClusterHeader } from "../format/cluster.ts";
import { decodeSuperblock } from "../format/superblock.ts";
import { peerRow, type StatusBlock } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { newUuid } from "../format/uuid.ts";
import { ErrorCode, LunlinkError, invalidArgument } from "../errors.ts";
import type { Volume } from "../io/volume.ts";
import { RegionVolume } from "./region.ts";
import { RingKeys, clusterRingKey, type RingAuth } from "./keys.ts";
import { readStatusSlots } from "./status.ts";
import { formatVolume, minimumBlockBytes, openSuperblock } from "./superblocks.ts";
import type { Ack } from "./writer-options.ts";

export interface ClusterFormatOptions {
  /** The member node ids (1..255, distinct), in region order: 2..16 of them. */
  nodes: readonly number[];
  /** Default: max(4096, logical, physical sector size). */
  blockBytes?: number;
  /** Blocks per region (default: the volume split evenly). */
  regionBlocks?: bigint;
  /** Overwrite a volume that already holds lunlink data where the headers or superblocks go. */
  force?: boolean;
  scanBatchBlocks?: number;
  /** Keyed cluster: the 32-byte cluster secret; every region is formatted keyed under its writer's clusterRingKey. */
  clusterSecret?: Uint8Array;
}

export interface ClusterFormatResult {
  header: ClusterHeader;
  superblocks: Superblock[];
  /** Highest stamp seq found in each region before formatting (sequences continue above it). */
  previousHighestSeqs: bigint[];
}

export async function formatCluster(volume: Volume, options: ClusterFormatOptions): Promise<ClusterFormatResult> {
  const nodes = options.nodes;
  if (nodes.length < MIN_CLUSTER_NODES || nodes.length > MAX_CLUSTER_NODES) throw invalidArgument("nodes", `${MIN_CLUSTER_NODES}..${MAX_CLUSTER_NODES} node ids`, nodes.length);
  for (const node of nodes) if (!Number.isInteger(node) || node < 1 || node > MAX_CLUSTER_NODE_ID) throw invalidArgument("nodes", `node ids in 1..${MAX_CLUSTER_NODE_ID}`, node);
  if (new Set(nodes).size !== nodes.length) throw invalidArgument("nodes", "distinct node ids", nodes.join(","));
  const minimum = minimumBlockBytes(volume);
  const B = options.blockBytes ?? minimum;
  if (!Number.isInteger(B) || B < minimum || B > MAX_BLOCK_BYTES || (B & (B - 1)) !== 0) throw invalidArgument("blockBytes", `a power of two in ${minimum}..${MAX_BLOCK_BYTES} for ${volume.path}`, B);
  const volumeBlocks = volume.geometry.sizeBytes / BigInt(B);
  const header: ClusterHeader = { clusterUuid: newUuid(), blockBytes: B, volumeBlocks, createdAtMs: BigInt(Date.now()), regions: planRegions(nodes, volumeBlocks, options.regionBlocks) };
  const problem = clusterProblem(header);
  if (problem !== undefined) {
    throw new LunlinkError(
      ErrorCode.VolumeTooSmall,
      `format ${volume.path} for ${nodes.length} nodes: ${problem} (each region needs at least ${MIN_VOLUME_BLOCKS} blocks of ${B} bytes, plus 2 header blocks)`,
      { path: volume.path },
    );
  }
  const first = volume.alloc(B);
  const last = volume.alloc(B);
  const lastOffset = (volumeBlocks - 1n) * BigInt(B);
  if (options.force !== true) {
    await volume.read(0, first);
    await volume.read(lastOffset, last);
    if (first.some((b) => b !== 0) || last.some((b) => b !== 0)) {
      throw new LunlinkError(ErrorCode.AlreadyFormatted, `format ${volume.path}: the volume already holds data where the cluster headers go (block 0 or the last block); use --force to overwrite it`, { path: volume.path });
    }
  }
  // Invalidate both header copies first, so no reader trusts a half-formatted cluster.
  first.fill(0);
  await volume.write(0, first);
  await volume.write(lastOffset, first);
  await volume.flush();
  const superblocks: Superblock[] = [];
  const previousHighestSeqs: bigint[] = [];
  for (const [i, entry] of header.regions.entries()) {
    const view = new RegionVolume(volume, entry.startBlock, entry.blocks, B, `node${entry.node}`);
    const peerNode = nodes.length === MIN_CLUSTER_NODES ? nodes[1 - i]! : 0;
    const result = await formatVolume(view.asVolume(), {
      writerNode: entry.node,
      peerNode,
      pairUuid: header.clusterUuid,
      blockBytes: B,
      force: true,
      region: { nodeCount: nodes.length, regionIndex: i, regionStartBlock: entry.startBlock },
      ...(options.clusterSecret === undefined ? {} : { auth: { key: clusterRingKey(options.clusterSecret, header.clusterUuid, entry.node) } }),
      ...(options.scanBatchBlocks === undefined ? {} : { scanBatchBlocks: options.scanBatchBlocks }),
    });
    await view.close();
    superblocks.push(result.superblock);
    previousHighestSeqs.push(result.previousHighestSeq);
  }
  encodeClusterHeader(header, first);
  await volume.write(lastOffset, first);
  await volume.flush();
  await volume.write(0, first);
  await volume.flush();
  return { header, superblocks, previousHighestSeqs };
}

/** Reads the cluster header: copy A, else copy B at the last block for each possible block size. */
export async function openCluster(volume: Volume): Promise<ClusterHeader> {
  const B0 = minimumBlockBytes(volume);
  const a = decodeClusterHeader(await volume.read(0, B0));
  let b: ClusterDecode | undefined;
  if (a.ok) {
    if (a.header.volumeBlocks * BigInt(a.header.blockBytes) > volume.geometry.sizeBytes) {
      throw new LunlinkError(ErrorCode.SuperblockConflict, `${volume.path}: the cluster header describes ${a.header.volumeBlocks} blocks of ${a.header.blockBytes} bytes, more than the volume's ${volume.geometry.sizeBytes} bytes`, { path: volume.path });
    }
    b = decodeClusterHeader(await volume.read((a.header.volumeBlocks - 1n) * BigInt(a.header.blockBytes), a.header.blockBytes));
  } else {
    for (let B = B0; B <= MAX_BLOCK_BYTES && b?.ok !== true; B *= 2) {
      const blocks = volume.geometry.sizeBytes / BigInt(B);
      if (blocks < 2n) break;
      b = decodeClusterHeader(await volume.read((blocks - 1n) * BigInt(B), B));
    }
  }
  if (a.ok && b?.ok === true && !sameHeader(a.header, b.header)) {
    throw new LunlinkError(ErrorCode.SuperblockConflict, `${volume.path}: the cluster header copies disagree (A: cluster ${a.header.clusterUuid}, B: cluster ${b.header.clusterUuid})`, { path: volume.path });
  }
  if (a.ok) return a.header;
  if (b?.ok === true) return b.header;
  const detail = `copy A: ${a.reason} (${a.detail}); copy B: ${b === undefined ? "not read" : b.ok ? "valid" : `${b.reason} (${b.detail})`}`;
  if (a.reason === "version" || (b?.ok === false && b.reason === "version")) {
    throw new LunlinkError(ErrorCode.FormatVersion, `${volume.path}: a cluster header of another format version (${detail}); reformat it with lunlink format --cluster --force`, { path: volume.path });
  }
  const node = decodeSuperblock(await volume.read(0, B0));
  const says = node.ok || node.reason === "version" ? "it is a node volume (superblock at block 0), not a cluster volume" : "no cluster header found";
  throw new LunlinkError(ErrorCode.NotFormatted, `${volume.path}: ${says} (${detail}); run lunlink format --cluster --nodes N`, { path: volume.path });
}

/** One node's region of a cluster volume as a volume view, after checking its superblock agrees with the header. */
export async function openRegion(volume: Volume, header: ClusterHeader, node: number): Promise<{ view: RegionVolume; superblock: Superblock }> {
  const index = header.regions.findIndex((r) => r.node === node);
  if (index < 0) {
    throw new LunlinkError(ErrorCode.BadConfig, `${volume.path}: node ${node} is not a member of cluster ${header.clusterUuid} (members ${header.regions.map((r) => r.node).join(", ")})`, { path: volume.path });
  }
  const entry = header.regions[index]!;
  const view = new RegionVolume(volume, entry.startBlock, entry.blocks, header.blockBytes, `node${node}`);
  try {
    const { superblock } = await openSuperblock(view.asVolume());
    const place = superblock.region;
    const agrees =
      superblock.pairUuid === header.clusterUuid &&
      superblock.writerNode === node &&
      superblock.blockBytes === header.blockBytes &&
      superblock.volumeBlocks === entry.blocks &&
      place !== undefined &&
      place.nodeCount === header.regions.length &&
      place.regionIndex === index &&
      place.regionStartBlock === entry.startBlock;
    if (!agrees) {
      throw new LunlinkError(
        ErrorCode.SuperblockConflict,
        `${view.path}: the region's superblock (cluster ${superblock.pairUuid}, writer ${superblock.writerNode}, region ${place?.regionIndex ?? "-"} of ${place?.nodeCount ?? 2} at block ${place?.regionStartBlock ?? 0n}) does not match the cluster header (cluster ${header.clusterUuid}, node ${node}, region ${index} of ${header.regions.length} at block ${entry.startBlock})`,
        { path: view.path },
      );
    }
    return { view, superblock };
  } catch (error) {
    await view.close();
    throw error;
  }
}

/** Does block 0 hold a cluster header's magic (a cluster volume, or a torn copy A of one)? */
export async function isClusterVolume(volume: Volume): Promise<boolean> {
  const block = await volume.read(0, minimumBlockBytes(volume));
  return new DataView(block.buffer, block.byteOffset, block.byteLength).getUint32(0, true) === CLUSTER_MAGIC;
}

/**
 * The ring `node` writes: on a cluster volume its region (checked against the header), on a node
 * volume the volume itself. The caller closes `volume`; the view needs no closing of its own.
 */
export async function ringOf(volume: Volume, node: number): Promise<Volume> {
  if (!(await isClusterVolume(volume))) return volume;
  return (await openRegion(volume, await openCluster(volume), node)).view.asVolume();
}

/** The ring auth of `writerNode`'s ring in cluster `clusterUuid` (undefined: an unkeyed cluster). */
export function clusterRingAuth(clusterSecret: Uint8Array | undefined, clusterUuid: string, writerNode: number): RingAuth | undefined {
  return clusterSecret === undefined ? undefined : { key: clusterRingKey(clusterSecret, clusterUuid, writerNode) };
}

/**
 * Keyed: the delivered mark of each peer's ring that this node persisted in its own (MACed) status
 * block, its row about that peer: the replay floor (RingReader notBefore) after a restart. Our own
 * superblock must verify under `auth` (else ERR_LUNLINK_WRONG_KEY / ERR_LUNLINK_DOWNGRADE).
 */
export async function persistedPeerMarks(volume: Volume, auth: RingAuth, peers: readonly number[]): Promise<Map<number, Ack>> {
  const keys = new RingKeys(auth);
  const { superblock } = await openSuperblock(volume, keys);
  const { status } = await readStatusSlots(volume, superblock.blockBytes, keys.statusMac);
  const marks = new Map<number, Ack>();
  if (status === undefined) return marks;
  for (const peer of peers) {
    const row = peerRow(status, peer);
    if (row !== undefined && row.deliveredSeq > 0n) marks.set(peer, { epoch: row.deliveredEpoch, seq: row.deliveredSeq });
  }
  return marks;
}

/** What one peer says about our ring: its ack row for us and its storage heartbeat. */
export interface PeerAck {
  node: number;
  ack: Ack | undefined;
  heartbeat: bigint;
}

/** Each peer's ack of `node`'s ring, read from every other region's status block (undefined ack: none valid yet). */
export async function readPeerAcks(volume: Volume, header: ClusterHeader, node: number): Promise<PeerAck[]> {
  const acks: PeerAck[] = [];
  for (const entry of header.regions) {
    if (entry.node === node) continue;
    const view = new RegionVolume(volume, entry.startBlock, entry.blocks, header.blockBytes, `node${entry.node}`);
    const { status } = await readStatusSlots(view.asVolume(), header.blockBytes, undefined);
    await view.close();
    acks.push(peerAckOf(entry.node, status, node));
  }
  return acks;
}

/** Peer `peer`'s ack of `node`'s ring in its status block (pure). */
export function peerAckOf(peer: number, status: StatusBlock | undefined, node: number): PeerAck {
  const row = status === undefined ? undefined : peerRow(status, node);
  const ack = row === undefined || row.ackSeq === 0n ? undefined : { epoch: row.ackEpoch, seq: row.ackSeq };
  return { node: peer, ack, heartbeat: status?.heartbeat ?? 0n };
}

function sameHeader(x: ClusterHeader, y: ClusterHeader): boolean {
  return (
    x.clusterUuid === y.clusterUuid &&
    x.blockBytes === y.blockBytes &&
    x.volumeBlocks === y.volumeBlocks &&
    x.regions.length === y.regions.length &&
    x.regions.every((r, i) => r.node === y.regions[i]!.node && r.startBlock === y.regions[i]!.startBlock && r.blocks === y.regions[i]!.blocks)
  );
}

