// The `lunlink` command line: parses argv, runs one command, prints human text or --json, and
// returns the exit status (0 ok, 1 the operation failed, 2 bad usage). Errors are one line on
// stderr: "lunlink: ERR_LUNLINK_...: message".
import { readFileSync } from "node:fs";

import { ErrorCode, LunlinkError } from "../errors.ts";
import { demoCommand } from "./demo.ts";
import { doctorCommand } from "./doctor.ts";
import { formatCommand, inspectCommand } from "./format.ts";
import { keygenCommand, keysCommand, pubkeyCommand } from "./keys.ts";
import { mirrorCommand } from "./mirror.ts";
import { checkConfigCommand, downCommand, statusCommand, upCommand } from "./node.ts";
import { probeCommand } from "./probe.ts";
import { appendCommand, tailCommand } from "./ring.ts";
import { streamCommand } from "./stream.ts";
import type { Command } from "./command.ts";
import { UsageError, type Output } from "./output.ts";

const COMMANDS: Readonly<Record<string, Command>> = {
  probe: probeCommand,
  format: formatCommand,
  inspect: inspectCommand,
  append: appendCommand,
  tail: tailCommand,
  mirror: mirrorCommand,
  up: upCommand,
  down: downCommand,
  status: statusCommand,
  "check-config": checkConfigCommand,
  doctor: doctorCommand,
  stream: streamCommand,
  keygen: keygenCommand,
  pubkey: pubkeyCommand,
  keys: keysCommand,
  demo: demoCommand,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function help(): string {
  const lines = [
    "lunlink - carry network packets between two hosts through shared storage",
    "",
    "Usage: lunlink <command> [options]",
    "",
    "Commands:",
  ];
  for (const [name, command] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(13)} ${command.summary}`);
  lines.push("", "Options:", "  -h, --help     show help (also: lunlink <command> --help)", "  -V, --version  print the version");
  return lines.join("\n");
}

export async function main(argv: string[], out: Output = process): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === "-h" || first === "--help" || first === "help") {
      out.stdout.write(`${help()}\n`);
      return first === undefined ? 2 : 0;
    }
    if (first === "-V" || first === "--version") {
      out.stdout.write(`${version()}\n`);
      return 0;
    }
    const command = COMMANDS[first];
    if (command === undefined) throw new UsageError(`unknown command ${JSON.stringify(first)} (see lunlink --help)`);
    if (rest.includes("-h") || rest.includes("--help")) {
      out.stdout.write(`${command.usage}\n`);
      return 0;
    }
    return (await command.run(rest, out)) ?? 0;
  } catch (error) {
    if (error instanceof UsageError) {
      out.stderr.write(`lunlink: ${error.message}\n`);
      return 2;
    }
    if (error instanceof LunlinkError) {
      out.stderr.write(`lunlink: ${error.code}: ${error.message}\n`);
      return error.code === ErrorCode.InvalidArgument ? 2 : 1;
    }
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    out.stderr.write(`lunlink: internal error: ${text}\n`);
    return 1;
  }
}
