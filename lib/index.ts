// lunlink's public API. Everything exported here is documented in README.md.
export { Volume, alignedBuffer, DEFAULT_IO_TIMEOUT_MS, DEFAULT_IO_THREADS, MAX_BUSY_POLL_US, MAX_IO_THREADS, MAX_IO_TIMEOUT_MS } from "./io/volume.ts";
export type { VolumeOptions, VolumeEvents } from "./io/volume.ts";
export type { VolumeGeometry, VolumeKind } from "./io/geometry.ts";
export { ErrorCode, LunlinkError } from "./io/errors.ts";
export type { LunlinkErrorDetails } from "./io/errors.ts";
export { probe } from "./io/probe.ts";
export type { ProbeResult } from "./io/probe.ts";
export { FrameType, FORMAT_VERSION } from "./format/layout.ts";
export { formatVolume, openSuperblock } from "./ring/superblocks.ts";
export type { FormatOptions, FormatResult } from "./ring/superblocks.ts";
export type { Superblock } from "./format/superblock.ts";
export type { StatusBlock } from "./format/status.ts";
export { RingWriter } from "./ring/writer.ts";
export type { Ack, RingWriterOptions, RingWriterCounters } from "./ring/writer.ts";
export { RingReader } from "./ring/reader.ts";
export type { RingReaderOptions, RingReaderCounters, PollOutcome, FrameVisitor } from "./ring/reader.ts";
export { Poller } from "./poll/poller.ts";
export type { PollerOptions, Frame } from "./poll/poller.ts";
