// Driving test/helpers/link-peer.ts (one Link per lab node, numbered control and data both ways) from
// a device test: start both, wait until they are ready, and collect their reports at the end.
import { once } from "node:events";
import type { ChildProcess } from "node:child_process";

import type { LinkStatus } from "../../lib/link/link.ts";
import { LinkState, type Active, type LinkTimers, type PathState } from "../../lib/link/paths.ts";
import type { Lab } from "../../lib/node/lab.ts";

export interface PeerReport {
  control: number[];
  dataDistinct: number;
  dataDuplicatesDelivered: number;
  /** The distinct data numbers this peer received, ascending. */
  dataReceived: number[];
  sentData: number;
  /** performance.now() of each data message's send, by number (the clock of status.transitions). */
  sentAtMs: number[];
  timers: LinkTimers;
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

/** Stops every peer (sending ends, in-flight data drains), then has each report; a peer that fails rejects with its stderr. */
export async function finishPeers(peers: ChildProcess[]): Promise<PeerReport[]> {
  const outputs = peers.map((c) => {
    const o = { out: "", err: "" };
    c.stdout!.on("data", (chunk: Buffer) => (o.out += chunk.toString()));
    c.stderr!.on("data", (chunk: Buffer) => (o.err += chunk.toString()));
    return o;
  });
  const exits = peers.map(async (c) => (await once(c, "exit")) as [number | null]);
  // Phase 1: every peer stops and drains (each bounds its own waits; 60 s is its hard limit).
  for (const c of peers) c.stdin!.write("stop\n");
  await Promise.all(
    peers.map(async (c, i) => {
      while (!outputs[i]!.out.includes('"stopped"')) {
        const r = await Promise.race([once(c.stdout!, "data").then(() => "data"), exits[i]!.then(() => "exit")]);
        if (r === "exit") break;
      }
    }),
  );
  // Phase 2: reports.
  for (const c of peers) c.stdin!.end("finish\n");
  return Promise.all(
    peers.map(async (c, i) => {
      const [code] = await exits[i]!;
      if (code !== 0) throw new Error(`link peer exited ${code}: ${outputs[i]!.err}`);
      return JSON.parse(outputs[i]!.out.trim().split("\n").at(-1)!) as PeerReport;
    }),
  );
}

/** Which paths a data message went on, replayed from the sender's transitions at its send time. */
export type DataRoute = "primary" | "storage" | "both" | "isolated";

/**
 * Replays the sender's transitions into a LinkState (its path states, active path and failback
 * drain) and asks the product's own rule, `dataPaths`, where each data message went. Whether the
 * ring had drained is not in the report: it is taken as not drained, so drain-window messages count
 * as storage-carried, the stricter reading (their loss must be counted by the product).
 */
export function dataRoutes(sender: PeerReport): DataRoute[] {
  const events = [...sender.status.transitions].sort((x, y) => x.atMs - y.atMs);
  const state = new LinkState(sender.timers);
  let e = 0;
  return sender.sentAtMs.map((at) => {
    for (; e < events.length && events[e]!.atMs <= at; e++) {
      const x = events[e]!;
      if (x.kind === "path" && (x.subject === "primary" || x.subject === "storage")) state[x.subject].state = x.to as PathState;
      if (x.kind === "active") {
        if (x.from === "storage" && x.to === "primary") state.drainUntilMs = x.atMs + sender.timers.failbackDrainMs;
        state.active = x.to as Active;
      }
    }
    if (state.active === "isolated") return "isolated";
    const paths = state.dataPaths(at, false);
    return paths.primary && paths.storage ? "both" : paths.primary ? "primary" : "storage";
  });
}

/**
 * The data the receiver never got, by route, against what the product counted as dropped: the
 * sender's storage drops (ring queue full), the receiver's too-old and ring-overwritten counts.
 * A network may lose what went on the primary alone (sent into a cut before the sender noticed) and
 * what was offered while no path was up (isolated); what went on storage is lost only where a
 * counter says so.
 */
export function dataLoss(sender: PeerReport, receiver: PeerReport): { lost: Record<DataRoute, number>; counted: number } {
  const got = new Set(receiver.dataReceived);
  const lost: Record<DataRoute, number> = { primary: 0, storage: 0, both: 0, isolated: 0 };
  dataRoutes(sender).forEach((route, id) => {
    if (!got.has(id)) lost[route]++;
  });
  const counted = sender.status.counters.dataDroppedStorage + receiver.status.counters.dataTooOld + Number(receiver.status.ring.readerCounters.lost);
  return { lost, counted };
}
