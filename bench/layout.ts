// `npm run bench -- layout`: should the cold structures (superblock, status block, inspect output)
// be described with buffer-layout, the declarative codec the design card names, instead of the
// hand-written DataView codecs in lib/format? Measures a superblock's field decode both ways (same
// 200 bytes, in memory, one core) beside the full lib decode (fields + CRC32C), and checks 64-bit
// precision: buffer-layout's nu64 yields a JS number, exact only below 2^53, where the format's
// sequence numbers, epochs and block counts are u64.
import { blob, nu64, struct, u16, u32, u8 } from "buffer-layout";
import { performance } from "node:perf_hooks";

import { AuthMode } from "../lib/format/layout.ts";
import { SUPERBLOCK_BYTES, decodeSuperblock, encodeSuperblock, type Superblock } from "../lib/format/superblock.ts";
import { newUuid, readUuid } from "../lib/format/uuid.ts";
import { machineLine } from "./machine.ts";
import { table } from "./stats.ts";

const superblockLayout = struct([
  u32("magic"), u16("version"), u16("encodedBytes"), blob(16, "volumeUuid"), blob(16, "pairUuid"),
  u32("writerNode"), u32("peerNode"), u32("blockBytes"), u32("reserved"),
  nu64("volumeBlocks"), nu64("ringStartBlock"), nu64("ringBlocks"), nu64("epoch"), nu64("epochStartSeq"), nu64("epochStartBlock"),
  u8("authMode"), blob(3, "reserved2"), u32("keyId"), blob(32, "salt"), nu64("createdAtMs"), blob(32, "check"),
]);

// The same fields through a DataView, as lib/format/superblock.ts reads them (bigint for u64).
function dataViewFields(b: Uint8Array) {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    magic: v.getUint32(0, true), version: v.getUint16(4, true), volumeUuid: readUuid(b, 8), pairUuid: readUuid(b, 24),
    writerNode: v.getUint32(40, true), peerNode: v.getUint32(44, true), blockBytes: v.getUint32(48, true),
    volumeBlocks: v.getBigUint64(56, true), ringStartBlock: v.getBigUint64(64, true), ringBlocks: v.getBigUint64(72, true),
    epoch: v.getBigUint64(80, true), epochStartSeq: v.getBigUint64(88, true), epochStartBlock: v.getBigUint64(96, true),
    authMode: v.getUint8(104), keyId: v.getUint32(108, true), salt: b.subarray(112, 144), createdAtMs: v.getBigUint64(144, true),
  };
}

function nsPerCall(f: () => unknown): number {
  for (let i = 0; i < 20_000; i++) f();
  const n = 300_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f();
  return ((performance.now() - t0) * 1e6) / n;
}

export async function layoutBench(): Promise<void> {
  console.log("# layout: superblock decode, buffer-layout vs DataView, in memory, one core");
  console.log(machineLine());
  const sb: Superblock = {
    volumeUuid: newUuid(), pairUuid: newUuid(), writerNode: 1, peerNode: 2, blockBytes: 4096,
    volumeBlocks: 262144n, ringStartBlock: 3n, ringBlocks: 262140n, epoch: 7n,
    epochStartSeq: 2n ** 53n + 1n, epochStartBlock: 1234n, authMode: AuthMode.None, keyId: 0,
    salt: new Uint8Array(32).fill(9), createdAtMs: BigInt(Date.now()),
  };
  const block = Buffer.alloc(4096);
  encodeSuperblock(sb, block);
  const viaLayout = superblockLayout.decode(block) as { epochStartSeq: number; volumeUuid: Buffer };
  const viaView = dataViewFields(block);
  const layoutNs = nsPerCall(() => superblockLayout.decode(block));
  const viewNs = nsPerCall(() => dataViewFields(block));
  const libNs = nsPerCall(() => decodeSuperblock(block));
  console.log(
    table(
      ["decoder", "ns per superblock", "x DataView fields", "u64 field 2^53+1 reads as"],
      [
        ["buffer-layout struct (nu64)", layoutNs.toFixed(0), (layoutNs / viewNs).toFixed(2), String(viaLayout.epochStartSeq)],
        ["DataView fields (bigint)", viewNs.toFixed(0), "1.00", String(viaView.epochStartSeq)],
        ["lib decodeSuperblock (fields + CRC32C + checks)", libNs.toFixed(0), (libNs / viewNs).toFixed(2), String((decodeSuperblock(block) as { ok: true; superblock: Superblock }).superblock.epochStartSeq)],
      ],
    ),
  );
  const exact = BigInt(viaLayout.epochStartSeq) === sb.epochStartSeq;
  console.log(`buffer-layout nu64: ${exact ? "exact" : `NOT exact (wrote ${sb.epochStartSeq}, read ${viaLayout.epochStartSeq})`}; superblock is ${SUPERBLOCK_BYTES} bytes`);
}
