// `lunlink format` and `lunlink inspect`: raw-device ops on a send volume's superblocks and status,
// or on a cluster volume's header and every region (format --cluster: one ring per node on one LUN).
// inspect reads keyed rings unverified; with --cluster-secret it also verifies each region's MACs.
import type { Superblock } from "../format/superblock.ts";
import { AuthMode } from "../format/layout.ts";
import { newUuid } from "../format/uuid.ts";
import { LunlinkError, invalidArgument } from "../errors.ts";
import { Volume } from "../io/volume.ts";
import { readPrivateKeyFile, ringKey, sharedSecret } from "../link/keys.ts";
import { clusterRingAuth, formatCluster, isClusterVolume, openCluster, openRegion } from "../ring/cluster.ts";
import { inspectRing } from "../ring/inspect.ts";
import { RingKeys, keyIdText } from "../ring/keys.ts";
import { readStatusSlots } from "../ring/status.ts";
import { formatVolume, openSuperblock } from "../ring/superblocks.ts";
import { readClusterSecretFile } from "../node/cluster-secret.ts";
import { flag, parse, type ParsedArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { formatBytes, toJson } from "./output.ts";

function integer(parsed: ParsedArgs, name: string, fallback: number | undefined): number | undefined {
  const raw = parsed.values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw invalidArgument(`--${name}`, "a non-negative integer", raw);
  return n;
}

/** "64M", "1G", "4096" (bytes) -> bytes. */
export function parseSize(name: string, raw: string): bigint {
  const m = /^(\d+)([KMGT]i?B?|B)?$/i.exec(raw);
  if (m === null) throw invalidArgument(name, "a size such as 4096, 64M or 1G", raw);
  const unit = (m[2] ?? "").toUpperCase().replace(/I?B$/, "");
  const shift = { "": 0n, K: 10n, M: 20n, G: 30n, T: 40n }[unit];
  if (shift === undefined) throw invalidArgument(name, "a size such as 4096, 64M or 1G", raw);
  return BigInt(m[1]!) << shift;
}

export const formatCommand: Command = {
  summary: "format a send volume (superblocks, status block, empty ring)",
  usage: [
    "Usage: lunlink format <path> --node N --peer N [--pair UUID] [--key FILE --peer-public KEY] [--block-size N] [--ring-size SIZE] [--force] [--json]",
    "       lunlink format <path> --cluster --nodes N [--node-ids 1,2,3] [--cluster-secret FILE] [--block-size N] [--ring-size SIZE] [--force] [--json]",
    "",
    "--cluster: N regions (2..16) on one volume, one send ring per node (node ids 1..N, or --node-ids,",
    "each 1..255), a cluster header at the first and last block; --ring-size is then each region's size.",
    "--cluster-secret: every region keyed (authMode keyed) under a key derived from the cluster secret",
    "(lunlink keys cluster-secret; the file every member's keys.clusterSecret names). All regions are",
    "keyed or none: a keyed node refuses an unkeyed region (ERR_LUNLINK_DOWNGRADE) and the reverse.",
    "",
    "Writes lunlink's format version 2 onto <path>: superblock copies at the first and last block,",
    "two status slots, and a ring over the rest (or --ring-size bytes of it). Refuses a volume that",
    "already holds anything where the superblocks go unless --force. Sequence numbers continue above",
    "any found in the old ring, so a reformatted volume never repeats one.",
    "Sizing: ring >= 2 x peak write rate x (mirror lag both ways + 2 polls + max batch delay).",
    "Keyed (docs/security.md): --key is this node's private key file, --peer-public the peer's public",
    "key, and --pair the UUID both volumes of the pair share (format the first volume, then the second",
    "with the pair UUID it printed).",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(
      args,
      {
        node: { type: "string" },
        peer: { type: "string" },
        pair: { type: "string" },
        key: { type: "string" },
        "peer-public": { type: "string" },
        "block-size": { type: "string" },
        "ring-size": { type: "string" },
        cluster: { type: "boolean" },
        nodes: { type: "string" },
        "node-ids": { type: "string" },
        "cluster-secret": { type: "string" },
        force: { type: "boolean" },
        json: { type: "boolean" },
      },
      { min: 1, max: 1 },
    );
    if (flag(parsed, "cluster")) return formatClusterVolume(parsed, out);
    if (parsed.values["cluster-secret"] !== undefined) throw invalidArgument("--cluster-secret", "given only with --cluster (a pair's volumes are keyed with --key and --peer-public)", parsed.values["cluster-secret"]);
    const writerNode = integer(parsed, "node", undefined);
    const peerNode = integer(parsed, "peer", undefined);
    if (writerNode === undefined) throw invalidArgument("--node", "this host's node id (1..4294967295)", undefined);
    if (peerNode === undefined) throw invalidArgument("--peer", "the peer's node id (1..4294967295)", undefined);
    const volume = await Volume.open(parsed.positionals[0]!, { dsync: true, exclusive: true });
    try {
      const blockBytes = integer(parsed, "block-size", undefined);
      const ringSize = parsed.values["ring-size"];
      const B = blockBytes ?? Math.max(4096, volume.geometry.logicalBlockSize, volume.geometry.physicalBlockSize);
      const options: Parameters<typeof formatVolume>[1] = { writerNode, peerNode, force: flag(parsed, "force") };
      if (blockBytes !== undefined) options.blockBytes = blockBytes;
      if (typeof parsed.values.pair === "string") options.pairUuid = parsed.values.pair;
      // Keyed mode: the ring key of this direction, from our private key and the peer's public key
      // (both nodes derive the same one), salted with the pair UUID, which both volumes must share.
      const keyFile = parsed.values.key;
      const peerPublic = parsed.values["peer-public"];
      if ((typeof keyFile === "string") !== (typeof peerPublic === "string")) throw invalidArgument("--key/--peer-public", "both (keyed volume) or neither", keyFile ?? peerPublic);
      if (typeof keyFile === "string" && typeof peerPublic === "string") {
        options.pairUuid ??= newUuid(); // the first volume of a pair: printed below, pass it as --pair for the second
        options.auth = { key: ringKey(sharedSecret(await readPrivateKeyFile(keyFile), peerPublic), options.pairUuid, writerNode, peerNode) };
      }
      if (typeof ringSize === "string") options.ringBlocks = parseSize("--ring-size", ringSize) / BigInt(B);
      const { superblock, previousHighestSeq } = await formatVolume(volume, options);
      if (flag(parsed, "json")) {
        out.stdout.write(`${toJson({ path: volume.path, ...superblock, salt: undefined, previousHighestSeq })}\n`);
        return;
      }
      const ringBytes = superblock.ringBlocks * BigInt(superblock.blockBytes);
      out.stdout.write(
        [
          `formatted ${volume.path}`,
          `  volume ${superblock.volumeUuid}, pair ${superblock.pairUuid}, writer node ${superblock.writerNode}, peer node ${superblock.peerNode}`,
          `  block size ${superblock.blockBytes} B, ring ${superblock.ringBlocks} blocks (${formatBytes(ringBytes)})`,
          `  epoch 1 starts at seq ${superblock.epochStartSeq}${previousHighestSeq > 0n ? ` (old ring held seqs up to ${previousHighestSeq})` : ""}`,
          `  capacity rule: ring >= 2 x peak write rate x (mirror lag A->B + poll + max delay + lag B->A + poll)`,
        ].join("\n") + "\n",
      );
    } finally {
      await volume.close();
    }
  },
};

async function formatClusterVolume(parsed: ParsedArgs, out: Parameters<Command["run"]>[1]): Promise<void> {
  for (const single of ["node", "peer", "pair", "key", "peer-public"]) {
    const why = single === "key" || single === "peer-public" ? "a keyed cluster volume takes --cluster-secret FILE" : "the cluster header names every node";
    if (parsed.values[single] !== undefined) throw invalidArgument(`--${single}`, `not with --cluster (${why})`, parsed.values[single]);
  }
  const secretFile = parsed.values["cluster-secret"];
  // Read before the volume is touched: a bad secret file formats nothing.
  const clusterSecret = typeof secretFile === "string" ? await readClusterSecretFile(secretFile) : undefined;
  const count = integer(parsed, "nodes", undefined);
  const idsRaw = parsed.values["node-ids"];
  const nodes = typeof idsRaw === "string" ? idsRaw.split(",").map((id) => (/^\d+$/.test(id) ? Number(id) : Number.NaN)) : Array.from({ length: count ?? 0 }, (_, i) => i + 1);
  if (count === undefined && typeof idsRaw !== "string") throw invalidArgument("--nodes", "the number of nodes (2..16)", undefined);
  if (count !== undefined && count !== nodes.length) throw invalidArgument("--node-ids", `${count} ids (--nodes ${count})`, idsRaw);
  const volume = await Volume.open(parsed.positionals[0]!, { dsync: true, exclusive: true });
  try {
    const blockBytes = integer(parsed, "block-size", undefined);
    const B = blockBytes ?? Math.max(4096, volume.geometry.logicalBlockSize, volume.geometry.physicalBlockSize);
    const ringSize = parsed.values["ring-size"];
    const { header, superblocks } = await formatCluster(volume, {
      nodes,
      force: flag(parsed, "force"),
      ...(clusterSecret === undefined ? {} : { clusterSecret }),
      ...(blockBytes === undefined ? {} : { blockBytes }),
      ...(typeof ringSize === "string" ? { regionBlocks: parseSize("--ring-size", ringSize) / BigInt(B) } : {}),
    });
    if (flag(parsed, "json")) {
      out.stdout.write(`${toJson({ path: volume.path, ...header, superblocks: superblocks.map((s) => ({ ...s, salt: undefined })) })}\n`);
      return;
    }
    const regionBytes = header.regions[0]!.blocks * BigInt(header.blockBytes);
    out.stdout.write(
      [
        `formatted ${volume.path} as a cluster volume of ${header.regions.length} nodes (format version 2)`,
        clusterSecret === undefined ? "  unkeyed: records are neither authenticated nor encrypted (--cluster-secret FILE keys every region)" : `  every region keyed under the cluster secret ${String(secretFile)}`,
        `  cluster ${header.clusterUuid}, block size ${header.blockBytes} B, regions of ${header.regions[0]!.blocks} blocks (${formatBytes(regionBytes)})`,
        ...header.regions.map((r, i) => `  node ${r.node}: region ${i} at block ${r.startBlock}, volume ${superblocks[i]!.volumeUuid}, epoch 1 starts at seq ${superblocks[i]!.epochStartSeq}${clusterSecret === undefined ? "" : `, key id ${keyIdText(superblocks[i]!.keyId)}`}`),
        `  capacity rule, per region: ring >= 2 x peak write rate x (mirror lag + poll + max delay + lag back + poll)`,
      ].join("\n") + "\n",
    );
  } finally {
    await volume.close();
  }
}

export const inspectCommand: Command = {
  summary: "show a volume's superblock, status block and ring contents",
  usage:
    "Usage: lunlink inspect <path> [--cluster-secret FILE] [--json]\n\nReads (O_DIRECT, read-only) the superblock copies, both status slots and every ring block of a\nlunlink volume: intact records and frames, the sequence range, epochs present, and damaged records\n(seq and byte offset). A keyed region is shown unverified, unless --cluster-secret (a cluster volume)\nis given: then each region's superblock and status MAC is verified under its writer's key and the\nresult printed per region (verified, or failed with why).",
  async run(args, out) {
    const parsed = parse(args, { json: { type: "boolean" }, "cluster-secret": { type: "string" } }, { min: 1, max: 1 });
    const secretFile = parsed.values["cluster-secret"];
    const clusterSecret = typeof secretFile === "string" ? await readClusterSecretFile(secretFile) : undefined;
    const volume = await Volume.open(parsed.positionals[0]!, { readOnly: true });
    try {
      if (await isClusterVolume(volume)) {
        const header = await openCluster(volume);
        const regions = [];
        for (const entry of header.regions) {
          const { view, superblock } = await openRegion(volume, header, entry.node);
          const auth = clusterRingAuth(clusterSecret, superblock.pairUuid, entry.node);
          regions.push({ node: entry.node, ...(await inspectOne(view.asVolume(), auth === undefined ? undefined : new RingKeys(auth))) });
        }
        if (flag(parsed, "json")) {
          out.stdout.write(`${toJson({ path: volume.path, cluster: header, regions: regions.map((r) => ({ node: r.node, ...r.report })) })}\n`);
          return;
        }
        const lines = [`cluster      ${header.clusterUuid}: ${header.regions.length} nodes, ${header.volumeBlocks} blocks of ${header.blockBytes} B`];
        for (const r of regions) lines.push(`-- node ${r.node}, region at block ${r.superblock.region?.regionStartBlock ?? 0n}`, ...r.lines.map((l) => `  ${l}`));
        out.stdout.write(`${lines.join("\n")}\n`);
        return;
      }
      if (clusterSecret !== undefined) throw invalidArgument("--cluster-secret", `given only with a cluster volume (${volume.path} is a node volume)`, secretFile);
      const { report, lines } = await inspectOne(volume);
      out.stdout.write(flag(parsed, "json") ? `${toJson(report)}\n` : `${lines.join("\n")}\n`);
    } finally {
      await volume.close();
    }
  },
};

/** What a key says of a ring's MACs: each verified, or failed with why (the error code or the status slots' reasons). */
interface MacCheck {
  superblock: string;
  status: string;
}

/** Verifies a ring's superblock and status MAC under `keys` (never throws for a MAC that fails: inspection reports it). */
async function checkMacs(volume: Volume, keys: RingKeys, blockBytes: number): Promise<MacCheck> {
  let superblockMac = "verified";
  try {
    await openSuperblock(volume, keys);
  } catch (error) {
    if (!(error instanceof LunlinkError)) throw error;
    superblockMac = `failed (${error.code}: ${error.message})`;
  }
  const { slots, status } = await readStatusSlots(volume, blockBytes, keys.statusMac);
  const statusMac = status !== undefined ? `verified (generation ${status.generation})` : `failed (${slots.map((s, i) => (s.ok ? `slot ${i} valid` : `slot ${i} ${s.reason}: ${s.detail}`)).join("; ")})`;
  return { superblock: superblockMac, status: statusMac };
}

/** One ring (a node volume or one region): its superblock, status and ring, as a report and as lines; with `keys`, its MACs verified. */
async function inspectOne(volume: Volume, keys?: RingKeys): Promise<{ superblock: Superblock; report: Record<string, unknown>; lines: string[] }> {
  const { superblock, repair } = await openSuperblock(volume);
  const B = superblock.blockBytes;
  const mac = superblock.authMode === AuthMode.Keyed ? "unverified" : undefined; // the display reads unverified; checkMacs verifies
  const { slots, status } = await readStatusSlots(volume, B, mac);
  const ring = await inspectRing(volume, superblock);
  const macs = keys === undefined ? undefined : await checkMacs(volume, keys, B);
  const keyed = superblock.authMode === AuthMode.Keyed;
  const authLine =
    macs !== undefined
      ? `superblock MAC ${macs.superblock}, status MAC ${macs.status}`
      : keyed
        ? `keyed (key id ${keyIdText(superblock.keyId)}), MACs unverified (inspect --cluster-secret FILE verifies a cluster volume's)`
        : "none (unkeyed)";
  const report = {
    path: volume.path,
    ...(macs === undefined ? {} : { macs }),
    superblock: { ...superblock, salt: undefined },
    superblockCopies: repair === "none" ? "both valid" : `copy ${repair.toUpperCase()} needs repair`,
    status: status ?? null,
    statusSlots: slots.map((s) => (s.ok ? `valid (generation ${s.status.generation})` : `${s.reason}: ${s.detail}`)),
    ring,
  };
  const lines = [
    `volume       ${superblock.volumeUuid} (pair ${superblock.pairUuid})`,
    `nodes        writer ${superblock.writerNode}, ${superblock.peerNode === 0 ? `read by every member (${superblock.region?.nodeCount ?? 2} nodes)` : `peer ${superblock.peerNode}`}`,
    `geometry     ${superblock.volumeBlocks} blocks of ${B} B, ring ${superblock.ringBlocks} blocks from block ${superblock.ringStartBlock}`,
    `epoch        ${superblock.epoch} (starts at seq ${superblock.epochStartSeq}, ring block ${superblock.epochStartBlock})`,
    `superblocks  ${report.superblockCopies}`,
    `auth         ${authLine}`,
    `status       ${status === undefined ? "no valid slot" : `head seq ${status.headSeq} at ring block ${status.headBlock}, oldest seq ${status.oldestSeq}, ${status.peers === undefined ? `ack ${status.ackEpoch}/${status.ackSeq}` : `acks ${status.peers.map((r) => `node ${r.node} ${r.ackEpoch}/${r.ackSeq}${r.flags !== 0 ? " (released)" : ""}`).join(", ")}`}, heartbeat ${status.heartbeat}`}`,
    `status slots ${report.statusSlots.join("; ")}`,
    `ring         ${ring.records} records (${ring.frames} frames), ${ring.pads} pads, seq ${ring.oldestSeq ?? "-"}..${ring.newestSeq ?? "-"}, epochs ${ring.epochs.join(",") || "-"}`,
    `damage       ${ring.invalid === 0 ? "none" : `${ring.invalid} invalid record start(s)`}`,
    ...ring.damage.map((d) => `  seq ${d.seq} at byte ${d.offsetBytes}: ${d.reason}`),
  ];
  return { superblock, report, lines };
}
