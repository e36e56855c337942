// `lunlink append` and `lunlink tail`: write frames to a send volume and read them from a receive
// volume, for raw-device ops scripts. Both speak one JSON object per line with --json.
import { FrameType } from "../format/layout.ts";
import { ErrorCode, LunlinkError, invalidArgument } from "../errors.ts";
import { Volume } from "../io/volume.ts";
import { Poller } from "../poll/poller.ts";
import { ringOf } from "../ring/cluster.ts";
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

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export const appendCommand: Command = {
  summary: "append frames to a send volume",
  usage: [
    "Usage: lunlink append <path> --node N [--to NODE] [--type heartbeat|control|data] [--take-over] [message | -]",
    "",
    "Opens <path> as node N's send volume (a new epoch), appends the message as one frame (with -, each",
    "line of standard input is a frame), writes it with O_DIRECT|O_DSYNC and prints the sequence range.",
    "On a cluster volume it writes node N's region; --to names the destination node (default: every",
    "reader, broadcast).",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { node: { type: "string" }, to: { type: "string" }, type: { type: "string" }, "take-over": { type: "boolean" }, json: { type: "boolean" } }, { min: 1, max: 2 });
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
    const volume = await Volume.open(parsed.positionals[0]!, { dsync: true, exclusive: true });
    try {
      const writer = await RingWriter.open(await ringOf(volume, nodeId), { nodeId, takeOver: flag(parsed, "take-over"), maxDelayMs: 0 });
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
    "Usage: lunlink tail <path> --node N [--writer W] [--from SEQ | --from oldest] [--follow] [--json]",
    "",
    "Reads <path> as node N's receive volume (O_DIRECT) and prints one line per frame: by default the",
    "frames from the oldest still in the ring, or from SEQ; exits when it reaches the writer's head",
    "unless --follow. On a cluster volume --writer W names whose region to read (every frame of it is",
    "printed; flags is its destination, 0 = broadcast). --json prints {seq, type, flags, timestamp,",
    "text|base64} per line.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { node: { type: "string" }, writer: { type: "string" }, from: { type: "string" }, follow: { type: "boolean" }, json: { type: "boolean" } }, { min: 1, max: 1 });
    const nodeId = nodeArg(parsed);
    const writerNode = parsed.values.writer === undefined ? undefined : nodeArg(parsed, "writer", "the node whose ring to read");
    const from = parsed.values.from;
    let start: "oldest" | { seq: bigint } = "oldest";
    if (typeof from === "string" && from !== "oldest") {
      if (!/^\d+$/.test(from)) throw invalidArgument("--from", "a sequence number or oldest", from);
      start = { seq: BigInt(from) };
    }
    const json = flag(parsed, "json");
    const volume = await Volume.open(parsed.positionals[0]!, { readOnly: true });
    try {
      const ring = writerNode === undefined ? volume : await ringOf(volume, writerNode);
      const reader = await RingReader.open(ring, { nodeId, start });
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
        if (reader.counters.lost > 0n) out.stderr.write(`lunlink: warning: ${reader.counters.lost} record(s) lost (overwritten or damaged)\n`);
        return;
      }
      await followUntilSignal(new Poller(reader, { onFrame: print }));
    } finally {
      await volume.close();
    }
  },
};
