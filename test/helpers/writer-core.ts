// A RingWriterCore for pure tests (fake time, buffers from plain memory, no keys): a ring of
// `ringBlocks` 4 KiB blocks at block 3 of a volume, epoch 2 starting at seq 1, block 0.
import type { Superblock } from "../../lib/format/superblock.ts";
import { AuthMode } from "../../lib/format/layout.ts";
import { RingWriterCore, type Indexed } from "../../lib/ring/writer-core.ts";
import { resolveOptions, type Ack, type RingWriterOptions } from "../../lib/ring/writer-options.ts";

export const B = 4096;

export interface TestCoreOptions {
  /** The writer's options (nodeId 1 and the caller's defaults merged by the caller). */
  options: Partial<RingWriterOptions>;
  ringBlocks: number;
  delivered?: Ack;
  existing?: Indexed[];
}

export function testWriterCore({ options, ringBlocks, delivered, existing }: TestCoreOptions): RingWriterCore {
  const superblock: Superblock = {
    volumeUuid: "00000000-0000-4000-8000-000000000001",
    pairUuid: "00000000-0000-4000-8000-000000000002",
    writerNode: 1,
    peerNode: 2,
    blockBytes: B,
    volumeBlocks: BigInt(ringBlocks + 4),
    ringStartBlock: 3n,
    ringBlocks: BigInt(ringBlocks),
    epoch: 2n,
    epochStartSeq: 1n,
    epochStartBlock: 0n,
    authMode: AuthMode.None,
    keyId: 0,
    salt: new Uint8Array(32),
    createdAtMs: 0n,
  };
  return new RingWriterCore({
    superblock,
    keys: undefined,
    options: resolveOptions({ nodeId: 1, ...options }),
    nowMs: 0,
    seq: 1n,
    headBlock: 0,
    oldestAtOpen: 0n,
    existing: existing ?? [],
    delivered,
    alloc: (n) => new Uint8Array(n),
    entropy: (n) => new Uint8Array(n),
  });
}
