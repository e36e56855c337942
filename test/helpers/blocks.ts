// Superblock and status block values for tests: a valid one, with fields overridden, and the block
// it encodes to (through the real encoders, so no test copies the on-disk layout).
import { randomBytes } from "node:crypto";

import { AuthMode, RING_START_BLOCK } from "../../lib/format/layout.ts";
import { encodeStatus, type StatusBlock } from "../../lib/format/status.ts";
import type { Superblock } from "../../lib/format/superblock.ts";
import { newUuid } from "../../lib/format/uuid.ts";

export function superblockFixture(overrides: Partial<Superblock> = {}): Superblock {
  return {
    volumeUuid: newUuid(),
    pairUuid: newUuid(),
    writerNode: 1,
    peerNode: 2,
    blockBytes: 4096,
    volumeBlocks: 1024n,
    ringStartBlock: BigInt(RING_START_BLOCK),
    ringBlocks: 1020n,
    epoch: 1n,
    epochStartSeq: 1n,
    epochStartBlock: 0n,
    authMode: AuthMode.None,
    keyId: 0,
    salt: new Uint8Array(randomBytes(32)),
    createdAtMs: 1_764_000_000_000n,
    ...overrides,
  };
}

export function statusFixture(overrides: Partial<StatusBlock> = {}): StatusBlock {
  return {
    slot: 0,
    volumeUuid: newUuid(),
    epoch: 1n,
    generation: 1n,
    headSeq: 10n,
    headBlock: 5n,
    oldestSeq: 1n,
    ackEpoch: 1n,
    ackSeq: 3n,
    heartbeat: 99n,
    deliveredEpoch: 1n,
    deliveredSeq: 2n,
    wallClockMs: 1_764_000_000_000n,
    ...overrides,
  };
}

/** `status` as a block of `blockBytes` on the volume: encoded and sealed (MACed with `macKey`) by lib/format. */
export function statusBlockBytes(status: StatusBlock, blockBytes: number, macKey?: Uint8Array): Uint8Array {
  const block = new Uint8Array(blockBytes);
  encodeStatus(status, block, macKey);
  return block;
}
