// `lunlink append` and `lunlink tail`: write frames to a send volume and read them from a receive
// volume, for raw-device ops scripts. Both speak one JSON object per line with --json.
// On a keyed cluster volume both take --cluster-secret FILE and work on the region keyed under its
// writer's clusterRingKey (docs/format.md, Keyed clusters); without it a keyed region is refused
// (ERR_LUNLINK_KEY_REQUIRED), and with it an unkeyed one (ERR_LUNLINK_DOWNGRADE, from the keyed open).
import { AuthMode, FrameType } from "../format/layout.ts";
import { ErrorCode, LunlinkError, invalidArgument } from "../errors.ts";
import { Volume } from "../io/volume.ts";
import { Poller } from "../poll/poller.ts";
import { clusterRingAuth, isClusterVolume, openCluster, openRegion } from "../ring/cluster.ts";
import type { RingAuth } from "../ring/keys.ts";
import { readClusterSecretFile } from "../node/cluster-secret.ts";
import { RingReader } from "../ring/reader.ts";
import { RingWriter } from "../ring/writer.ts";
import { flag, parse, type ParsedArgs } from "./args.ts";
import { followUntilSignal } from "./follow.ts";
import type { Command } from "./command.ts";

const TYPES: Readonly<Record<string, FrameType>> = { heartbeat: FrameType.Heartbeat, control: FrameType.Control, data: FrameType.Data };
const TYPE_NAMES: Readonly<Record<number, string>> = { 1: "heartbeat", 2: "control", 3: "data" };

function nodeArg(parsed: ParsedArgs, name = "node", what = "this host's node id"): number {
  const raw = parsed.values[name];
  const n = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || n < 1 || n > 0xffffffff) throw invalidArgument(`--${name}`, `${what} (1..4294967295)`, raw);
  return n;
}

/** The cluster secret named by --cluster-secret (read before any volume is touched), or undefined. */
async function clusterSecretArg(parsed: ParsedArgs): Promise<Buffer | undefined> {
  const file = parsed.values["cluster-secret"];
  return typeof file === "string" ? readClusterSecretFile(file) : undefined;
}

/**
 * Node `node`'s ring on `volume`: its region of a cluster volume, with its ring auth when a cluster
 * secret is given (the cluster UUID from the region's superblock, which openRegion checked against the
 * header); a node volume as it is (a pair's volumes are keyed with --key, not a cluster secret).
 */
async function clusterRing(volume: Volume, node: number, clusterSecret: Buffer | undefined): Promise<{ ring: Volume; auth?: RingAuth }> {
  if (!(await isClusterVolume(volume))) {
    if (clusterSecret !== undefined) throw invalidArgument("--cluster-secret", `given only with a cluster volume (${volume.path} is a node volume)`, "a secret file");
    return { ring: volume };
  }
  const { view, superblock } = await openRegion(volume, await openCluster(volume), node);
  if (clusterSecret === undefined) {
    if (superblock.authMode === AuthMode.Keyed) {
      throw new LunlinkError(ErrorCode.KeyRequired, `${volume.path}#node${node} is a keyed cluster region (authMode keyed): pass --cluster-secret FILE (the cluster secret, keys.clusterSecret)`, { path: volume.path });
    }
    return { ring: view.asVolume() };
  }
  return { ring: view.asVolume(), auth: clusterRingAuth(clusterSecret, superblock.pairUuid, node)! };
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export const appendCommand: Command = {
  summary: "append frames to a send volume",
  usage: [
    "Usage: lunlink append <path> --node N [--to NODE] [--cluster-secret FILE] [--type heartbeat|control|data] [--take-over] [message | -]",
    "",
    "Opens <path> as node N's send volume (a new epoch), appends the message as one frame (with -, each",
    "line of standard input is a frame), writes it with O_DIRECT|O_DSYNC and prints the sequence range.",
    "On a cluster volume it writes node N's region; --to names the destination node (default: every",
    "reader, broadcast). --cluster-secret: the cluster secret of a keyed cluster volume (required there).",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { node: { type: "string" }, to: { type: "string" }, "cluster-secret": { type: "string" }, type: { type: "string" }, "take-over": { type: "boolean" }, json: { type: "boolean" } }, { min: 1, max: 2 });
    const nodeId = nodeArg(parsed);
    const destination = parsed.values.to === undefined ? 0 : nodeArg(parsed, "to", "the destination node id");
    if (destination > 255) throw invalidArgument("--to", "a cluster node id (1..255)", destination);
    const typeName = typeof parsed.values.type === "string" ? parsed.values.type : "data";
    const type = TYPES[typeName];
    if (type === undefined) throw invalidArgument("--type", "heartbeat, control or data", typeName);
    const message = parsed.positionals[1];
    const frames: Uint8Array[] =
      message === undefined || message === "-"
        ? (await readStdin()).toString("utf8").split("\n").filter((l) => l.length > 0).map((l) => Buffer.from(l))
        : [Buffer.from(message)];
    const clusterSecret = await clusterSecretArg(parsed);
    const volume = await Volume.open(parsed.positionals[0]!, { dsync: true, exclusive: true });
    try {
      const { ring, auth } = await clusterRing(volume, nodeId, clusterSecret);
      const writer = await RingWriter.open(ring, { nodeId, takeOver: flag(parsed, "take-over"), maxDelayMs: 0, ...(auth === undefined ? {} : { auth }) });
      const firstSeq = writer.headSeq;
      for (const f of frames) {
        if (!(await writer.append(type, f, destination))) throw new LunlinkError(ErrorCode.QueueFull, "the write queue dropped a frame");
      }
      await writer.flush();
      const lastSeq = writer.headSeq - 1n;
      await writer.close();
      const result = { frames: frames.length, epoch: writer.epoch, firstSeq, lastSeq };
      out.stdout.write(flag(parsed, "json") ? `${JSON.stringify(result, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v))}\n` : `appended ${frames.length} frame(s) in seq ${firstSeq}..${lastSeq}, epoch ${writer.epoch}\n`);
    } finally {
      await volume.close();
    }
  },
};

export const tailCommand: Command = {
  summary: "print the frames on a receive volume",
  usage: [
    "Usage: lunlink tail <path> --node N [--writer W [--cluster-secret FILE]] [--from SEQ | --from oldest] [--follow] [--json]",
    "",
    "Reads <path> as node N's receive volume (O_DIRECT) and prints one line per frame: by default the",
    "frames from the oldest still in the ring, or from SEQ; exits when it reaches the writer's head",
    "unless --follow. On a cluster volume --writer W names whose region to read (every frame of it is",
    "printed; flags is its destination, 0 = broadcast); --cluster-secret: the cluster secret of a keyed",
    "cluster volume (required there: records are verified and decrypted; only the writer's current",
    "epoch can be, as each append or restart starts one with a fresh key). --json prints {seq, type,",
    "flags, timestamp, text|base64} per line.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { node: { type: "string" }, writer: { type: "string" }, "cluster-secret": { type: "string" }, from: { type: "string" }, follow: { type: "boolean" }, json: { type: "boolean" } }, { min: 1, max: 1 });
    const nodeId = nodeArg(parsed);
    const writerNode = parsed.values.writer === undefined ? undefined : nodeArg(parsed, "writer", "the node whose ring to read");
    const from = parsed.values.from;
    let start: "oldest" | { seq: bigint } = "oldest";
    if (typeof from === "string" && from !== "oldest") {
      if (!/^\d+$/.test(from)) throw invalidArgument("--from", "a sequence number or oldest", from);
      start = { seq: BigInt(from) };
    }
    const json = flag(parsed, "json");
    if (writerNode === undefined && parsed.values["cluster-secret"] !== undefined) throw invalidArgument("--cluster-secret", "given with --writer W (whose region of the cluster volume to read)", parsed.values["cluster-secret"]);
    const clusterSecret = await clusterSecretArg(parsed);
    const volume = await Volume.open(parsed.positionals[0]!, { readOnly: true });
    try {
      const { ring, auth } = writerNode === undefined ? { ring: volume, auth: undefined } : await clusterRing(volume, writerNode, clusterSecret);
      const reader = await RingReader.open(ring, { nodeId, start, ...(auth === undefined ? {} : { auth }) });
      const print = (seq: bigint, type: number, flags: number, bytes: Uint8Array, offset: number, length: number): void => {
        const payload = Buffer.from(bytes.buffer, bytes.byteOffset + offset, length);
        const text = payload.toString("utf8");
        const printable = !text.includes("\uFFFD") && !/[\u0000-\u0008\u000e-\u001f]/.test(text);
        if (json) {
          out.stdout.write(`${JSON.stringify({ seq: Number(seq), type: TYPE_NAMES[type] ?? type, flags, timestamp: new Date().toISOString(), ...(printable ? { text } : { base64: payload.toString("base64") }) })}\n`);
        } else {
          out.stdout.write(`${seq} ${TYPE_NAMES[type] ?? type} ${printable ? text : `base64:${payload.toString("base64")}`}\n`);
        }
      };
      if (!flag(parsed, "follow")) {
        for (let n = 0; n < 10_000_000; n++) {
          const outcome = await reader.poll(print);
          if (outcome === "waiting") break;
        }
        // Keyed: a reader derives record keys from the superblocks it verifies, so an earlier writer epoch's records count here too.
        if (reader.counters.lost > 0n) out.stderr.write(`lunlink: warning: ${reader.counters.lost} record(s) lost (overwritten or damaged${auth === undefined ? "" : ", or of an earlier writer epoch, whose key a keyed reader cannot derive"})\n`);
        return;
      }
      await followUntilSignal(new Poller(reader, { onFrame: print }));
    } finally {
      await volume.close();
    }
  },
};
