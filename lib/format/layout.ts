// On-disk format version 2: the fixed numbers every codec and the spec (docs/format.md) share.
// Region layout in blocks of B bytes: 0 superblock copy A | 1-2 status slots | 3..R-2 ring | R-1
// superblock copy B. A node volume is one region; a cluster volume is a header copy, N regions, a
// header copy. All integers little-endian. Changing any number here changes the format.
/** Version of the superblock, the status block and the cluster header. */
export const FORMAT_VERSION = 2;
/** Version of the record header: records did not change in format version 2. */
export const RECORD_VERSION = 1;

/** B = max(4096, logical, physical sector size), a power of two, fixed at format time. */
export const MIN_BLOCK_BYTES = 4096;
export const MAX_BLOCK_BYTES = 65536;

// Magics: ASCII tags read as little-endian u32 ("LLSB" = 4c 4c 53 42 on disk).
export const SUPERBLOCK_MAGIC = 0x42534c4c; // "LLSB"
export const STATUS_MAGIC = 0x54534c4c; // "LLST"
export const STAMP_MAGIC = 0x4b424c4c; // "LLBK"
export const RECORD_MAGIC = 0x43524c4c; // "LLRC"
export const CLUSTER_MAGIC = 0x4c434c4c; // "LLCL"

/** A cluster has 2..16 nodes, so a status block carries at most 15 peer rows. */
export const MIN_CLUSTER_NODES = 2;
export const MAX_CLUSTER_NODES = 16;
export const MAX_PEER_ROWS = MAX_CLUSTER_NODES - 1;
/** Cluster node ids fit the frame's destination byte (0 = broadcast). */
export const MAX_CLUSTER_NODE_ID = 255;
/** Frame destination byte: every reader of the ring delivers the frame. */
export const BROADCAST = 0;

export const STATUS_SLOT_BLOCKS: readonly [number, number] = [1, 2];
export const RING_START_BLOCK = 3;
/** Superblocks A and B, two status slots, and a ring of at least this many blocks. */
export const MIN_RING_BLOCKS = 8;
export const MIN_VOLUME_BLOCKS = RING_START_BLOCK + MIN_RING_BLOCKS + 1;

/** Every ring block starts with a stamp: {magic u32, blockIndex u16, blockCount u16, seq u64}. */
export const STAMP_BYTES = 16;
/** Stamp (16) + record header (80): the payload starts here in a record's first block. */
export const RECORD_HEADER_END = 96;
/** A record spans at most this many blocks (4 MiB at B = 4096); bounds every reader allocation. */
export const MAX_RECORD_BLOCKS = 1024;

/** Frames: [type u8][flags u8][length u16][bytes]. */
export const FRAME_HEADER_BYTES = 4;
export const MAX_FRAME_BYTES = 65535;

export const RecordKind = { Batch: 1, Pad: 2 } as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

export const RecordFlag = {
  /** Body is AEAD ciphertext and bodyCheck is its tag (authMode != none). */
  Authenticated: 1 << 0,
  /** Holds a frame that must not be overwritten before the peer acked it (control). */
  NoOverwrite: 1 << 1,
} as const;

export const FrameType = { Heartbeat: 1, Control: 2, Data: 3 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const AuthMode = { None: 0, Keyed: 1 } as const;
export type AuthMode = (typeof AuthMode)[keyof typeof AuthMode];

/** Payload bytes a record of `blocks` blocks carries: every block loses its stamp, block 0 the header too. */
export function payloadCapacity(blockBytes: number, blocks: number): number {
  return blocks * (blockBytes - STAMP_BYTES) - (RECORD_HEADER_END - STAMP_BYTES);
}

/** Blocks needed for `payloadBytes` of frames. */
export function blocksForPayload(blockBytes: number, payloadBytes: number): number {
  const extra = payloadBytes - (blockBytes - RECORD_HEADER_END);
  return extra <= 0 ? 1 : 1 + Math.ceil(extra / (blockBytes - STAMP_BYTES));
}

export function isValidBlockSize(blockBytes: number): boolean {
  return (
    Number.isInteger(blockBytes) &&
    blockBytes >= MIN_BLOCK_BYTES &&
    blockBytes <= MAX_BLOCK_BYTES &&
    (blockBytes & (blockBytes - 1)) === 0
  );
}
