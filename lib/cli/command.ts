// The shape of one `lunlink` subcommand: main.ts dispatches to these, each command module exports
// one or more (kept apart from main.ts so command modules do not import the dispatcher).
import type { Output } from "./output.ts";

export interface Command {
  summary: string;
  usage: string;
  /** Resolves with the exit status (0 when nothing is returned); errors map to 1 or 2 in main.ts. */
  run(args: string[], out: Output): Promise<void | number>;
}
