// The storage side of a node as its per-peer links see it: our one send ring and, per peer, the ring
// we read from it. A pair's StoragePath is the one-peer case (peer 0); a cluster node's ClusterStorage
// has one receive ring per peer. A PeerLink (peer-link.ts) needs nothing else of either.
// Invariants: `peer` is an index into the peer list the storage was opened with; a frame handed to
// PeerFrameHandler was addressed to this node (or to every node) and is a view valid during the call.
import type { FrameType } from "../format/layout.ts";
import type { Volume } from "../io/volume.ts";
import type { ComponentReport, Supervisor } from "../io/supervisor.ts";

/** What an append did: queued on the writer, or not taken (dropped or full queue, writer "down" while it recovers). */
export type AppendResult = "queued" | "dropped" | "full" | "down";

export interface PeerStorage {
  /** Our send ring's current (or last) epoch: strictly higher on every open (a session's high bits). */
  readonly epoch: bigint;
  /** Queues one frame on our ring for peer `peer`. */
  append(peer: number, type: FrameType, frame: Uint8Array): AppendResult;
  /** Has peer `peer` acked every record we wrote (a writer that is down has nothing to drain)? */
  drained(peer: number): boolean;
  /** Our send ring and peer `peer`'s receive ring: up, recovering (with why) or failed. */
  report(peer: number): StorageReport;
  close(): Promise<void>;
}

/** A frame of peer `peer`'s ring for this node (a view of `bytes`, valid during the call). */
export type PeerFrameHandler = (peer: number, type: number, bytes: Uint8Array, offset: number, length: number) => void;

export interface VolumeReport extends ComponentReport {
  path: string;
  /** While stalled: how long its oldest parked request has waited (time stalled plus the deadline it passed). */
  stalledForMs: number | null;
}

export type StorageState = "up" | "recovering" | "failed";

export interface StorageReport {
  /** up: both components work; recovering: one is stalled or retrying; failed: a configuration fault. */
  state: StorageState;
  send: VolumeReport;
  receive: VolumeReport;
}

/** One supervised component on `volume` as the status shows it. */
export function volumeReport(s: Supervisor, path: string, volume: Volume): VolumeReport {
  const r = s.report();
  return { ...r, path, stalledForMs: r.state === "stalled" ? r.forMs + volume.ioTimeoutMs : null };
}

/** A send ring and a receive ring together: failed if either is, up if both are, else recovering. */
export function storageReport(send: VolumeReport, receive: VolumeReport): StorageReport {
  const state: StorageState = send.state === "failed" || receive.state === "failed" ? "failed" : send.state === "up" && receive.state === "up" ? "up" : "recovering";
  return { state, send, receive };
}
