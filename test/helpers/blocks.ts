// Superblock and status block values for codec tests: a valid one, with fields overridden.
import { randomBytes } from "node:crypto";

import { AuthMode, RING_START_BLOCK } from "../../lib/format/layout.ts";
import type { StatusBlock } from "../../lib/format/status.ts";
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
