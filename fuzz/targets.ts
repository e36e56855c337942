// Fuzz targets for every parser that reads bytes an attacker can write: the link message header,
// sealed UDP datagrams, ring records (first block, body, frames), superblocks, status blocks (with
// a cluster's peer rows), cluster headers and
// the remote-mirror wire decoder, and the keyed (MACed, AEAD) forms of superblock, status and record. Each target is a fast-check property over random and mutated
// valid input: the parser never throws anything but a coded LunlinkError, never accepts a mutated
// authenticated input, and every range it hands out lies inside the buffer. `npm run fuzz` runs
// them long (100k cases each); test/unit/fuzz.test.ts runs them short in every `npm test`.
import fc from "fast-check";

import { AuthMode, FrameType, MAX_FRAME_BYTES } from "../lib/format/layout.ts";
import { RecordCipher } from "../lib/format/record-cipher.ts";
import { addonAead } from "../lib/io/aead.ts";
import { RecordBuilder, checkBody, checkFirstBlock, forEachFrame } from "../lib/format/record.ts";
import { CLUSTER_HEADER_BYTES, clusterProblem, decodeClusterHeader, encodeClusterHeader, planRegions } from "../lib/format/cluster.ts";
import { MAX_PEER_ROWS } from "../lib/format/layout.ts";
import { STATUS_BYTES, decodeStatus, encodeStatus } from "../lib/format/status.ts";
import { SUPERBLOCK_BYTES, decodeSuperblock, encodeSuperblock } from "../lib/format/superblock.ts";
import { newUuid, uuidBytes } from "../lib/format/uuid.ts";
import { LunlinkError } from "../lib/errors.ts";
import { generateKeys, sharedSecret } from "../lib/link/keys.ts";
import { decodeHeader, encodeMessage, MessageKind, PathId } from "../lib/link/message.ts";
import { Opener, Sealer } from "../lib/link/seal.ts";
import { MessageDecoder } from "../lib/mirror/protocol.ts";
import { statusFixture, superblockFixture } from "../test/helpers/blocks.ts";

export interface FuzzOutcome {
  failed: boolean;
  numRuns: number;
  report: string | undefined;
}

export interface FuzzTarget {
  name: string;
  run: (numRuns: number, seed: number) => FuzzOutcome;
}

function checked<Ts extends [unknown, ...unknown[]]>(property: () => fc.IProperty<Ts>): FuzzTarget["run"] {
  return (numRuns, seed) => {
    const result = fc.check(property(), { numRuns, seed });
    return { failed: result.failed, numRuns: result.numRuns, report: fc.defaultReportMessage(result) ?? undefined };
  };
}

const B = 4096;
const UUID = uuidBytes(newUuid());

/** One overwrite: (position, modulo the length edited; new byte value). */
const edit = fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }));
/** 1-8 overwrites. */
const edits = fc.array(edit, { minLength: 1, maxLength: 8 });

/** A copy of `bytes` with the overwrites applied within its first `limit` bytes. */
function edited(bytes: Uint8Array, changes: [number, number][], limit = bytes.length): Uint8Array {
  const out = Uint8Array.from(bytes);
  if (limit > 0) for (const [at, value] of changes) out[at % limit] = value;
  return out;
}

/** Random bytes, or a valid input with 1-8 bytes overwritten at random places. */
function mutated(valid: fc.Arbitrary<Uint8Array>, maxLength: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength }),
    fc.tuple(valid, edits).map(([bytes, changes]) => edited(bytes, changes)),
  );
}

function onlyCoded(run: () => void): boolean {
  try {
    run();
    return true;
  } catch (error) {
    return error instanceof LunlinkError;
  }
}

const frames = fc.array(fc.record({ type: fc.constantFrom(FrameType.Heartbeat, FrameType.Control, FrameType.Data), bytes: fc.uint8Array({ maxLength: 5000 }) }), { minLength: 1, maxLength: 12 });
const validRecord = frames.map((fs) => {
  const buffer = new Uint8Array(8 * B);
  const builder = new RecordBuilder(buffer, B, 8);
  for (const f of fs) if (!builder.append(f.type, 0, f.bytes, false)) break;
  builder.finish({ volumeUuid: UUID, epoch: 1n, seq: 42n, timestampMs: 1n });
  return buffer;
});

const keys = (() => {
  const a = generateKeys();
  const b = generateKeys();
  return { ab: sharedSecret(a.privateKey, b.publicKey), ba: sharedSecret(b.privateKey, a.publicKey) };
})();
const validSealed = fc.uint8Array({ maxLength: 300 }).map((payload) => new Sealer(keys.ab, 9n, 1, 2).seal(encodeMessage({ kind: MessageKind.Data, path: PathId.Primary, node: 1, session: 9n, seq: 1n, ack: 0n }, payload)));

// Keyed mode: valid MACed superblocks and status blocks and AEAD records, edited in 1-8 bytes. An
// edit that changes any byte must fail the MAC or the tag; an untouched one must still verify.
const ringMacKey = new Uint8Array(32).fill(7);
const recordCipher = new RecordCipher(addonAead, new Uint8Array(32).fill(9), 5n);

/** A valid cluster header of 2..16 nodes and a status block with one row per peer, as bytes. */
const validClusterBlocks = fc
  .tuple(fc.uniqueArray(fc.integer({ min: 1, max: 255 }), { minLength: 2, maxLength: 16 }), fc.bigInt({ min: 1n, max: 2n ** 40n }))
  .map(([nodes, ack]) => {
    const header = new Uint8Array(B);
    const volumeBlocks = 2n + BigInt(nodes.length) * 20n;
    encodeClusterHeader({ clusterUuid: newUuid(), blockBytes: B, volumeBlocks, createdAtMs: 1n, regions: planRegions(nodes, volumeBlocks) }, header);
    const status = new Uint8Array(B);
    const peers = nodes.slice(1).map((node, j) => ({ node, flags: j % 2, ackEpoch: 1n, ackSeq: ack + BigInt(j), deliveredEpoch: 1n, deliveredSeq: ack }));
    encodeStatus(statusFixture({ peers, ackEpoch: 1n, ackSeq: ack, deliveredEpoch: 1n, deliveredSeq: ack }), status);
    return { header, status };
  });

export const TARGETS: FuzzTarget[] = [
  {
    name: "cluster-header-status-rows",
    run: checked(() =>
      fc.property(validClusterBlocks, edits, fc.boolean(), ({ header, status }, changes, random) => {
        const h = random ? new Uint8Array(B).map((_, i) => (i * 7919 + changes.length) & 0xff) : edited(header, changes, CLUSTER_HEADER_BYTES);
        const st = edited(status, changes, STATUS_BYTES);
        return onlyCoded(() => {
          const decoded = decodeClusterHeader(h);
          // Whatever decodes describes regions inside the volume, equal and back to back.
          if (decoded.ok && clusterProblem(decoded.header) !== undefined) throw new Error("accepted a cluster header with a geometry problem");
          if (Buffer.compare(h, header) === 0 && !decoded.ok) throw new Error("refused the unmodified cluster header");
          const rows = decodeStatus(st);
          if (rows.ok) {
            const peers = rows.status.peers ?? [];
            if (peers.length > MAX_PEER_ROWS || new Set(peers.map((r) => r.node)).size !== peers.length) throw new Error("accepted bad peer rows");
          } else if (Buffer.compare(st, status) === 0) throw new Error("refused the unmodified status block");
        });
      }),
    ),
  },
  {
    name: "link-header",
    run: checked(() =>
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(120), fc.nat(120), (bytes, offset, length) => {
        const d = decodeHeader(bytes, offset, length);
        return !d.ok || (d.payloadOffset <= bytes.length && offset + length <= bytes.length);
      }),
    ),
  },
  {
    name: "sealed-datagram",
    run: checked(() =>
      fc.property(validSealed, fc.array(edit, { maxLength: 8 }), fc.uint8Array({ maxLength: 400 }), (sealed, changes, noise) => {
        // Random bytes never authenticate; an edited seal authenticates only if no byte changed.
        if (new Opener(keys.ba, 1, 2, 77n).open(noise).ok) return false;
        const copy = edited(sealed, changes);
        const r = new Opener(keys.ba, 1, 2, 77n).open(copy);
        return r.ok === (Buffer.compare(copy, sealed) === 0);
      }),
    ),
  },
  {
    name: "ring-record",
    run: checked(() =>
      fc.property(mutated(validRecord, 8 * B), (bytes) => {
        const record = new Uint8Array(8 * B);
        record.set(bytes.subarray(0, record.length));
        return onlyCoded(() => {
          const first = checkFirstBlock(record, B, 42n, UUID);
          if (first.kind !== "header") return;
          if (first.header.blockCount > 8) return;
          if (checkBody(record, B, first.header).kind !== "valid") return;
          forEachFrame(record, B, first.header, new Uint8Array(MAX_FRAME_BYTES), (_type, _flags, buf, offset, length) => {
            if (offset < 0 || length < 0 || offset + length > buf.length) throw new Error(`frame range ${offset}+${length} outside ${buf.length}`);
          });
        });
      }),
    ),
  },
  {
    name: "superblock-status",
    run: checked(() =>
      fc.property(fc.uint8Array({ minLength: B, maxLength: B }), (block) => onlyCoded(() => {
        decodeSuperblock(block);
        decodeStatus(block);
      }))),
  },
  {
    name: "mirror-wire",
    run: checked(() =>
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => onlyCoded(() => {
        const decoder = new MessageDecoder();
        for (const chunk of chunks) {
          decoder.push(chunk);
          for (let m = decoder.next(); m !== undefined; m = decoder.next());
        }
      }))),
  },
  {
    name: "keyed-superblock-status",
    run: checked(() =>
      fc.property(fc.bigInt({ min: 1n, max: 2n ** 40n }), fc.bigInt({ min: 1n, max: 2n ** 40n }), edits, edits, (epoch, head, sbEdits, stEdits) => {
        const sb = new Uint8Array(B);
        encodeSuperblock(superblockFixture({ epoch, authMode: AuthMode.Keyed, keyId: 1 }), sb, ringMacKey);
        const sbEdited = edited(sb, sbEdits, SUPERBLOCK_BYTES);
        const st = new Uint8Array(B);
        encodeStatus(statusFixture({ epoch, headSeq: head }), st, ringMacKey);
        const stEdited = edited(st, stEdits, STATUS_BYTES);
        const sbOk = onlyCoded(() => {
          if (decodeSuperblock(sbEdited, ringMacKey).ok !== (Buffer.compare(sbEdited, sb) === 0)) throw new Error("superblock verdict wrong");
        });
        const stOk = onlyCoded(() => {
          if (decodeStatus(stEdited, ringMacKey).ok !== (Buffer.compare(stEdited, st) === 0)) throw new Error("status verdict wrong");
        });
        return sbOk && stOk;
      }),
    ),
  },
  {
    name: "keyed-record",
    run: checked(() =>
      fc.property(frames, edits, (fs, changes) => {
        const buffer = new Uint8Array(8 * B);
        const builder = new RecordBuilder(buffer, B, 8);
        for (const f of fs) if (!builder.append(f.type, 0, f.bytes)) break;
        const blocks = builder.finish({ volumeUuid: UUID, epoch: recordCipher.epoch, seq: 42n, timestampMs: 1n }, undefined, { cipher: recordCipher, ringBlock: 3 });
        const record = buffer.subarray(0, blocks * B);
        const copy = edited(record, changes);
        const changed = Buffer.compare(copy, record) !== 0;
        let verified = false;
        const clean = onlyCoded(() => {
          const first = checkFirstBlock(copy, B, 42n, UUID);
          if (first.kind !== "header" || first.header.blockCount * B > copy.length) return;
          verified = checkBody(copy, B, first.header, { cipher: recordCipher, ringBlock: 3 }).kind === "valid";
        });
        return clean && verified === !changed;
      }),
    ),
  },
];

export async function prepare(): Promise<void> {
}
