// The ends of a mirror of one region of a cluster volume (docs/format.md: a peer reads a region
// directly or from a mirror copy). A region view is a volume to the ring code, so every mirror mode
// copies it unchanged; this module only picks the views. Source: node N's region, checked against the
// cluster header. Destination: the same region of a cluster volume that carries the source's header
// (same cluster, same place: a reader there checks the region against it), or the whole of any other
// destination (a node volume copy of the region, or a blank one). Views never own their base volume.
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { ClusterHeader } from "../format/cluster.ts";
import type { Superblock } from "../format/superblock.ts";
import type { Volume } from "../io/volume.ts";
import { isClusterVolume, openCluster, openRegion } from "../ring/cluster.ts";
import { RegionVolume } from "../ring/region.ts";

/**
 * The node id a mirror's (framing-only) reader opens a ring as: the pair's peer; on a ring of a cluster
 * of more than two nodes (peer 0: every member reads it) any id but the writer's, as a mirror is no
 * member and the reader only checks that it is not reading its own ring.
 */
export function mirrorReaderNode(superblock: Pick<Superblock, "writerNode" | "peerNode">): number {
  if (superblock.peerNode !== 0) return superblock.peerNode;
  return superblock.writerNode === 1 ? 2 : 1;
}

/** Node `node`'s region of the cluster volume `volume` as a mirror source, and the volume's header. */
export async function regionSource(volume: Volume, node: number): Promise<{ source: Volume; header: ClusterHeader }> {
  if (!(await isClusterVolume(volume))) {
    throw new LunlinkError(ErrorCode.InvalidArgument, `--region ${node}: ${volume.path} is not a cluster volume (no cluster header at block 0); mirror a node volume without --region`, { path: volume.path });
  }
  const header = await openCluster(volume);
  const { view } = await openRegion(volume, header, node);
  return { source: view.asVolume(), header };
}

/**
 * Where a copy of node `node`'s region goes: on a cluster volume its region `node` by the
 * destination's own header, which must match `sourceHeader` when given (cluster UUID, region start
 * and size: else no reader could use the copy); on anything else the whole destination.
 */
export async function regionDestination(destination: Volume, node: number, sourceHeader?: ClusterHeader): Promise<Volume> {
  if (!(await isClusterVolume(destination))) return destination;
  const header = await openCluster(destination);
  const entry = header.regions.find((r) => r.node === node);
  if (entry === undefined) {
    throw new LunlinkError(ErrorCode.BadConfig, `${destination.path}: node ${node} has no region in cluster ${header.clusterUuid} (members ${header.regions.map((r) => r.node).join(", ")})`, { path: destination.path });
  }
  const wanted = sourceHeader?.regions.find((r) => r.node === node);
  if (sourceHeader !== undefined && (header.clusterUuid !== sourceHeader.clusterUuid || header.blockBytes !== sourceHeader.blockBytes || wanted?.startBlock !== entry.startBlock || wanted.blocks !== entry.blocks)) {
    throw new LunlinkError(
      ErrorCode.WrongPair,
      `${destination.path}: a cluster volume of cluster ${header.clusterUuid} (node ${node}'s region at block ${entry.startBlock}, ${entry.blocks} blocks), not a copy of cluster ${sourceHeader.clusterUuid} (at block ${wanted?.startBlock}, ${wanted?.blocks} blocks): a reader would refuse the region; copy onto a node volume or a cluster volume carrying the source's header`,
      { path: destination.path },
    );
  }
  return new RegionVolume(destination, entry.startBlock, entry.blocks, header.blockBytes, `node${node}`).asVolume();
}
