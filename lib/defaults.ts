// Every storage default of lunlink, in one place: the library's classes (Volume, RingWriter, Poller,
// RingMirror), the storage path, the node config (lib/node/config.ts) and the CLI take these, so a
// volume or ring opened by hand behaves like `lunlink up` unless told otherwise. README "Defaults"
// lists the same table. Defaults that belong to one state machine stay beside it and are named there:
// path timers (DEFAULT_TIMERS, lib/link/paths.ts) and fault recovery (DEFAULT_RECOVERY, lib/io/supervisor.ts).

/**
 * Deadline of every volume request. 5 s: well above a busy array's slow write, well below a
 * multipath failover (10-60 s), so such a failover is reported as a stall (README: timer arithmetic).
 */
export const DEFAULT_IO_TIMEOUT_MS = 5000;
/** I/O threads per volume (its queue depth), started on demand. */
export const DEFAULT_IO_THREADS = 4;
/**
 * The I/O engine a volume gets when neither its `engine` option nor LUNLINK_ENGINE names one:
 * io_uring where the kernel allows it, else threads ("auto"). bench raw of 2026-11-29 (uring
 * branch, load average 6-13): io_uring ahead of threads in 20 of 24 cells, geometric mean 0.97x
 * fio psync against 0.64x; every device test file passes on it (lib/io/volume.ts, README "I/O engines").
 */
export const DEFAULT_ENGINE = "auto";
/**
 * The I/O engine of a link's receive volume (the peer's ring its poller reads: StoragePath
 * receiveEngine, node config storage.receiveEngine) when neither names one and LUNLINK_ENGINE is not
 * set: lunlink's threads, not io_uring. bench latency --engines, 12 runs on 2026-11-30 (writer
 * io_uring both ways): the idle one-way p50 with a threads poller was lower in 12 of 12 runs (e.g.
 * 0.71-0.95x the C probe against 0.85-1.48x), p99 lower in 11 of 12 (e.g. 1.07-1.86x against
 * 2.21-2.88x; one run 2.62 against 2.54); bench idle: node CPU within the io_uring rounds' spread
 * (1.77-1.98x the bare Node reference against 1.75-1.94x), failover from idle max 133-158 ms; storage
 * TCP no worse (bbr 62.5, 32.9 against 29.4, 30.3 MB/s; cubic 56.7, 67.4 against 53.2, 54.2).
 */
export const DEFAULT_RECEIVE_ENGINE = "threads";
/**
 * Longest sleep between reads of the next block while a ring follower (poller, mirror) is idle: the
 * latency an idle follower adds to the first record (it snaps back to DEFAULT_POLL_MIN_US on it).
 * 16 ms: an idle follower re-reads ~60 times a second, not 500 (bench idle: issue #13 section 4).
 */
export const DEFAULT_POLL_MAX_MS = 16;
/**
 * A link's storage follower in standby (its primary up both ways, nothing but heartbeats on the ring
 * for a storage heartbeat period) re-reads the next block this often: ~10 re-reads a second instead of
 * ~60 (issue #13 section 4). Failover leaves standby at the clock turn that sees the primary suspect
 * and wakes the sleeping watch at once, so the first record after a cut waits at most for the skew
 * between the two ends' detection: the writer's end turned suspect at most one link tick (35 ms,
 * DEFAULT_LINK_TICK_MS) before ours. Worst added first-record latency at failover: 35 ms, not 100.
 */
export const DEFAULT_POLL_STANDBY_MAX_MS = 100;
/** Shortest such sleep, right after a record arrived. */
export const DEFAULT_POLL_MIN_US = 50;
/**
 * Period of a follower's status work (Poller: re-read the peer's status; mirror: copy the status
 * slots) while no record comes; after a record it runs statusPollMs / statusCopyMs later.
 */
export const DEFAULT_FOLLOW_IDLE_MS = 250;
/** Longest period of a follower's periodic task (ms; Poller statusPollMs/statusIdleMs, the mirror's status copy, AdaptiveWait): also the longest a wait keeps JS away. */
export const MAX_FOLLOW_IDLE_MS = 60_000;
/**
 * Longest storage heartbeat a pair link takes: its receive follower re-reads the peer's status every
 * 2 heartbeats while idle (linkStatusPace), which must stay within MAX_FOLLOW_IDLE_MS.
 */
export const MAX_PAIR_STORAGE_HEARTBEAT_MS = MAX_FOLLOW_IDLE_MS / 2;
/**
 * Link (pair and cluster): longest gap between two ticks of the clock that advances path states, the
 * failover and control retransmissions. 35 ms, the primary heartbeat period (DEFAULT_TIMERS): the
 * pair's link ticks in the same wake-up as it sends a heartbeat (LinkClock), so an idle node's clock
 * wakes 29 times a second for both, not 80; a tick adds at most 35 ms to detection (README timer
 * arithmetic).
 */
export const DEFAULT_LINK_TICK_MS = 35;
/** RingWriter: seal a record after this long; 0 writes at once when idle and batches while a write is in flight. */
export const DEFAULT_MAX_DELAY_MS = 0;
/**
 * RingReader: a slot that stays invalid this long while the writer is past it is damaged and skipped.
 * At least 2 x the mirror lag + pollMaxMs (lib/node/config.ts, README "damageTimeoutMs").
 */
export const DEFAULT_DAMAGE_TIMEOUT_MS = 1000;
/** The longest a record takes from the peer's write to whole on this node's receive volume, as the node config assumes unless told. */
export const DEFAULT_MIRROR_LAG_MS = 250;
