// Prometheus metrics of a running node with prom-client: the lunlink series, read from each link's
// status snapshot at scrape time (no second set of counters to drift), two histograms the node feeds
// as events happen (failover interruption, one-way storage latency), and prom-client's default
// process and Node.js metrics (CPU, memory, file descriptors, GC, event-loop lag, sampled once a
// second: see METRICS_LOOP_DELAY_RESOLUTION_MS). One Registry per
// node, never prom-client's global one, so several nodes in one process (tests) do not collide.
// Per-peer ready: every lunlink series carries LINK_LABEL_NAMES first; a node of N peers adds "peer"
// there and calls addLink once per peer, and every collect() below already iterates the links.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

import type { LinkStatus } from "./link.ts";

/** Labels every lunlink series carries before its own (N-node: ["peer"]). Empty for a pair. */
export const LINK_LABEL_NAMES: readonly string[] = [];

const STATE_VALUE: Record<string, number> = { down: 0, suspect: 1, up: 2 };
const COMPONENT_VALUE: Record<string, number> = { failed: 0, closed: 0, stalled: 1, retrying: 2, opening: 2, up: 3 };
const PATHS = ["primary", "storage"] as const;

/** Seconds: a failover is detection (timers.primary.downMs, 150 ms by default) plus the switch; the 300 ms target sits between buckets. */
export const FAILOVER_BUCKETS_S = [0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1, 2, 5, 10];
/** Seconds: record timestamps have 1 ms resolution, so nothing finer than 1 ms; a lagging mirror reaches seconds. */
export const STORAGE_LATENCY_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

export interface MetricsSource {
  status(): LinkStatus;
  /** The TUN device's packet counters, when the node has one. */
  tun?(): { packetsIn: number; packetsOut: number };
}

/**
 * Resolution of prom-client's event-loop lag histogram (its eventLoopMonitoringPrecision; prom-client's
 * default is 10 ms). That histogram is a repeating libuv timer: at 10 ms it was 100 of an idle node's
 * ~170 event-loop turns a second, its largest wake-up source (issue #13 section 4, `bench idle`). At
 * 1 s it costs one turn a second; the link's own loop delay (status eventLoopDelayMs, measured from
 * its clock's lateness) has the finer view and costs no wake-up.
 */
export const METRICS_LOOP_DELAY_RESOLUTION_MS = 1000;

type Labels = Record<string, string>;
type Sample = [labels: Labels, value: number];

export class LinkMetrics {
  readonly registry = new Registry();
  private readonly links: { labels: Labels; source: MetricsSource }[] = [];
  private readonly failover: Histogram;
  private readonly storageLatency: Histogram;
  private readonly clockBehind: Counter;
  /** During render(): each link's status, taken once, so every series of one scrape agrees. */
  private scrape: Map<MetricsSource, LinkStatus> | undefined;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: METRICS_LOOP_DELAY_RESOLUTION_MS });
    const names = (own: readonly string[]) => [...LINK_LABEL_NAMES, ...own];
    const statusOf = (source: MetricsSource): LinkStatus => {
      let status = this.scrape?.get(source);
      if (status === undefined) {
        status = source.status();
        this.scrape?.set(source, status);
      }
      return status;
    };
    const series = (type: "gauge" | "counter", name: string, help: string, own: readonly string[], samples: (s: LinkStatus, source: MetricsSource) => Sample[]) => {
      const links = this.links;
      const collect = function (this: Gauge | Counter) {
        this.reset();
        for (const link of links) {
          const status = statusOf(link.source);
          for (const [labels, value] of samples(status, link.source)) {
            const all = { ...link.labels, ...labels };
            if (this instanceof Gauge) this.set(all, value);
            else this.inc(all, Math.max(0, value));
          }
        }
      };
      const config = { name: `lunlink_${name}`, help, labelNames: names(own), registers: [this.registry], collect };
      return type === "gauge" ? new Gauge(config) : new Counter(config);
    };
    const perPath = (value: (s: LinkStatus, p: (typeof PATHS)[number]) => number) => (s: LinkStatus): Sample[] => PATHS.map((p) => [{ path: p }, value(s, p)]);
    const one = (value: (s: LinkStatus) => number) => (s: LinkStatus): Sample[] => [[{}, value(s)]];
    const volumes = (value: (v: LinkStatus["storage"]["send"]) => number) => (s: LinkStatus): Sample[] => [s.storage.send, s.storage.receive].map((v) => [{ volume: v.component }, value(v)]);

    series("gauge", "path_state", "Path state: 0 down, 1 suspect, 2 up (path: primary = UDP, storage = the rings).", ["path"], perPath((s, p) => STATE_VALUE[s.paths[p].state] ?? 0));
    series("gauge", "path_last_heard_seconds", "Seconds since the peer was last heard on the path (NaN: never).", ["path"], perPath((s, p) => (s.paths[p].lastHeardAgoMs ?? Number.NaN) / 1000));
    series("gauge", "active_path", "1 for the path carrying traffic (isolated: both 0).", ["path"], perPath((s, p) => (s.active === p ? 1 : 0)));
    series("counter", "failovers_total", "Switches from the primary to storage.", [], one((s) => s.failovers));
    series("counter", "failbacks_total", "Switches from storage back to the primary.", [], one((s) => s.failbacks));
    series("counter", "self_pauses_total", "Event-loop pauses longer than selfPauseMs (silence ignored).", [], one((s) => s.selfPauses));
    series("counter", "messages_sent_total", "Link messages sent per path.", ["path"], perPath((s, p) => s.counters.sent[p]));
    series("counter", "messages_received_total", "Link messages received per path.", ["path"], perPath((s, p) => s.counters.received[p]));
    series("counter", "data_delivered_total", "Data datagrams delivered to the application.", [], one((s) => s.counters.dataDelivered));
    series("counter", "data_duplicates_total", "Data datagrams dropped as already delivered (sent on both paths).", [], one((s) => s.counters.dataDuplicates));
    series("gauge", "control_pending", "Control messages sent and not yet acknowledged.", [], one((s) => s.controlPending));
    series("counter", "control_retransmits_total", "Control retransmissions.", [], one((s) => s.counters.controlRetransmits));
    series("counter", "malformed_total", "Messages dropped as malformed, stray or from an old session.", [], one((s) => s.counters.malformed + s.counters.strays + s.counters.staleSession));
    series("gauge", "ring_writer_queued_bytes", "Bytes waiting in the ring writer (record being filled and class queues).", [], one((s) => s.ring.writerQueuedBytes));
    series("gauge", "ring_receive_lag_records", "Records in the peer's ring not read yet.", [], one((s) => Number(s.ring.receiveLagRecords)));
    series("counter", "ring_frames_dropped_total", "Frames the ring writer dropped (queue full).", [], one((s) => s.ring.writerCounters.framesDropped));
    series("counter", "ring_refused_total", "Peer ring records (status slots, superblocks) refused, each counted once however often re-read: auth (forged, another key), downgrade (unauthenticated), replay (authentic but old).", ["reason"], (s) => {
      const r = s.ring.readerCounters;
      return [[{ reason: "auth" }, r.authFailures], [{ reason: "downgrade" }, r.downgrades], [{ reason: "replay" }, r.replays]];
    });
    series("counter", "ring_faults_total", "Peer ring faults: torn (records seen torn, each once; normal while one is written or mirrored), damaged (invalid past damageTimeoutMs: skipped), overrun (the writer lapped this reader).", ["reason"], (s) => {
      const r = s.ring.readerCounters;
      return [[{ reason: "torn" }, r.tornSeen], [{ reason: "damaged" }, r.damaged], [{ reason: "overrun" }, r.overruns]];
    });
    series("counter", "ring_records_lost_total", "Peer records never delivered (skipped as damaged, overrun, epoch gaps).", [], one((s) => Number(s.ring.readerCounters.lost)));
    series("counter", "udp_refused_total", "Sealed UDP datagrams refused, by reason.", ["reason"], (s) => [
      [{ reason: "auth" }, s.counters.authFailures],
      [{ reason: "downgrade" }, s.counters.downgrades],
      [{ reason: "replay" }, s.counters.replays],
    ]);
    series("gauge", "storage_volume_state", "Local storage component: 0 failed (configuration), 1 stalled, 2 retrying, 3 up (opening/closed: 2/0).", ["volume"], volumes((v) => COMPONENT_VALUE[v.state] ?? 0));
    series("gauge", "storage_volume_parked_requests", "Requests parked in the kernel past ioTimeoutMs (a stalled device).", ["volume"], volumes((v) => v.parked));
    series("counter", "storage_volume_faults_total", "Storage faults (EIO, ENOSPC, stall, device gone...) that took the component down.", ["volume"], volumes((v) => v.counters.faults));
    series("counter", "storage_volume_recoveries_total", "Times the component came back by itself after a fault.", ["volume"], volumes((v) => v.counters.recoveries));
    series("counter", "storage_volume_failed_attempts_total", "Reopen attempts that failed during recoveries.", ["volume"], volumes((v) => v.counters.failedAttempts));
    series("gauge", "storage_volume_last_outage_seconds", "Duration of the last outage that ended (fault to up again).", ["volume"], volumes((v) => (v.lastOutageMs ?? 0) / 1000));
    series("counter", "tun_packets_in_total", "IP packets read from the TUN device (sent to the peer).", [], (_s, source) => (source.tun === undefined ? [] : [[{}, source.tun().packetsIn]]));
    series("counter", "tun_packets_out_total", "IP packets written to the TUN device (from the peer).", [], (_s, source) => (source.tun === undefined ? [] : [[{}, source.tun().packetsOut]]));

    this.failover = new Histogram({
      name: "lunlink_failover_interruption_seconds",
      help: "Per failover (primary -> storage): silence on the primary (last message heard) until this node moved traffic to storage; this node's monotonic clock.",
      labelNames: [...LINK_LABEL_NAMES],
      buckets: FAILOVER_BUCKETS_S,
      registers: [this.registry],
    });
    this.storageLatency = new Histogram({
      name: "lunlink_storage_one_way_latency_seconds",
      help: "Per record delivered from the peer's ring: this host's wall clock minus the record's timestamp (peer's wall clock when sealed; 1 ms resolution; includes the clock offset between hosts).",
      labelNames: [...LINK_LABEL_NAMES],
      buckets: STORAGE_LATENCY_BUCKETS_S,
      registers: [this.registry],
    });
    this.clockBehind = new Counter({
      name: "lunlink_storage_latency_clock_behind_total",
      help: "Records whose timestamp lies ahead of this host's clock (clocks not in sync): not observed in the latency histogram.",
      labelNames: [...LINK_LABEL_NAMES],
      registers: [this.registry],
    });
  }

  /** Registers a link (a pair: once, labels {}; N-node: once per peer, labels { peer }). */
  addLink(source: MetricsSource, labels: Labels = {}): void {
    this.links.push({ labels, source });
    this.clockBehind.inc(labels, 0);
  }

  /** A failover happened after `silenceMs` without a message on the primary. */
  observeFailover(silenceMs: number, labels: Labels = {}): void {
    this.failover.observe(labels, Math.max(0, silenceMs) / 1000);
  }

  /** A record sealed at `timestampMs` (writer's wall clock) was delivered at `nowWallMs` (ours). */
  observeStorageLatency(timestampMs: number, nowWallMs: number, labels: Labels = {}): void {
    const ms = nowWallMs - timestampMs;
    if (ms < 0) this.clockBehind.inc(labels);
    else this.storageLatency.observe(labels, ms / 1000);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text (Prometheus 0.0.4). */
  async render(): Promise<string> {
    this.scrape = new Map();
    try {
      return await this.registry.metrics();
    } finally {
      this.scrape = undefined;
    }
  }
}
