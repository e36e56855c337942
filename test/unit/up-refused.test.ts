// `lunlink up` with a receive path it cannot follow (missing; not a lunlink volume) exits non-zero with
// the coded error, and the send volume is byte for byte what it was: no new epoch, no superblock or
// status write, so fixing the config and starting again begins from the same ring. It fails before the
// TUN device is opened, so no privilege or namespace is needed. The CLI runs from dist/ (npm run build).
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";

import { Volume } from "../../lib/io/volume.ts";
import { formatVolume } from "../../lib/ring/superblocks.ts";
import { scratchDir, sparseFileIn } from "../helpers/scratch.ts";

const BIN = new URL("../../bin/lunlink.js", import.meta.url).pathname;
const MiB = 1024 * 1024;

function lunlink(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function digest(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

for (const bad of [
  { what: "missing", code: "ERR_LUNLINK_NOT_FOUND", make: async (dir: string) => join(dir, "no-such-volume.img") },
  { what: "not a lunlink volume", code: "ERR_LUNLINK_NOT_FORMATTED", make: (dir: string) => sparseFileIn(dir, 2 * MiB, "blank.img") },
]) {
  test(`lunlink up with a receive path that is ${bad.what}: ${bad.code}, the send volume untouched`, async (t) => {
    const dir = await scratchDir(t);
    const send = await sparseFileIn(dir, 2 * MiB, "node1-send.img");
    const v = await Volume.open(send);
    await formatVolume(v, { writerNode: 1, peerNode: 2, ringBlocks: 128n });
    await v.close();
    const receive = await bad.make(dir);
    const config = join(dir, "node1.json");
    await writeFile(
      config,
      JSON.stringify({
        node: 1,
        peer: 2,
        scheduling: "normal",
        tun: { name: "llrefused0", address: "198.18.100.1/24" },
        primary: { bind: "127.0.0.1:47410", peer: "127.0.0.1:47412" },
        storage: { send, receive },
        control: { socket: join(dir, "node1.sock") },
      }),
    );
    const before = await digest(send);
    const up = await lunlink("up", "--config", config);
    t.not(up.code, 0, up.stderr);
    t.true(up.stderr.includes(bad.code) || up.stdout.includes(bad.code), `${up.stdout}\n${up.stderr}`);
    t.is(await digest(send), before, "the send volume's epoch, superblocks and status are unchanged");
  });
}
