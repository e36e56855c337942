// Reading a volume's status block: the one reader of both slots (blocks 1 and 2, adjacent: one read),
// used by the RingReader (the peer's head, ack and heartbeat) and by persistedDelivered: after a
// restart, the delivered mark a keyed node persisted in its own status block (the highest
// authenticated (epoch, seq) of the peer's ring it had delivered) is the floor below which the peer's
// ring is refused (RingReader notBefore).
// Keyed volumes: only a slot whose MAC verifies counts.
import { STATUS_SLOT_BLOCKS } from "../format/layout.ts";
import { decodeStatus, pickStatus, type StatusBlock, type StatusDecode } from "../format/status.ts";
import type { Volume } from "../io/volume.ts";
import { RingKeys, type RingAuth } from "./keys.ts";
import { openSuperblock } from "./superblocks.ts";

export interface StatusRead {
  slots: readonly [StatusDecode, StatusDecode];
  /** Both slots as read (a fault is identified by its bytes). */
  bytes: Uint8Array;
  /** The valid slot with the higher (epoch, generation), if any. */
  status: StatusBlock | undefined;
}

/**
 * Reads (into a buffer of its own) and decodes both slots. `mac`: the status MAC key (keyed),
 * "unverified" (a keyed volume read without its key) or undefined (unkeyed).
 */
export async function readStatusSlots(volume: Volume, blockBytes: number, mac: Uint8Array | "unverified" | undefined): Promise<StatusRead> {
  if (STATUS_SLOT_BLOCKS[1] !== STATUS_SLOT_BLOCKS[0] + 1) throw new Error("assertion failed: status slots are adjacent blocks");
  const both = await volume.read(STATUS_SLOT_BLOCKS[0] * blockBytes, 2 * blockBytes);
  const slots = [decodeStatus(both.subarray(0, blockBytes), mac), decodeStatus(both.subarray(blockBytes), mac)] as const;
  return { slots, bytes: both, status: pickStatus(slots[0], slots[1]) };
}

/** The keyed replay floor this node persisted: its status block's delivered mark, undefined if none yet. */
export async function persistedDelivered(volume: Volume, auth?: RingAuth): Promise<{ epoch: bigint; seq: bigint } | undefined> {
  const keys = auth === undefined ? undefined : new RingKeys(auth);
  const { superblock } = await openSuperblock(volume, keys);
  const { status } = await readStatusSlots(volume, superblock.blockBytes, keys?.statusMac);
  return status === undefined || status.deliveredSeq === 0n ? undefined : { epoch: status.deliveredEpoch, seq: status.deliveredSeq };
}
