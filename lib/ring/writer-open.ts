// What RingWriter.open decides about a send volume, as pure functions (the shell does the reads, the
// live-check wait and the superblock write): whether this node may write it (its key, its owner),
// the new epoch it starts (above every stamp on it, at the block after the highest record; keyed:
// with a fresh salt), what it carries forward from the status left there (the delivered mark, the
// cluster rows), and whether a status that moved during the live check shows another live writer.
import { AuthMode } from "../format/layout.ts";
import type { StatusBlock } from "../format/status.ts";
import type { Superblock } from "../format/superblock.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { RingKeys } from "./keys.ts";
import type { RingScan } from "./scan.ts";
import type { Ack } from "./writer-options.ts";

/** Refuses a keyed volume without its key, and another node's volume unless taken over. */
export function checkWriterOwner(path: string, superblock: Superblock, keyed: boolean, nodeId: number, takeOver: boolean): void {
  if (!keyed && superblock.authMode === AuthMode.Keyed) {
    throw new LunlinkError(ErrorCode.KeyRequired, `${path} is a keyed send volume (authMode keyed); a writer needs its ring key (auth.key)`, { path });
  }
  if (superblock.writerNode !== nodeId && !takeOver) {
    throw new LunlinkError(ErrorCode.NotOwner, `${path} is the send volume of node ${superblock.writerNode}, not of node ${nodeId}; use --take-over if that node is gone for good`, { path });
  }
}

/** The epoch a writer opening the volume starts: its superblock (durable before any record) and first seq. */
export function nextEpoch(superblock: Superblock, scan: Pick<RingScan, "highestSeq" | "nextBlock">, nodeId: number, keys: RingKeys | undefined, entropy: (lengthBytes: number) => Uint8Array): { superblock: Superblock; startSeq: bigint } {
  const startSeq = scan.highestSeq + 1n > superblock.epochStartSeq ? scan.highestSeq + 1n : superblock.epochStartSeq;
  const next: Superblock = {
    ...superblock,
    writerNode: nodeId,
    peerNode: superblock.peerNode === nodeId ? superblock.writerNode : superblock.peerNode,
    epoch: superblock.epoch + 1n,
    epochStartSeq: startSeq,
    epochStartBlock: scan.highestSeq > 0n ? scan.nextBlock : 0n,
    // Keyed: a fresh salt makes the epoch's record key fresh even if an epoch number came back.
    ...(keys === undefined ? {} : { salt: entropy(32), keyId: keys.keyId }),
  };
  return { superblock: next, startSeq };
}

/** The delivered mark the status left on the volume carries forward (never lowered by the new writer); none if it had none. */
export function carriedDelivered(persisted: StatusBlock | undefined): Ack | undefined {
  return persisted === undefined || persisted.deliveredSeq === 0n ? undefined : { epoch: persisted.deliveredEpoch, seq: persisted.deliveredSeq };
}

/**
 * Two nodes configured with the same id both pass the owner check at open: a status read before and
 * after liveCheckMs whose heartbeat, generation or epoch moved (or that appeared) shows a live writer:
 * the error to refuse the ring with, else undefined.
 */
export function liveWriter(path: string, before: StatusBlock | undefined, after: StatusBlock | undefined, liveCheckMs: number, nodeId: number): LunlinkError | undefined {
  if (after === undefined || (before !== undefined && after.heartbeat === before.heartbeat && after.generation === before.generation && after.epoch === before.epoch)) return undefined;
  return new LunlinkError(
    ErrorCode.NotOwner,
    `${path}: node id ${nodeId} is live on this ring (its status heartbeat moved from ${before?.heartbeat ?? "none"} to ${after.heartbeat} within ${liveCheckMs} ms): two nodes configured with the same id? This writer does not start`,
    { path },
  );
}
