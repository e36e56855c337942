// BlockSink: where a mirror writes (a Volume, or a remote session). Its own module so the mirror
// (ring-mirror.ts) and its write pipeline (write-pump.ts) both depend on it without depending on
// each other. Invariant for callers: whole blocks at block-aligned offsets; flush() makes every
// write that completed before it durable. A sink that can end by itself (a remote session) says so
// through lost(), which the mirror checks on every periodic step: a write already sent may have been
// dropped with the session, and an idle mirror would otherwise never write again to find out.

/** Where a mirror writes: whole blocks at block-aligned offsets; flush() makes every write durable. */
export interface BlockSink {
  write(offsetBytes: number, bytes: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  /** The error that ended the sink (a remote session lost), or undefined while it works. */
  lost?(): Error | undefined;
}
