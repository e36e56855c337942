// Argument parsing for subcommands: node:util parseArgs with lunlink's usage errors.
import { parseArgs, type ParseArgsConfig } from "node:util";

import { UsageError } from "./output.ts";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export function parse(args: string[], options: OptionSpec, positionals: { min: number; max: number }): ParsedArgs {
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const n = parsed.positionals.length;
  if (n < positionals.min || n > positionals.max) {
    const want = positionals.min === positionals.max ? `${positionals.min}` : `${positionals.min} to ${positionals.max}`;
    throw new UsageError(`expected ${want} argument${positionals.max === 1 ? "" : "s"}, found ${n}`);
  }
  return parsed;
}

export function flag(parsed: ParsedArgs, name: string): boolean {
  return parsed.values[name] === true;
}
