// `lunlink mirror copy`: copy a send volume onto a receive volume with lunlink's own O_DIRECT I/O
// (local mode, for sites without array replication): a full resync, then, with --follow, every new
// record as it lands until interrupted.
import { invalidArgument } from "../io/errors.ts";
import { Volume } from "../io/volume.ts";
import { LocalMirror } from "../mirror/local.ts";
import { flag, parse } from "./args.ts";
import { followUntilSignal } from "./follow.ts";
import type { Command } from "./main.ts";
import { toJson } from "./output.ts";

export const mirrorCommand: Command = {
  summary: "copy a send volume onto a receive volume (local mirror)",
  usage: [
    "Usage: lunlink mirror copy <source> <destination> [--follow] [--force] [--json]",
    "",
    "Copies the source send volume onto the destination receive volume with O_DIRECT: the ring (end",
    "first), the status slots, then superblock copy B and copy A, each synced. With --follow it then",
    "copies every new record as it lands (later blocks before the first block) until SIGINT/SIGTERM.",
    "Refuses a destination formatted as another volume or pair unless --force.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { follow: { type: "boolean" }, force: { type: "boolean" }, json: { type: "boolean" } }, { min: 3, max: 3 });
    const [verb, sourcePath, destinationPath] = parsed.positionals as [string, string, string];
    if (verb !== "copy") throw invalidArgument("mirror subcommand", "copy", verb);
    const source = await Volume.open(sourcePath, { readOnly: true });
    const destination = await Volume.open(destinationPath, { exclusive: true });
    try {
      const mirror = await LocalMirror.open(source, destination, { force: flag(parsed, "force") });
      if (!flag(parsed, "follow")) {
        await mirror.resync();
      } else {
        await followUntilSignal(mirror);
      }
      const summary = { source: sourcePath, destination: destinationPath, ...mirror.counters };
      out.stdout.write(flag(parsed, "json") ? `${toJson(summary)}\n` : `mirrored ${sourcePath} -> ${destinationPath}: ${mirror.counters.blocksCopied} blocks, ${mirror.counters.records} records followed, ${mirror.counters.resyncs} resync(s)\n`);
    } finally {
      await source.close();
      await destination.close();
    }
  },
};
