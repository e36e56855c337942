// Cluster header codec (pure), format version 2: blocks 0 and V-1 of a cluster volume name its N
// regions (one send ring per node, like SBD's slots). Byte layout (docs/format.md):
//   0 magic "LLCL" u32 | 4 version u16 | 6 encodedBytes u16 | 8 clusterUuid 16 | 24 blockBytes u32
//  28 nodeCount u16 | 30 reserved u16 | 32 volumeBlocks u64 | 40 createdAtMs u64
//  48 region table 16 x 24 {node u32, reserved u32, startBlock u64, blocks u64} | 432 check 32 | 464.
// CRC-only even on keyed clusters: the header is geometry; each region's (MACed) superblock repeats
// its place, and a region is used only when both agree. Regions are equal, back to back from block 1.
import { CLUSTER_MAGIC, FORMAT_VERSION, MAX_CLUSTER_NODES, MAX_CLUSTER_NODE_ID, MIN_CLUSTER_NODES, MIN_VOLUME_BLOCKS, isValidBlockSize } from "./layout.ts";
import { isSealProblem, seal, unseal } from "./sealed.ts";
import { readUuid, writeUuid } from "./uuid.ts";

export const CLUSTER_HEADER_BYTES = 464;
const CHECK_AT = 432;
const TABLE_AT = 48;
const ENTRY_BYTES = 24;
/** Region 0 starts right after header copy A. */
export const FIRST_REGION_BLOCK = 1n;

export interface ClusterRegion {
  /** The node that writes this region (1..255). */
  node: number;
  startBlock: bigint;
  blocks: bigint;
}

export interface ClusterHeader {
  clusterUuid: string;
  blockBytes: number;
  volumeBlocks: bigint;
  createdAtMs: bigint;
  /** One per node, in region order (2..16). */
  regions: readonly ClusterRegion[];
}

export type ClusterDecode = { ok: true; header: ClusterHeader } | { ok: false; reason: "blank" | "magic" | "version" | "checksum" | "geometry"; detail: string };

/** The regions of a V-block volume split among `nodes` (in that order), each `regionBlocks` long (default: all of it). */
export function planRegions(nodes: readonly number[], volumeBlocks: bigint, regionBlocks?: bigint): ClusterRegion[] {
  const blocks = regionBlocks ?? (volumeBlocks - 2n) / BigInt(nodes.length);
  return nodes.map((node, i) => ({ node, startBlock: FIRST_REGION_BLOCK + BigInt(i) * blocks, blocks }));
}

export function encodeClusterHeader(header: ClusterHeader, out: Uint8Array): void {
  if (out.length < header.blockBytes || out.length < CLUSTER_HEADER_BYTES) throw new Error("assertion failed: cluster header buffer too small");
  const problem = clusterProblem(header);
  if (problem !== undefined) throw new Error(`assertion failed: cluster header: ${problem}`);
  out.fill(0, 0, header.blockBytes);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(0, CLUSTER_MAGIC, true);
  v.setUint16(4, FORMAT_VERSION, true);
  v.setUint16(6, CLUSTER_HEADER_BYTES, true);
  writeUuid(out, 8, header.clusterUuid);
  v.setUint32(24, header.blockBytes, true);
  v.setUint16(28, header.regions.length, true);
  v.setBigUint64(32, header.volumeBlocks, true);
  v.setBigUint64(40, header.createdAtMs, true);
  header.regions.forEach((region, i) => {
    const at = TABLE_AT + i * ENTRY_BYTES;
    v.setUint32(at, region.node, true);
    v.setBigUint64(at + 8, region.startBlock, true);
    v.setBigUint64(at + 16, region.blocks, true);
  });
  seal(out, CHECK_AT);
}

export function decodeClusterHeader(block: Uint8Array): ClusterDecode {
  if (block.length < CLUSTER_HEADER_BYTES) return { ok: false, reason: "geometry", detail: `block of ${block.length} bytes` };
  const sealed = unseal(block, CLUSTER_MAGIC, CHECK_AT);
  if (isSealProblem(sealed)) return { ok: false, reason: sealed.reason === "blank" || sealed.reason === "magic" ? sealed.reason : "checksum", detail: sealed.detail };
  const v = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const version = v.getUint16(4, true);
  if (version !== FORMAT_VERSION) return { ok: false, reason: "version", detail: `cluster header version ${version}; this lunlink reads version ${FORMAT_VERSION}` };
  const count = v.getUint16(28, true);
  if (count < MIN_CLUSTER_NODES || count > MAX_CLUSTER_NODES) return { ok: false, reason: "geometry", detail: `node count ${count} is not in ${MIN_CLUSTER_NODES}..${MAX_CLUSTER_NODES}` };
  if (v.getUint16(30, true) !== 0 || block.subarray(TABLE_AT + count * ENTRY_BYTES, CHECK_AT).some((b) => b !== 0)) {
    return { ok: false, reason: "geometry", detail: "reserved bytes or unused region entries are not zero" };
  }
  const regions: ClusterRegion[] = [];
  for (let i = 0; i < count; i++) {
    const at = TABLE_AT + i * ENTRY_BYTES;
    if (v.getUint32(at + 4, true) !== 0) return { ok: false, reason: "geometry", detail: `region ${i}: reserved bytes are not zero` };
    regions.push({ node: v.getUint32(at, true), startBlock: v.getBigUint64(at + 8, true), blocks: v.getBigUint64(at + 16, true) });
  }
  const header: ClusterHeader = {
    clusterUuid: readUuid(block, 8),
    blockBytes: v.getUint32(24, true),
    volumeBlocks: v.getBigUint64(32, true),
    createdAtMs: v.getBigUint64(40, true),
    regions,
  };
  const problem = clusterProblem(header);
  return problem === undefined ? { ok: true, header } : { ok: false, reason: "geometry", detail: problem };
}

/** Why a header cannot describe a cluster volume: block size, node ids, regions equal, back to back, inside. */
export function clusterProblem(h: ClusterHeader): string | undefined {
  if (!isValidBlockSize(h.blockBytes)) return `block size ${h.blockBytes} is not a power of two in 4096..65536`;
  const n = h.regions.length;
  if (n < MIN_CLUSTER_NODES || n > MAX_CLUSTER_NODES) return `node count ${n} is not in ${MIN_CLUSTER_NODES}..${MAX_CLUSTER_NODES}`;
  const seen = new Set<number>();
  const first = h.regions[0]!;
  if (first.blocks < BigInt(MIN_VOLUME_BLOCKS)) return `regions of ${first.blocks} blocks, at least ${MIN_VOLUME_BLOCKS} needed`;
  for (const [i, r] of h.regions.entries()) {
    if (!Number.isInteger(r.node) || r.node < 1 || r.node > MAX_CLUSTER_NODE_ID) return `region ${i}: node id ${r.node} is not in 1..${MAX_CLUSTER_NODE_ID}`;
    if (seen.has(r.node)) return `node id ${r.node} names two regions`;
    seen.add(r.node);
    if (r.blocks !== first.blocks) return `region ${i} has ${r.blocks} blocks, region 0 ${first.blocks}: regions are equal`;
    if (r.startBlock !== FIRST_REGION_BLOCK + BigInt(i) * first.blocks) return `region ${i} starts at block ${r.startBlock}, expected ${FIRST_REGION_BLOCK + BigInt(i) * first.blocks}`;
  }
  const end = FIRST_REGION_BLOCK + BigInt(n) * first.blocks;
  if (end > h.volumeBlocks - 1n) return `regions end at block ${end}, past the last header copy at ${h.volumeBlocks - 1n}`;
  return undefined;
}
