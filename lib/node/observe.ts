// What a running node tells its operator besides `status`: ring faults logged (at most one line per
// reason per FAULT_LOG_INTERVAL_MS, with how many were held back, through the LogLimiter the UDP side
// uses), the timeline of transitions, and the Prometheus metrics (histograms fed from link events).
// The ring observer must exist before the link opens (it goes into the reader's options), so this is
// built first and attached to the link once it is up.
import { performance } from "node:perf_hooks";
import type pino from "pino";

import { FAULT_LOG_INTERVAL_MS, LogLimiter } from "../link/log-limiter.ts";
import type { Link, LinkStatus } from "../link/link.ts";
import { LinkMetrics } from "../link/metrics.ts";
import type { FaultReason, RingFault, RingObserver } from "../ring/fault-memory.ts";
import { Timeline } from "./timeline.ts";

/** What each ring fault means, for the log line (warn: an attack or lost data; info: expected while records are in transit). */
const RING_FAULTS: Record<FaultReason, { level: "warn" | "info"; what: string }> = {
  authFailures: { level: "warn", what: "peer ring content failed authentication (forged, corrupted or another key): refused" },
  downgrades: { level: "warn", what: "unauthenticated content on a keyed ring (downgrade): refused" },
  replays: { level: "warn", what: "authentic but old content on the peer ring (replayed or restored): refused" },
  tornSeen: { level: "info", what: "torn record on the peer ring (normal while it is written or mirrored; damaged only if it stays)" },
  damaged: { level: "warn", what: "damaged record on the peer ring skipped (records lost)" },
};

export class NodeObservability {
  readonly timeline = new Timeline();
  readonly metrics: LinkMetrics;
  private readonly log: pino.Logger;
  private readonly limiter: LogLimiter;
  private readonly wallMs: () => number;
  private readonly nowMs: () => number;

  constructor(log: pino.Logger, options: { defaultMetrics?: boolean; logIntervalMs?: number; nowMs?: () => number; wallMs?: () => number } = {}) {
    this.log = log;
    this.metrics = new LinkMetrics({ defaultMetrics: options.defaultMetrics ?? true });
    this.limiter = new LogLimiter(options.logIntervalMs ?? FAULT_LOG_INTERVAL_MS);
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.wallMs = options.wallMs ?? (() => Date.now());
  }

  /** For the storage path's reader (LinkOptions.storage.observer). */
  readonly ringObserver: RingObserver = {
    fault: (fault) => this.ringFault(fault),
    delivered: (timestampMs) => this.metrics.observeStorageLatency(Number(timestampMs), this.wallMs()),
  };

  /** A ring fault, counted once by the reader: logged unless its reason was logged less than the interval ago. */
  ringFault(fault: RingFault): void {
    const admitted = this.limiter.admit(`ring:${fault.reason}`, this.nowMs());
    if (!admitted.log) return;
    const meaning = RING_FAULTS[fault.reason];
    const fields = { event: "ring-fault", reason: fault.reason, source: fault.source, offsetBytes: fault.offsetBytes, seq: String(fault.seq), epoch: String(fault.epoch), detail: fault.detail, total: fault.total, suppressed: admitted.suppressed };
    const held = admitted.suppressed === 0 ? "" : ` (${admitted.suppressed} more since the last line)`;
    this.log[meaning.level](fields, `${meaning.what}: ${fault.source} at offset ${fault.offsetBytes}, seq ${fault.seq}, epoch ${fault.epoch}: ${fault.detail}; total ${fault.total}${held}`);
  }

  /** Follows the link's transitions and storage changes (timeline, failover histogram) and exposes its status to the metrics. */
  attach(link: Link, tun?: () => { packetsIn: number; packetsOut: number }): void {
    // Transitions before attach (while the link opened), their monotonic times moved to the wall clock.
    const [mono, wall] = [this.nowMs(), this.wallMs()];
    for (const t of link.core.paths.transitions) this.timeline.transition(t, wall - (mono - t.atMs));
    link.on("transition", (t) => {
      this.timeline.transition(t, this.wallMs());
      if (t.kind === "active" && t.from === "primary" && t.to === "storage") this.metrics.observeFailover(t.atMs - link.core.paths.primary.lastHeardMs);
    });
    link.on("storage", (c) => this.timeline.storage(c, this.wallMs()));
    this.metrics.addLink({ status: () => link.status(), ...(tun === undefined ? {} : { tun }) });
  }

  /** The link's status with the timeline (oldest first) added. */
  status(link: { status(): LinkStatus }): LinkStatus & { timeline: ReturnType<Timeline["entries"]> } {
    return { ...link.status(), timeline: this.timeline.entries() };
  }
}
