// BlockSink: where a mirror writes (a Volume, or a remote session). Its own module so the mirror
// (ring-mirror.ts) and its write pipeline (write-pump.ts) both depend on it without depending on
// each other. Invariant for callers: whole blocks at block-aligned offsets; flush() makes every
// write that completed before it durable.

/** Where a mirror writes: whole blocks at block-aligned offsets; flush() makes every write durable. */
export interface BlockSink {
  write(offsetBytes: number, bytes: Uint8Array): Promise<void>;
  flush(): Promise<void>;
}
