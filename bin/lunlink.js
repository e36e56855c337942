#!/usr/bin/env node
// The `lunlink` command: a thin launcher for the compiled CLI in dist/.
import { main } from "../dist/lib/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
