// Reading a node's own status block back: after a restart, the ack it persisted there (the
// highest (epoch, seq) of the peer's ring it had delivered) is the floor below which the peer's ring
// is refused (RingReader notBefore), so an old epoch restored onto the LUN is not delivered again.
// Keyed volumes: only a status whose MAC verifies under the ring key counts.
import { STATUS_SLOT_BLOCKS } from "../format/layout.ts";
import { decodeStatus, pickStatus } from "../format/status.ts";
import type { Volume } from "../io/volume.ts";
import { RingKeys, type RingAuth } from "./keys.ts";
import { openSuperblock } from "./superblocks.ts";
import type { Ack } from "./writer.ts";

export async function persistedAck(volume: Volume, auth?: RingAuth): Promise<Ack | undefined> {
  const keys = auth === undefined ? undefined : new RingKeys(auth);
  const { superblock } = await openSuperblock(volume, keys);
  const B = superblock.blockBytes;
  const mac = keys?.statusMac;
  const a = decodeStatus(await volume.read(STATUS_SLOT_BLOCKS[0] * B, B), mac);
  const b = decodeStatus(await volume.read(STATUS_SLOT_BLOCKS[1] * B, B), mac);
  const status = pickStatus(a, b);
  return status === undefined || status.ackSeq === 0n ? undefined : { epoch: status.ackEpoch, seq: status.ackSeq };
}
