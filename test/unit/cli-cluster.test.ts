// `lunlink format --cluster`, and append/tail/inspect on a cluster volume, run as a user runs them
// (the CLI in a child process, from source), on an O_DIRECT file.
import { execFile } from "node:child_process";

import test from "ava";

import { sparseFile } from "../helpers/scratch.ts";

const CLI = new URL("../helpers/lunlink-cli.ts", import.meta.url).pathname;

function lunlink(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import=tsx", CLI, ...args], { encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
    });
  });
}

test("format --cluster --nodes 3; append as node 2 to node 3 and to all; node 3 tails node 2's region; inspect shows every region", async (t) => {
  const path = await sparseFile(t, 4 * 1024 * 1024, "cluster.img");
  const formatted = await lunlink("format", path, "--cluster", "--nodes", "3");
  t.is(formatted.code, 0, formatted.stderr);
  t.regex(formatted.stdout, /cluster volume of 3 nodes \(format version 2\)/);
  t.regex(formatted.stdout, /node 3: region 2 at block 681/);
  t.is((await lunlink("append", path, "--node", "2", "--to", "3", "hello three")).code, 0);
  t.is((await lunlink("append", path, "--node", "2", "hello all")).code, 0);
  const tail = await lunlink("tail", path, "--node", "3", "--writer", "2", "--json");
  t.is(tail.code, 0, tail.stderr);
  t.deepEqual(
    tail.stdout.trim().split("\n").map((l) => { const { text, flags } = JSON.parse(l) as { text: string; flags: number }; return { text, flags }; }),
    [{ text: "hello three", flags: 3 }, { text: "hello all", flags: 0 }],
    "the frames of node 2's region with their destinations (0 = broadcast)",
  );
  const noWriter = await lunlink("tail", path, "--node", "3");
  t.is(noWriter.code, 1);
  t.regex(noWriter.stderr, /ERR_LUNLINK_NOT_FORMATTED: .* is a cluster volume .*tail --writer W/);
  const inspect = await lunlink("inspect", path);
  t.is(inspect.code, 0, inspect.stderr);
  t.is(inspect.stdout.match(/^-- node \d, region at block \d+$/gm)?.length, 3);
  t.regex(inspect.stdout, /ring {9}2 records \(2 frames\)/);
  const again = await lunlink("format", path, "--cluster", "--nodes", "3");
  t.is(again.code, 1);
  t.regex(again.stderr, /ERR_LUNLINK_ALREADY_FORMATTED/);
  const one = await lunlink("format", path, "--cluster", "--nodes", "1", "--force");
  t.is(one.code, 2, "a usage error");
  t.regex(one.stderr, /ERR_LUNLINK_INVALID_ARGUMENT: nodes/);
  const mixed = await lunlink("format", path, "--cluster", "--nodes", "3", "--node", "1");
  t.regex(mixed.stderr, /--node .*not with --cluster/);
});
