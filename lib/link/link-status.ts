// What a Link reports (its status and counters), as pure functions of the core's state, the storage
// path's view, the UDP path's counters and `nowMs`: ages are relative to nowMs (null for a path never
// heard from or not up), 64-bit sequence numbers become strings (JSON), and the copies returned share
// nothing mutable with the core. No I/O, no clock of its own.
import type { RingReaderCounters } from "../ring/reader-api.ts";
import type { RingWriterCounters } from "../ring/writer-options.ts";
import type { CoreCounters, LinkCore, LinkState, RefusedCounters, Transition } from "./paths.ts";
import type { StorageReport } from "./storage-path.ts";
import type { UdpSocketCounters } from "../io/udp.ts";

export interface LinkCounters extends CoreCounters, RefusedCounters {
  controlDuplicates: number;
  controlRetransmits: number;
  udpSendErrors: number;
  /** Batching on the primary path: sendmmsg calls and datagrams sent, recvmmsg batches and datagrams received. */
  udpBatches: { sendCalls: number; datagramsOut: number; receiveBatches: number; datagramsIn: number };
}

/** The core's view of its peer, as a pair's link and each peer of a cluster node report it. */
export interface PeerPathsStatus {
  active: string;
  /**
   * Where a data message sent now goes (LinkCore dataPaths): the active path, both while the
   * primary is suspect or the link isolated, storage alone while a failback drains the ring.
   */
  dataOn: "primary" | "storage" | "both";
  paths: Record<"primary" | "storage", { state: string; reason: string; lastHeardAgoMs: number | null; upForMs: number | null }>;
  failovers: number;
  failbacks: number;
  selfPauses: number;
  controlPending: number;
}

export interface LinkStatus extends PeerPathsStatus {
  node: number;
  peer: number;
  /** The local storage components: up, recovering (stalled or retrying, with why), failed (configuration). */
  storage: StorageReport;
  ring: { headSeq: string; peerAckSeq: string | null; receiveLagRecords: string; writerQueuedBytes: number; writerCounters: RingWriterCounters; readerCounters: Omit<RingReaderCounters, "lost"> & { lost: string } };
  counters: LinkCounters;
  /** Event-loop delay since the link opened (ms): what a paused loop costs heartbeats and packets. */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  transitions: Transition[];
}

/** What the status reads of the storage path (StoragePath's getters, its report taken once). */
export interface StorageView {
  report: StorageReport;
  headSeq: bigint;
  peerAck: { epoch: bigint; seq: bigint } | undefined;
  lagRecords: bigint;
  queuedBytes: number;
  writerCounters: RingWriterCounters;
  readerCounters: RingReaderCounters;
  /** The peer acked every record of ours (StoragePath drained()): a failback drain is over. */
  drained: boolean;
}

/** The link's counters: the core's (copied), the control window's, and the UDP path's batches summed over its two sockets. */
export function linkCounters(core: Pick<LinkCore, "counters" | "refused" | "controlOut" | "controlIn">, udp: { data: UdpSocketCounters; control: UdpSocketCounters }, udpSendErrors: number): LinkCounters {
  const c = core.counters;
  const udpBatches = { sendCalls: udp.data.sendCalls + udp.control.sendCalls, datagramsOut: udp.data.datagramsOut + udp.control.datagramsOut, receiveBatches: udp.data.batchesIn + udp.control.batchesIn, datagramsIn: udp.data.datagramsIn + udp.control.datagramsIn };
  return { ...c, ...core.refused, udpSendErrors, udpBatches, sent: { ...c.sent }, received: { ...c.received }, controlRetransmits: core.controlOut.retransmits, controlDuplicates: core.controlIn.duplicates };
}

/** One path's state and ages at nowMs: lastHeardAgoMs null if never heard, upForMs null while not up. */
export function pathStatus(nowMs: number, p: LinkState["primary"]): LinkStatus["paths"]["primary"] {
  return {
    state: p.state,
    reason: p.reason,
    lastHeardAgoMs: Number.isFinite(p.lastHeardMs) ? Math.round(nowMs - p.lastHeardMs) : null,
    upForMs: Number.isNaN(p.upSinceMs) ? null : Math.round(nowMs - p.upSinceMs),
  };
}

/** LinkState dataPaths as one word: both, primary, or storage (the paths a data message goes on). */
export function dataOn(paths: { primary: boolean; storage: boolean }): PeerPathsStatus["dataOn"] {
  return paths.primary && paths.storage ? "both" : paths.primary ? "primary" : "storage";
}

/**
 * The active path, where data goes now, each path's state and ages at nowMs, and the core's failover
 * and control counts. storageDrained: the peer storage's drained(), as a send asks it.
 */
export function peerPathsStatus(nowMs: number, core: Pick<LinkCore, "paths" | "controlOut">, storageDrained: boolean): PeerPathsStatus {
  const state = core.paths;
  return {
    active: state.active,
    dataOn: dataOn(state.dataPaths(nowMs, storageDrained)),
    paths: { primary: pathStatus(nowMs, state.primary), storage: pathStatus(nowMs, state.storage) },
    failovers: state.failovers,
    failbacks: state.failbacks,
    selfPauses: state.selfPauses,
    controlPending: core.controlOut.pending,
  };
}

export function linkStatus(nowMs: number, ids: { nodeId: number; peerNodeId: number }, core: Pick<LinkCore, "paths" | "controlOut">, storage: StorageView, counters: LinkCounters, eventLoopDelayMs: LinkStatus["eventLoopDelayMs"]): LinkStatus {
  return {
    node: ids.nodeId,
    peer: ids.peerNodeId,
    ...peerPathsStatus(nowMs, core, storage.drained),
    storage: storage.report,
    ring: {
      headSeq: String(storage.headSeq),
      peerAckSeq: storage.peerAck === undefined ? null : String(storage.peerAck.seq),
      receiveLagRecords: String(storage.lagRecords),
      writerQueuedBytes: storage.queuedBytes,
      writerCounters: storage.writerCounters,
      readerCounters: { ...storage.readerCounters, lost: String(storage.readerCounters.lost) },
    },
    counters,
    eventLoopDelayMs,
    transitions: [...core.paths.transitions],
  };
}
