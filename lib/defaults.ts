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
/** Longest sleep between reads of the next block while a ring reader (poller, mirror) is idle. */
export const DEFAULT_POLL_MAX_MS = 2;
/** Shortest such sleep, right after a record arrived. */
export const DEFAULT_POLL_MIN_US = 50;
/** RingWriter: seal a record after this long; 0 writes at once when idle and batches while a write is in flight. */
export const DEFAULT_MAX_DELAY_MS = 0;
/**
 * RingReader: a slot that stays invalid this long while the writer is past it is damaged and skipped.
 * At least 2 x the mirror lag + pollMaxMs (lib/node/config.ts, README "damageTimeoutMs").
 */
export const DEFAULT_DAMAGE_TIMEOUT_MS = 1000;
/** The longest a record takes from the peer's write to whole on this node's receive volume, as the node config assumes unless told. */
export const DEFAULT_MIRROR_LAG_MS = 250;
