// codec: the hot path of the format, in memory. (1) checksum implementations side by side, the
// measurement behind lib/format/checksum.ts's choice; (2) RecordBuilder encode and record
// validate+decode throughput for 64 B, 1 KiB and 9000 B frames in records of up to 64 KiB, unkeyed
// (XXH3-128 body check) and keyed (ChaCha20-Poly1305 AEAD, authMode keyed) side by side; (3) the
// record AEAD alone, us per seal and per open of a 1-block and a 17-block record: the addon's
// in-place segment cipher (lib/io/aead.ts, the product's) beside node:crypto doing the same steps
// (the pre-#13 record cipher, kept here only as the reference row).
import { crc32c as nodeRsCrc32c } from "@node-rs/crc32";
import { createCRC32, createXXHash128 } from "hash-wasm";
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";

import { FrameType, MAX_FRAME_BYTES, RECORD_HEADER_END } from "../lib/format/layout.ts";
import type { SegmentAead } from "../lib/format/aead.ts";
import { RecordCipher } from "../lib/format/record-cipher.ts";
import { addonAead } from "../lib/io/aead.ts";
import { RecordBuilder, checkBody, checkFirstBlock, forEachFrame } from "../lib/format/record.ts";
import { newUuid, uuidBytes } from "../lib/format/uuid.ts";
import { machineLine } from "./machine.ts";
import { table } from "./stats.ts";

// Plain table-driven CRC32C: the baseline any native or WASM implementation must beat.
const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  CRC_TABLE[n] = c;
}
function tableCrc32c(b: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 255]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

function timeIt(size: number, f: (b: Uint8Array) => unknown): { nsPerCall: number; gbps: number } {
  const b = new Uint8Array(randomBytes(size));
  const n = Math.max(200, Math.floor(1e8 / Math.max(size, 400)));
  for (let i = 0; i < 500; i++) f(b);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f(b);
  const ms = performance.now() - t0;
  return { nsPerCall: (ms * 1e6) / n, gbps: (size * n) / ms / 1e6 };
}

export async function codecBench(): Promise<void> {
  console.log("# codec: checksums and record encode/decode, in memory, one core");
  console.log(machineLine());
  const wasmCrc = await createCRC32(0x82f63b78);
  const wasmXxh = await createXXHash128();
  const impls: [string, (b: Uint8Array) => unknown][] = [
    ["CRC32C @node-rs/crc32 (chosen)", (b) => nodeRsCrc32c(b as Buffer)],
    ["CRC32C hash-wasm", (b) => (wasmCrc.init(), wasmCrc.update(b), wasmCrc.digest("binary"))],
    ["CRC32C JS table", tableCrc32c],
    ["XXH3-128 hash-wasm (chosen)", (b) => (wasmXxh.init(), wasmXxh.update(b), wasmXxh.digest("binary"))],
  ];
  const rows: string[][] = [];
  for (const [name, f] of impls) {
    const row = [name];
    for (const size of [92, 4096, 65536, 1048576]) {
      if (name.includes("JS table") && size > 65536) {
        row.push("-");
        continue;
      }
      const r = timeIt(size, f);
      row.push(`${r.nsPerCall.toFixed(0)} ns, ${r.gbps.toFixed(2)} GB/s`);
    }
    rows.push(row);
  }
  console.log(table(["implementation", "92 B (header)", "4 KiB", "64 KiB", "1 MiB"], rows));

  const blockBytes = 4096;
  const maxBlocks = 17; // 64 KiB of payload plus stamps and header
  const uuid = uuidBytes(newUuid());
  const buffer = new Uint8Array(maxBlocks * blockBytes);
  const builder = new RecordBuilder(buffer, blockBytes, maxBlocks);
  const scratch = new Uint8Array(MAX_FRAME_BYTES);
  const recordRows: string[][] = [];
  const cipher = new RecordCipher(addonAead, new Uint8Array(randomBytes(32)), 1n);
  const work = new Uint8Array(maxBlocks * blockBytes);
  for (const frameBytes of [64, 1024, 9000]) {
    const plainRates: number[] = [];
    for (const keyed of [false, true]) {
      const auth = keyed ? { cipher, ringBlock: 7 } : undefined;
      const payload = new Uint8Array(randomBytes(frameBytes));
      const records = 2000;
      let frames = 0;
      let bytes = 0;
      let seq = 1n;
      const t0 = performance.now();
      for (let r = 0; r < records; r++) {
        builder.reset();
        while (builder.append(FrameType.Data, 0, payload)) frames++;
        builder.finish({ volumeUuid: uuid, epoch: 1n, seq: seq++, timestampMs: 0n }, undefined, auth);
        bytes += builder.bytes;
      }
      const encodeMs = performance.now() - t0;
      // Decode the last record repeatedly from a fresh copy (a keyed check decrypts in place, as the
      // reader does in its record buffer): validate header and body, walk every frame.
      const lastSeq = seq - 1n;
      const length = builder.blocks * blockBytes;
      let delivered = 0;
      const visit = (): void => void delivered++;
      const t1 = performance.now();
      for (let r = 0; r < records; r++) {
        work.set(buffer.subarray(0, length));
        const first = checkFirstBlock(work, blockBytes, lastSeq, uuid);
        if (first.kind !== "header") throw new Error(first.kind);
        if (checkBody(work, blockBytes, first.header, auth).kind !== "valid") throw new Error("invalid");
        const problem = forEachFrame(work, blockBytes, first.header, scratch, visit);
        if (problem !== undefined) throw new Error(problem);
      }
      const decodeMs = performance.now() - t1;
      const decodedBytes = builder.bytes * records;
      const encodeMBps = bytes / encodeMs / 1e3;
      const decodeMBps = decodedBytes / decodeMs / 1e3;
      if (!keyed) plainRates.push(encodeMBps, decodeMBps);
      recordRows.push([
        `${frameBytes} B`,
        keyed ? "keyed (ChaCha20-Poly1305)" : "none (XXH3-128)",
        String(Math.round(frames / records)),
        ((frames / encodeMs) * 1000).toFixed(0),
        encodeMBps.toFixed(0),
        ((delivered / decodeMs) * 1000).toFixed(0),
        decodeMBps.toFixed(0),
        keyed ? `${(encodeMBps / plainRates[0]!).toFixed(2)} / ${(decodeMBps / plainRates[1]!).toFixed(2)}` : "1 / 1",
      ]);
    }
  }
  console.log("\nrecords of up to 17 blocks (64 KiB payload), B = 4096, unkeyed and keyed in the same run:\n");
  console.log(table(["frame", "auth", "frames/record", "encode frames/s", "encode MB/s", "decode frames/s", "decode MB/s", "vs none (enc / dec)"], recordRows));

  console.log("\nrecord AEAD alone (ChaCha20-Poly1305 of one record's payload around its stamps, in place), B = 4096, same run:\n");
  const aeadRows: string[][] = [];
  const key = new Uint8Array(randomBytes(32));
  for (const blocks of [1, 17]) {
    const record = new Uint8Array(randomBytes(blocks * blockBytes));
    record.fill(0, 0, RECORD_HEADER_END);
    record[0] = 1;
    const row = [`${blocks} block${blocks > 1 ? "s" : ""} (${((blocks * blockBytes) / 1024).toFixed(0)} KiB)`];
    const results: number[] = [];
    for (const [name, aead] of [["node:crypto (before)", nodeCryptoAead], ["addon (now)", addonAead]] as const) {
      const c = new RecordCipher(aead, key, 3n);
      const n = blocks > 1 ? 3000 : 20_000;
      const sealUs = perCallUs(n, () => c.seal(record, blockBytes, blocks, 9));
      const copy = record.slice();
      c.seal(copy, blockBytes, blocks, 9);
      const work2 = new Uint8Array(copy.length);
      const openUs = perCallUs(n, () => {
        work2.set(copy);
        if (!c.open(work2, blockBytes, blocks, 9)) throw new Error(`${name}: open failed`);
      });
      results.push(sealUs, openUs);
      row.push(sealUs.toFixed(1), openUs.toFixed(1));
    }
    row.push(`${(results[0]! / results[2]!).toFixed(2)} / ${(results[1]! / results[3]!).toFixed(2)}`);
    aeadRows.push(row);
  }
  console.log(table(["record", "node:crypto seal us", "open us (incl. copy)", "addon seal us", "open us (incl. copy)", "speed-up seal / open"], aeadRows));
}

function perCallUs(n: number, f: () => void): number {
  for (let i = 0; i < Math.min(n, 500); i++) f();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f();
  return ((performance.now() - t0) * 1e3) / n;
}

/** The record cipher as it was before #13 (node:crypto, one cipher object per record): the reference row only. */
const nodeCryptoAead: SegmentAead = {
  sealSegments(key, nonce, aad, buffer, segments, count, tag) {
    const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    let length = 0;
    for (let i = 0; i < count; i++) length += segments[2 * i + 1]! - segments[2 * i]!;
    cipher.setAAD(aad, { plaintextLength: length });
    for (let i = 0; i < count; i++) buffer.set(cipher.update(buffer.subarray(segments[2 * i]!, segments[2 * i + 1]!)), segments[2 * i]!);
    cipher.final();
    tag.set(cipher.getAuthTag());
  },
  openSegments(key, nonce, aad, buffer, segments, count, tag) {
    const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    let length = 0;
    for (let i = 0; i < count; i++) length += segments[2 * i + 1]! - segments[2 * i]!;
    decipher.setAAD(aad, { plaintextLength: length });
    decipher.setAuthTag(tag);
    for (let i = 0; i < count; i++) buffer.set(decipher.update(buffer.subarray(segments[2 * i]!, segments[2 * i + 1]!)), segments[2 * i]!);
    try {
      decipher.final();
      return true;
    } catch {
      return false;
    }
  },
};
