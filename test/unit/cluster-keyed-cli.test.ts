// Keyed cluster tools (issue #14, docs/format.md "Keyed clusters"): `append --to`, `tail --writer` and
// `inspect` on a keyed cluster volume file take --cluster-secret FILE, run through the CLI in-process
// (lib/cli/main.ts main). With the secret, frames appended by one node are delivered to the tail of
// another (decrypted); without it both stop with ERR_LUNLINK_KEY_REQUIRED (the message names the
// option), with another cluster's secret with ERR_LUNLINK_WRONG_KEY, and with a secret on an unkeyed
// cluster volume with ERR_LUNLINK_DOWNGRADE. inspect verifies each region's MACs.
import { readFile } from "node:fs/promises";
import test, { type ExecutionContext } from "ava";

import { main } from "../../lib/cli/main.ts";
import { writeClusterSecretFile } from "../../lib/node/cluster-secret.ts";
import { scratchDir, sparseFileIn } from "../helpers/scratch.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function lunlink(...args: string[]): Promise<Run> {
  const run = { stdout: "", stderr: "" };
  const io = { stdout: { write: (s: string) => (run.stdout += s) }, stderr: { write: (s: string) => (run.stderr += s) } };
  const code = await main(args, io);
  return { code, ...run };
}

/** A scratch dir with a cluster secret, a second (wrong) one, and a 3-node cluster volume file, keyed or not. */
async function setup(t: ExecutionContext, keyed: boolean): Promise<{ volume: string; secret: string; wrong: string }> {
  const dir = await scratchDir(t);
  const secret = `${dir}/cluster.secret`;
  const wrong = `${dir}/other.secret`;
  await writeClusterSecretFile(secret, false);
  await writeClusterSecretFile(wrong, false);
  const volume = await sparseFileIn(dir, 4 * 1024 * 1024, "cluster.img");
  const formatted = await lunlink("format", volume, "--cluster", "--nodes", "3", ...(keyed ? ["--cluster-secret", secret] : []));
  t.is(formatted.code, 0, formatted.stderr);
  return { volume, secret, wrong };
}

function frames(stdout: string): { text: string; flags: number }[] {
  return stdout
    .trim()
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const { text, flags } = JSON.parse(l) as { text: string; flags: number };
      return { text, flags };
    });
}

test("keyed cluster volume: append --to with --cluster-secret, then tail --writer with it delivers the frames; the payload is not on the volume in clear", async (t) => {
  const { volume, secret } = await setup(t, true);
  const toThree = await lunlink("append", volume, "--node", "2", "--to", "3", "--cluster-secret", secret, "secret hello three");
  t.is(toThree.code, 0, toThree.stderr);
  const first = await lunlink("tail", volume, "--node", "3", "--writer", "2", "--cluster-secret", secret, "--json");
  t.is(first.code, 0, first.stderr);
  t.deepEqual(frames(first.stdout), [{ text: "secret hello three", flags: 3 }], "the frame, decrypted, with its destination");
  t.is(first.stderr, "");
  // Each append is a writer epoch with a fresh salt; a reader derives record keys only from the
  // superblock it verifies, so an earlier epoch's records are counted lost, and said so.
  const toAll = await lunlink("append", volume, "--node", "2", "--cluster-secret", secret, "secret hello all");
  t.is(toAll.code, 0, toAll.stderr);
  const second = await lunlink("tail", volume, "--node", "1", "--writer", "2", "--cluster-secret", secret, "--json");
  t.is(second.code, 0, second.stderr);
  t.deepEqual(frames(second.stdout), [{ text: "secret hello all", flags: 0 }], "the broadcast, read by node 1");
  t.regex(second.stderr, /warning: 1 record\(s\) lost/);
  const bytes = await readFile(volume);
  t.is(bytes.indexOf("secret hello"), -1, "records are encrypted on the volume");
});

test("keyed cluster volume without --cluster-secret: append and tail stop with ERR_LUNLINK_KEY_REQUIRED naming the option", async (t) => {
  const { volume, secret } = await setup(t, true);
  const append = await lunlink("append", volume, "--node", "2", "--to", "3", "no key");
  t.is(append.code, 1);
  t.regex(append.stderr, /ERR_LUNLINK_KEY_REQUIRED: .*#node2 is a keyed cluster region .*pass --cluster-secret FILE/);
  t.is((await lunlink("append", volume, "--node", "2", "--cluster-secret", secret, "keyed")).code, 0);
  const tail = await lunlink("tail", volume, "--node", "3", "--writer", "2");
  t.is(tail.code, 1);
  t.regex(tail.stderr, /ERR_LUNLINK_KEY_REQUIRED: .*pass --cluster-secret FILE/);
  t.is(tail.stdout, "", "nothing printed");
});

test("another cluster's secret: append and tail stop with ERR_LUNLINK_WRONG_KEY naming the region; inspect says failed per region", async (t) => {
  const { volume, secret, wrong } = await setup(t, true);
  const append = await lunlink("append", volume, "--node", "1", "--cluster-secret", wrong, "forged");
  t.is(append.code, 1);
  t.regex(append.stderr, /ERR_LUNLINK_WRONG_KEY: .*#node1/);
  t.is((await lunlink("append", volume, "--node", "1", "--cluster-secret", secret, "real")).code, 0);
  const tail = await lunlink("tail", volume, "--node", "2", "--writer", "1", "--cluster-secret", wrong);
  t.is(tail.code, 1);
  t.regex(tail.stderr, /ERR_LUNLINK_WRONG_KEY: .*#node1/);
  t.is(tail.stdout, "", "nothing delivered");

  const verified = await lunlink("inspect", volume, "--cluster-secret", secret);
  t.is(verified.code, 0, verified.stderr);
  t.is(verified.stdout.match(/^ {2}auth {9}superblock MAC verified, status MAC verified/gm)?.length, 3, "every region verified under the right secret");
  const failed = await lunlink("inspect", volume, "--cluster-secret", wrong, "--json");
  t.is(failed.code, 0, failed.stderr);
  const regions = (JSON.parse(failed.stdout) as { regions: { node: number; macs: { superblock: string; status: string } }[] }).regions;
  t.deepEqual(regions.map((r) => r.node), [1, 2, 3]);
  for (const r of regions) {
    t.regex(r.macs.superblock, /^failed \(ERR_LUNLINK_WRONG_KEY/, `node ${r.node}: superblock MAC failed`);
    t.regex(r.macs.status, /^failed/, `node ${r.node}: status MAC failed`);
  }
  const unverified = await lunlink("inspect", volume);
  t.is(unverified.stdout.match(/^ {2}auth {9}keyed \(key id 0x[0-9a-f]{8}\), MACs unverified/gm)?.length, 3, "without the secret: shown unverified");
});

test("a cluster secret on an unkeyed cluster volume: ERR_LUNLINK_DOWNGRADE; on a node volume: a usage error", async (t) => {
  const { volume, secret } = await setup(t, false);
  t.is((await lunlink("append", volume, "--node", "2", "unkeyed")).code, 0, "unkeyed without a secret works as before");
  const append = await lunlink("append", volume, "--node", "2", "--cluster-secret", secret, "x");
  t.is(append.code, 1);
  t.regex(append.stderr, /ERR_LUNLINK_DOWNGRADE: .*#node2/);
  const tail = await lunlink("tail", volume, "--node", "3", "--writer", "2", "--cluster-secret", secret);
  t.is(tail.code, 1);
  t.regex(tail.stderr, /ERR_LUNLINK_DOWNGRADE/);
  const inspect = await lunlink("inspect", volume, "--cluster-secret", secret);
  t.is(inspect.stdout.match(/superblock MAC failed \(ERR_LUNLINK_DOWNGRADE/g)?.length, 3);

  const dir = await scratchDir(t);
  const nodeVolume = await sparseFileIn(dir, 2 * 1024 * 1024, "node.img");
  t.is((await lunlink("format", nodeVolume, "--node", "1", "--peer", "2")).code, 0);
  const onNode = await lunlink("append", nodeVolume, "--node", "1", "--cluster-secret", secret, "x");
  t.is(onNode.code, 2);
  t.regex(onNode.stderr, /--cluster-secret must be given only with a cluster volume/);
  const noWriter = await lunlink("tail", volume, "--node", "3", "--cluster-secret", secret);
  t.is(noWriter.code, 2);
  t.regex(noWriter.stderr, /--cluster-secret must be given with --writer W/);
});
