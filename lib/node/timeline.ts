// The node's timeline: the last TIMELINE_ENTRIES transitions (path states, active path, event-loop
// pauses, storage components) with the wall-clock time and the reason in words, for `lunlink status`
// and `status --json`. The link's own transition list is in monotonic ms for the state machine; this
// one is what an operator reads at 3 a.m. Bounded ring: the oldest entry goes first. No I/O.
import type { StateChange } from "../io/supervisor.ts";
import type { Transition } from "../link/paths.ts";

/** Entries kept (oldest dropped first): enough for a flapping hour's last swings, short enough to read. */
export const TIMELINE_ENTRIES = 32;

export interface TimelineEntry {
  /** Wall-clock time, ISO 8601 (UTC). */
  at: string;
  kind: "path" | "active" | "pause" | "storage";
  /** path: "primary" | "storage"; active: "path"; pause: "event loop"; storage: "send volume" | "receive volume". */
  subject: string;
  from: string;
  to: string;
  reason: string;
}

export class Timeline {
  private readonly ring: TimelineEntry[] = [];
  /** Entries dropped off the front since the node started. */
  dropped = 0;

  push(entry: TimelineEntry): void {
    this.ring.push(entry);
    if (this.ring.length > TIMELINE_ENTRIES) {
      this.ring.shift();
      this.dropped++;
    }
  }

  /** Oldest first. */
  entries(): TimelineEntry[] {
    return [...this.ring];
  }

  /** A link transition (LinkState) at wall-clock `wallMs`. */
  transition(t: Transition, wallMs: number): void {
    const at = new Date(wallMs).toISOString();
    if (t.kind === "pause") this.push({ at, kind: "pause", subject: "event loop", from: "running", to: "paused", reason: t.detail });
    else if (t.kind === "active") this.push({ at, kind: "active", subject: "path", from: t.from, to: t.to, reason: t.detail });
    else this.push({ at, kind: "path", subject: t.subject, from: t.from, to: t.to, reason: pathReason(t) });
  }

  /** A storage component's state change (fault, recovery, configuration fault) at wall-clock `wallMs`. */
  storage(c: StateChange, wallMs: number): void {
    const reason =
      c.fault !== undefined ? `${c.fault.code}: ${c.fault.message}` : c.outageMs !== undefined ? `recovered after ${(c.outageMs / 1000).toFixed(1)} s` : c.to === "up" ? "opened" : c.to;
    this.push({ at: new Date(wallMs).toISOString(), kind: "storage", subject: `${c.component} volume`, from: c.from, to: c.to, reason });
  }
}

/** "reason rx" / "reason tx" from the path monitor, in words. */
function pathReason(t: Transition): string {
  if (t.to === "up") return "heartbeats both ways";
  if (t.detail.endsWith("rx")) return "nothing heard from the peer (rx)";
  if (t.detail.endsWith("tx")) return "the peer does not echo our heartbeats: one-way (tx)";
  return t.detail;
}
