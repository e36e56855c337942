// Which peers hold a cluster ring back, as pure bookkeeping (no I/O, no clock of its own: the
// writer core passes nowMs). A peer whose status heartbeat has not moved for peerDownMs is released
// (it no longer holds the ring back; reported once) and holds it again once its heartbeat moves.
// A record is acked when every holding peer acked it; each peer's delivered mark, as written to the
// status block, is never lowered. Bounds: MAX_PEER_ROWS peers, 2 x MAX_PEER_ROWS unreported events.
import { MAX_PEER_ROWS } from "../format/layout.ts";
import { PEER_RELEASED, type PeerRow } from "../format/status.ts";
import { MAX_SEQ } from "./keys.ts";
import type { Ack, PeerAckInput, RingWriterCounters } from "./writer-options.ts";

/** Per-peer liveness as the writer sees it: released peers no longer hold the ring back. */
interface PeerHold {
  heartbeat: bigint;
  changedAtMs: number;
  released: boolean;
}

export class PeerHolds {
  /** Peers released or back since the shell last looked (it reports them); bound: 2 x MAX_PEER_ROWS. */
  readonly events: { node: number; released: boolean }[] = [];
  private readonly holds = new Map<number, PeerHold>();
  /** The highest delivered mark per peer ever written (persisted across restarts). */
  private readonly deliveredByPeer = new Map<number, Ack>();
  private readonly peerDownMs: number;
  private readonly counters: Pick<RingWriterCounters, "peersReleased" | "peersReturned">;

  /** `persisted`: the rows found in the volume's status block at open (their delivered marks are kept). */
  constructor(peerDownMs: number, persisted: readonly PeerRow[], counters: Pick<RingWriterCounters, "peersReleased" | "peersReturned">) {
    this.peerDownMs = peerDownMs;
    this.counters = counters;
    for (const row of persisted) if (row.node !== 0 && row.deliveredSeq > 0n) this.deliveredByPeer.set(row.node, { epoch: row.deliveredEpoch, seq: row.deliveredSeq });
  }

  /** Takes the peers' heartbeats at nowMs: releases the silent ones, takes back those that moved. peerDownMs 0: never released. */
  track(nowMs: number, peers: readonly PeerAckInput[]): void {
    if (peers.length > MAX_PEER_ROWS) throw new Error(`assertion failed: ${peers.length} peers, at most ${MAX_PEER_ROWS}`);
    for (const peer of peers) {
      const hold = this.holds.get(peer.node);
      if (hold === undefined) {
        if (this.holds.size >= MAX_PEER_ROWS) throw new Error(`assertion failed: more than ${MAX_PEER_ROWS} peers seen`);
        this.holds.set(peer.node, { heartbeat: peer.heartbeat, changedAtMs: nowMs, released: false });
        continue;
      }
      if (peer.heartbeat !== hold.heartbeat) {
        hold.heartbeat = peer.heartbeat;
        hold.changedAtMs = nowMs;
        if (hold.released) {
          hold.released = false;
          this.counters.peersReturned++;
          this.events.push({ node: peer.node, released: false });
        }
      } else if (!hold.released && this.peerDownMs > 0 && nowMs - hold.changedAtMs >= this.peerDownMs) {
        hold.released = true;
        this.counters.peersReleased++;
        this.events.push({ node: peer.node, released: true });
      }
    }
    if (this.events.length > 2 * MAX_PEER_ROWS) this.events.splice(0, this.events.length - 2 * MAX_PEER_ROWS);
  }

  /** The ack every holding peer gave (the lowest of theirs); a holding peer without one: undefined; all released: everything is free. */
  holdingAck(peers: readonly PeerAckInput[]): Ack | undefined {
    let lowest: Ack | undefined = { epoch: 0n, seq: MAX_SEQ };
    for (const peer of peers) {
      if (this.holds.get(peer.node)?.released === true) continue;
      if (peer.ack === undefined) return undefined;
      if (peer.ack.seq < lowest.seq) lowest = peer.ack;
    }
    return lowest;
  }

  /** Nodes released now (no longer holding the ring back). */
  get released(): number[] {
    return [...this.holds].filter(([, hold]) => hold.released).map(([node]) => node);
  }

  /** The status block's rows: delivered marks never lowered, the released flag from this writer's view. */
  statusRows(rows: readonly PeerRow[]): PeerRow[] {
    return rows.map((row) => {
      const kept = this.deliveredByPeer.get(row.node);
      const given = { epoch: row.deliveredEpoch, seq: row.deliveredSeq };
      const delivered = kept !== undefined && !newer(given, kept) ? kept : given;
      if (delivered.seq > 0n) this.deliveredByPeer.set(row.node, delivered);
      const flags = this.holds.get(row.node)?.released === true ? PEER_RELEASED : 0;
      return { ...row, flags, deliveredEpoch: delivered.epoch, deliveredSeq: delivered.seq };
    });
  }
}

/** (epoch, seq) order. */
export function newer(a: Ack, b: Ack): boolean {
  return a.epoch !== b.epoch ? a.epoch > b.epoch : a.seq > b.seq;
}
