// `lunlink probe <path> [--json]`: what kind of volume a path is and how it must be addressed.
import { probe } from "../io/probe.ts";
import { flag, parse } from "./args.ts";
import type { Command } from "./command.ts";
import { formatBytes, toJson } from "./output.ts";

export const probeCommand: Command = {
  summary: "show a volume's kind, size, sector sizes and O_DIRECT support",
  usage: [
    "Usage: lunlink probe <path> [--json]",
    "",
    "Opens <path> (a block device or a file) read-only with O_DIRECT and prints:",
    "  kind, sizeBytes, logicalBlockSize, physicalBlockSize, memoryAlignment, directIo, device,",
    "  fileSystem (files), memoryBacked, engine (io_uring or threads, and why not io_uring), warnings.",
    "Exit status: 0 ok, 1 the volume could not be probed, 2 bad usage.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { json: { type: "boolean" } }, { min: 1, max: 1 });
    const result = await probe(parsed.positionals[0]!);
    if (flag(parsed, "json")) {
      out.stdout.write(`${toJson(result)}\n`);
      return;
    }
    const rows: [string, string][] = [
      ["path", result.path],
      ["kind", result.kind],
      ["size", formatBytes(result.sizeBytes)],
      ["logical block size", `${result.logicalBlockSize} bytes`],
      ["physical block size", `${result.physicalBlockSize} bytes`],
      ["memory alignment", `${result.memoryAlignment} bytes`],
      ["direct I/O", result.directIo ? "yes" : "NO"],
      ["device", result.device],
      ["I/O engine", result.engineFallback === undefined ? result.engine : `${result.engine} (${result.engineFallback})`],
    ];
    if (result.fileSystem !== undefined) rows.push(["file system", result.fileSystem]);
    if (result.memoryBacked) rows.push(["memory-backed", "yes"]);
    for (const [key, value] of rows) out.stdout.write(`${key.padEnd(20)} ${value}\n`);
    for (const warning of result.warnings) out.stderr.write(`lunlink: warning: ${warning}\n`);
  },
};
