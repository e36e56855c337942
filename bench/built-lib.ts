// The lunlink library a benchmark measures: by default the built dist/ (`npm run build`, what a user's
// `import "lunlink"` loads), rebuilt first when a file under lib/ is newer than it; `--lib src`
// measures lib/ through tsx instead (its module-name helper costs ~1.7 us per request). A process
// loads only one of the two: both copies would each init the addon's one completion dispatcher.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export type Lunlink = typeof import("../lib/index.ts");

const root = dirname(dirname(fileURLToPath(import.meta.url)));

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The library to measure and a line naming it (printed with the suite's header). */
export async function loadLunlink(args: string[]): Promise<{ lib: Lunlink; description: string }> {
  const at = args.indexOf("--lib");
  const which = at < 0 ? "dist" : args[at + 1];
  if (which === "src") {
    return { lib: (await import(pathToFileURL(join(root, "lib/index.ts")).href)) as Lunlink, description: "lib/ (TypeScript source through tsx)" };
  }
  if (which !== "dist") throw new Error("bench: --lib takes dist (the default: the built dist/) or src (lib/ through tsx)");
  const entry = join(root, "dist/lib/index.js");
  const sourceMs = newestMtimeMs(join(root, "lib"));
  let rebuilt = false;
  if (!existsSync(entry) || statSync(entry).mtimeMs < sourceMs || newestMtimeMs(join(root, "dist/lib")) < sourceMs) {
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
    rebuilt = true;
  }
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
  const dirty = execFileSync("git", ["status", "--porcelain", "--", "lib"], { cwd: root, encoding: "utf8" }).trim() !== "";
  return {
    lib: (await import(pathToFileURL(entry).href)) as Lunlink,
    description: `${relative(root, entry)} (tsc build of lib/ at ${commit}${dirty ? " with uncommitted changes" : ""}${rebuilt ? ", rebuilt now" : ""})`,
  };
}
