// mirror: a LocalMirror full resync against `dd iflag=direct oflag=direct bs=1M` copying the same
// volume between the same two loop devices (--direct-io=on), in the same run. Both copy in 1 MiB
// requests, one at a time; lunlink also syncs the destination at the end (dd: oflag=direct only).
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";

import { Volume, formatVolume } from "../lib/index.ts";
import { LocalMirror } from "../lib/mirror/local.ts";
import { machineLine } from "./machine.ts";
import { withScratch } from "./scratch.ts";
import { mbps, numberArg, ratio, table } from "./stats.ts";

const VOLUME_BYTES = 512 * 1024 * 1024;

export async function mirrorBench(args: string[]): Promise<void> {
  const rounds = numberArg(args, "--rounds", 3);
  await withScratch(async (scratch) => {
    const source = scratch.loop("send.img", VOLUME_BYTES);
    const destination = scratch.loop("receive.img", VOLUME_BYTES);
    console.log(`# mirror: full resync, LocalMirror vs dd bs=1M iflag=direct oflag=direct, ${VOLUME_BYTES / 1024 / 1024} MiB, best of ${rounds}`);
    console.log(machineLine());
    console.log(`volumes: ${source} -> ${destination} (loop, dio=on, over files on ext4)\n`);
    const src = await Volume.open(source, { dsync: true });
    await formatVolume(src, { writerNode: 1, peerNode: 2, force: true });
    await src.close();
    let lunlinkBest = 0;
    let ddBest = 0;
    for (let r = 0; r < rounds; r++) {
      const a = await Volume.open(source, { readOnly: true });
      const b = await Volume.open(destination);
      const mirror = await LocalMirror.open(a, b, { force: true });
      const t0 = performance.now();
      await mirror.resync();
      const s = (performance.now() - t0) / 1000;
      lunlinkBest = Math.max(lunlinkBest, VOLUME_BYTES / s);
      await a.close();
      await b.close();
      const t1 = performance.now();
      execFileSync("dd", [`if=${source}`, `of=${destination}`, "bs=1M", "iflag=direct", "oflag=direct", "conv=notrunc", "status=none"]);
      ddBest = Math.max(ddBest, VOLUME_BYTES / ((performance.now() - t1) / 1000));
    }
    console.log(table(["copy", "MB/s", "vs dd"], [["LocalMirror.resync", mbps(lunlinkBest), ratio(lunlinkBest, ddBest)], ["dd bs=1M direct", mbps(ddBest), "1.00"]]));
  });
}
