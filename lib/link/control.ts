// Reliable, in-order delivery for the control class, sans-IO: the sender numbers messages, keeps
// them until the peer's cumulative ack covers them and retransmits after rtoMs on whichever path is
// up; the receiver delivers in sequence, holds a bounded number that arrived early, and acks the
// highest contiguous sequence. Both windows are bounded (MAX_UNACKED, MAX_EARLY): a sender at the
// bound refuses new messages (the caller waits), a receiver past it drops (the sender retransmits).
export const MAX_UNACKED = 256;
export const MAX_EARLY = 256;

interface Outstanding {
  seq: bigint;
  payload: Uint8Array;
  sentAtMs: number;
}

export class ControlSender {
  private nextSeq = 1n;
  private readonly unacked: Outstanding[] = [];
  retransmits = 0;

  get pending(): number {
    return this.unacked.length;
  }

  get full(): boolean {
    return this.unacked.length >= MAX_UNACKED;
  }

  /** Numbers a message (copied) for its first transmission; undefined when the window is full. */
  submit(payload: Uint8Array, nowMs: number): { seq: bigint; payload: Uint8Array } | undefined {
    if (this.full) return undefined;
    const entry = { seq: this.nextSeq++, payload: payload.slice(), sentAtMs: nowMs };
    this.unacked.push(entry);
    return entry;
  }

  /**
   * The peer restarted and expects seq 1 again: what it never acked is renumbered from 1, in order,
   * and sent again at the next retransmission.
   */
  restart(): void {
    let seq = 1n;
    for (const entry of this.unacked) {
      entry.seq = seq++;
      entry.sentAtMs = Number.NEGATIVE_INFINITY;
    }
    this.nextSeq = seq;
  }

  /** The peer received everything up to `ack`. Returns how many messages that released. */
  acked(ack: bigint): number {
    let released = 0;
    while (this.unacked.length > 0 && this.unacked[0]!.seq <= ack) {
      this.unacked.shift();
      released++;
    }
    return released;
  }

  /** Messages whose last transmission is older than rtoMs (each re-stamped as sent now). */
  due(nowMs: number, rtoMs: number): { seq: bigint; payload: Uint8Array }[] {
    const out: { seq: bigint; payload: Uint8Array }[] = [];
    for (const entry of this.unacked) {
      if (nowMs - entry.sentAtMs < rtoMs) continue;
      entry.sentAtMs = nowMs;
      out.push(entry);
      this.retransmits++;
    }
    return out;
  }
}

export type ReceiveVerdict = "delivered" | "early" | "duplicate" | "dropped";

export class ControlReceiver {
  /** Highest sequence delivered in order (the cumulative ack). */
  delivered = 0n;
  duplicates = 0;
  dropped = 0;
  private readonly early = new Map<bigint, Uint8Array>();

  /** The peer restarted: numbering starts again at 1. */
  reset(): void {
    this.delivered = 0n;
    this.early.clear();
  }

  /**
   * Takes one message; `deliver` is called for it and for every held message it makes contiguous,
   * in order. The payload is copied only when it must be held.
   */
  receive(seq: bigint, payload: Uint8Array, deliver: (payload: Uint8Array) => void): ReceiveVerdict {
    if (seq <= this.delivered || this.early.has(seq)) {
      this.duplicates++;
      return "duplicate";
    }
    if (seq !== this.delivered + 1n) {
      // Held messages lie in (delivered + 1, delivered + MAX_EARLY]: the distance bounds the map.
      if (seq - this.delivered > BigInt(MAX_EARLY)) {
        this.dropped++;
        return "dropped";
      }
      this.early.set(seq, payload.slice());
      return "early";
    }
    deliver(payload);
    this.delivered = seq;
    for (;;) {
      const next = this.early.get(this.delivered + 1n);
      if (next === undefined) break;
      this.early.delete(this.delivered + 1n);
      deliver(next);
      this.delivered++;
    }
    return "delivered";
  }
}
