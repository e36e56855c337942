// Prometheus text exposition (version 0.0.4) of a link's status: one gauge or counter per figure,
// labelled by path where it has one. Rendered on request from the status snapshot; no state here.
import type { LinkStatus } from "./link.ts";

const STATE_VALUE: Record<string, number> = { down: 0, suspect: 1, up: 2 };
const COMPONENT_VALUE: Record<string, number> = { failed: 0, closed: 0, stalled: 1, retrying: 2, opening: 2, up: 3 };

export function renderMetrics(status: LinkStatus, extra: Record<string, number> = {}): string {
  const lines: string[] = [];
  const metric = (name: string, type: "gauge" | "counter", help: string, samples: [labels: string, value: number][]) => {
    lines.push(`# HELP lunlink_${name} ${help}`, `# TYPE lunlink_${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`lunlink_${name}${labels} ${value}`);
  };
  const paths = ["primary", "storage"] as const;
  metric("path_state", "gauge", "Path state: 0 down, 1 suspect, 2 up.", paths.map((p) => [`{path="${p}"}`, STATE_VALUE[status.paths[p].state] ?? 0]));
  metric("path_last_heard_seconds", "gauge", "Seconds since the peer was last heard on the path.", paths.map((p) => [`{path="${p}"}`, (status.paths[p].lastHeardAgoMs ?? Number.NaN) / 1000]));
  metric("active_path", "gauge", "1 for the path carrying traffic (isolated: both 0).", paths.map((p) => [`{path="${p}"}`, status.active === p ? 1 : 0]));
  metric("failovers_total", "counter", "Switches from the primary to storage.", [["", status.failovers]]);
  metric("failbacks_total", "counter", "Switches from storage back to the primary.", [["", status.failbacks]]);
  metric("self_pauses_total", "counter", "Event-loop pauses longer than selfPauseMs (silence ignored).", [["", status.selfPauses]]);
  metric("messages_sent_total", "counter", "Link messages sent per path.", paths.map((p) => [`{path="${p}"}`, status.counters.sent[p]]));
  metric("messages_received_total", "counter", "Link messages received per path.", paths.map((p) => [`{path="${p}"}`, status.counters.received[p]]));
  metric("data_delivered_total", "counter", "Data datagrams delivered to the application.", [["", status.counters.dataDelivered]]);
  metric("data_duplicates_total", "counter", "Data datagrams dropped as already delivered (sent on both paths).", [["", status.counters.dataDuplicates]]);
  metric("control_pending", "gauge", "Control messages sent and not yet acknowledged.", [["", status.controlPending]]);
  metric("control_retransmits_total", "counter", "Control retransmissions.", [["", status.counters.controlRetransmits]]);
  metric("malformed_total", "counter", "Messages dropped as malformed, stray or from an old session.", [["", status.counters.malformed + status.counters.strays + status.counters.staleSession]]);
  metric("ring_writer_queued_bytes", "gauge", "Bytes waiting in the ring writer (record being filled and class queues).", [["", status.ring.writerQueuedBytes]]);
  metric("ring_receive_lag_records", "gauge", "Records in the peer's ring not read yet.", [["", Number(status.ring.receiveLagRecords)]]);
  metric("ring_frames_dropped_total", "counter", "Frames the ring writer dropped (queue full).", [["", status.ring.writerCounters.framesDropped]]);
  const r = status.ring.readerCounters;
  metric("ring_refused_total", "counter", "Peer ring content refused, by reason (keyed rings: forged, downgraded, replayed).", [
    ['{reason="auth"}', r.authFailures],
    ['{reason="downgrade"}', r.downgrades],
    ['{reason="replay"}', r.replays],
  ]);
  metric("udp_refused_total", "counter", "Sealed UDP datagrams refused, by reason.", [
    ['{reason="auth"}', status.counters.authFailures],
    ['{reason="downgrade"}', status.counters.downgrades],
    ['{reason="replay"}', status.counters.replays],
  ]);
  const volumes = [status.storage.send, status.storage.receive];
  metric("storage_volume_state", "gauge", "Local storage component: 0 failed (configuration), 1 stalled, 2 retrying, 3 up (opening/closed: 2/0).", volumes.map((v) => [`{volume="${v.component}"}`, COMPONENT_VALUE[v.state] ?? 0]));
  metric("storage_volume_parked_requests", "gauge", "Requests parked in the kernel past ioTimeoutMs (a stalled device).", volumes.map((v) => [`{volume="${v.component}"}`, v.parked]));
  metric("storage_volume_faults_total", "counter", "Storage faults (EIO, ENOSPC, stall, device gone...) that took the component down.", volumes.map((v) => [`{volume="${v.component}"}`, v.counters.faults]));
  metric("storage_volume_recoveries_total", "counter", "Times the component came back by itself after a fault.", volumes.map((v) => [`{volume="${v.component}"}`, v.counters.recoveries]));
  metric("storage_volume_failed_attempts_total", "counter", "Reopen attempts that failed during recoveries.", volumes.map((v) => [`{volume="${v.component}"}`, v.counters.failedAttempts]));
  metric("storage_volume_last_outage_seconds", "gauge", "Duration of the last outage that ended (fault to up again).", volumes.map((v) => [`{volume="${v.component}"}`, (v.lastOutageMs ?? 0) / 1000]));
  for (const [name, value] of Object.entries(extra)) metric(name, "counter", name.replaceAll("_", " "), [["", value]]);
  return `${lines.join("\n")}\n`;
}
