// Driving test/helpers/link-peer.ts (one Link per lab node, numbered control and data both ways) from
// a device test: start both, wait until they are ready, and collect their reports at the end.
import { once } from "node:events";
import type { ChildProcess } from "node:child_process";

import type { LinkStatus } from "../../lib/link/link.ts";
import type { Lab } from "../../lib/node/lab.ts";

export interface PeerReport {
  control: number[];
  dataDistinct: number;
  dataDuplicatesDelivered: number;
  sentData: number;
  status: LinkStatus;
}

/** One link peer per node, sending `controlCount` control and `dataCount` data messages, one round every `paceMs`. */
export async function startPeers(lab: Lab, controlCount: number, dataCount: number, paceMs = 5): Promise<ChildProcess[]> {
  const peers = lab.nodes.map((n) => lab.spawnIn(n.id, process.execPath, ["--import=tsx", "test/helpers/link-peer.ts", n.configPath, String(controlCount), String(dataCount), String(paceMs)]));
  await Promise.all(
    peers.map(async (c) => {
      const [chunk] = (await once(c.stdout!, "data")) as [Buffer];
      if (!String(chunk).includes("ready")) throw new Error(`peer did not start: ${String(chunk)}`);
    }),
  );
  return peers;
}

/** Tells every peer to finish and returns their reports (a peer that fails rejects with its stderr). */
export async function finishPeers(peers: ChildProcess[]): Promise<PeerReport[]> {
  return Promise.all(
    peers.map(async (c) => {
      let out = "";
      let err = "";
      c.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
      c.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
      c.stdin!.end("finish\n");
      const [code] = (await once(c, "exit")) as [number | null];
      if (code !== 0) throw new Error(`link peer exited ${code}: ${err}`);
      return JSON.parse(out.trim().split("\n").at(-1)!) as PeerReport;
    }),
  );
}
