// Coded errors. Every failure lunlink reports is a LunlinkError with a stable `code`; system
// errors also carry `errno` (positive, as in C), `syscall` and `path`, like Node's own fs errors.
// Messages say what was expected and what was found. Programmer errors (broken invariants) are
// plain assertion failures instead, and crash loudly.
import { constants } from "node:os";

export const ErrorCode = {
  InvalidArgument: "ERR_LUNLINK_INVALID_ARGUMENT",
  Misaligned: "ERR_LUNLINK_MISALIGNED",
  OutOfRange: "ERR_LUNLINK_OUT_OF_RANGE",
  Closed: "ERR_LUNLINK_CLOSED",
  NotFound: "ERR_LUNLINK_NOT_FOUND",
  NotAVolume: "ERR_LUNLINK_NOT_A_VOLUME",
  NoDirectIo: "ERR_LUNLINK_NO_DIRECT_IO",
  Busy: "ERR_LUNLINK_BUSY",
  PermissionDenied: "ERR_LUNLINK_PERMISSION_DENIED",
  ReadOnly: "ERR_LUNLINK_READ_ONLY",
  IoError: "ERR_LUNLINK_IO_ERROR",
  NoSpace: "ERR_LUNLINK_NO_SPACE",
  IoStalled: "ERR_LUNLINK_IO_STALLED",
  /** A request that never started was cancelled (its deadline passed in the queue, or the volume closed): it did not and will not run. */
  Cancelled: "ERR_LUNLINK_CANCELLED",
  /** The buffer is still owned by a request parked past its deadline; use another one until the volume recovers. */
  BufferBusy: "ERR_LUNLINK_BUFFER_BUSY",
  /** lunlink's native addon runs on the main thread only. */
  WorkerUnsupported: "ERR_LUNLINK_WORKER_UNSUPPORTED",
  ShortIo: "ERR_LUNLINK_SHORT_IO",
  QueueFull: "ERR_LUNLINK_QUEUE_FULL",
  Aborted: "ERR_LUNLINK_ABORTED",
  System: "ERR_LUNLINK_SYSTEM",
  AlreadyFormatted: "ERR_LUNLINK_ALREADY_FORMATTED",
  NotFormatted: "ERR_LUNLINK_NOT_FORMATTED",
  /** A lunlink volume of a format version this lunlink does not read (version 1: reformat it). */
  FormatVersion: "ERR_LUNLINK_FORMAT_VERSION",
  SuperblockConflict: "ERR_LUNLINK_SUPERBLOCK_CONFLICT",
  VolumeTooSmall: "ERR_LUNLINK_VOLUME_TOO_SMALL",
  NotOwner: "ERR_LUNLINK_NOT_OWNER",
  WrongPair: "ERR_LUNLINK_WRONG_PAIR",
  FrameTooLarge: "ERR_LUNLINK_FRAME_TOO_LARGE",
  BadConfig: "ERR_LUNLINK_BAD_CONFIG",
  NoTun: "ERR_LUNLINK_NO_TUN",
  BadKey: "ERR_LUNLINK_BAD_KEY",
  /** A keyed ring's superblock MAC does not verify under the configured key (wrong key or pair). */
  WrongKey: "ERR_LUNLINK_WRONG_KEY",
  /** A key is configured but the volume is not keyed (authMode none): refused, never read unauthenticated. */
  Downgrade: "ERR_LUNLINK_DOWNGRADE",
  /** The volume is keyed and no key was given (a keyless writer or frame reader). */
  KeyRequired: "ERR_LUNLINK_KEY_REQUIRED",
  Exists: "ERR_LUNLINK_EXISTS",
  KeyExhausted: "ERR_LUNLINK_KEY_EXHAUSTED",
  BadPeerMessage: "ERR_LUNLINK_BAD_PEER_MESSAGE",
  PeerLost: "ERR_LUNLINK_PEER_LOST",
  PeerRefused: "ERR_LUNLINK_PEER_REFUSED",
  /** An optional package a feature needs (vega and vega-lite for --plot) could not be loaded. */
  MissingDependency: "ERR_LUNLINK_MISSING_DEPENDENCY",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface LunlinkErrorDetails {
  errno?: number;
  syscall?: string;
  path?: string;
  cause?: unknown;
}

export class LunlinkError extends Error {
  readonly code: ErrorCode;
  declare readonly errno?: number;
  declare readonly syscall?: string;
  declare readonly path?: string;

  constructor(code: ErrorCode, message: string, details: LunlinkErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "LunlinkError";
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.path !== undefined) this.path = details.path;
  }
}

// Node's table lacks a few Linux errnos that volumes meet (ENOTBLK, EMEDIUMTYPE...).
const EXTRA_ERRNO_NAMES: Readonly<Record<number, string>> = { 15: "ENOTBLK", 121: "EREMOTEIO", 123: "ENOMEDIUM", 124: "EMEDIUMTYPE" };
const ERRNO_NAMES = new Map<number, string>(Object.entries(EXTRA_ERRNO_NAMES).map(([n, name]) => [Number(n), name]));
for (const [name, value] of Object.entries(constants.errno)) if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);

/** "EIO" for 5; "errno 4242" for a number the platform does not name. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

const codeByErrno: Readonly<Record<string, ErrorCode>> = {
  ENOENT: ErrorCode.NotFound,
  ENOTDIR: ErrorCode.NotFound,
  EISDIR: ErrorCode.NotAVolume,
  ENOTBLK: ErrorCode.NotAVolume,
  ENXIO: ErrorCode.NotFound,
  ENODEV: ErrorCode.NotFound,
  EBUSY: ErrorCode.Busy,
  EACCES: ErrorCode.PermissionDenied,
  EPERM: ErrorCode.PermissionDenied,
  EROFS: ErrorCode.ReadOnly,
  EIO: ErrorCode.IoError,
  ENOSPC: ErrorCode.NoSpace,
  EDQUOT: ErrorCode.NoSpace,
};

const hintByCode: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.NotFound]: "no such file or device",
  [ErrorCode.NotAVolume]: "expected a block device or a regular file",
  [ErrorCode.Busy]: "already opened exclusively (or mounted, or locked) by someone else",
  [ErrorCode.PermissionDenied]: "permission denied",
  [ErrorCode.ReadOnly]: "the volume is read-only",
  [ErrorCode.IoError]: "the device reported an I/O error",
  [ErrorCode.NoSpace]: "no space left on the file system holding the volume",
};

/** Maps a failed syscall to a coded error; `what` says what lunlink was doing. */
export function systemError(errno: number, syscall: string, path: string, what: string): LunlinkError {
  const name = errnoName(errno);
  const code = codeByErrno[name] ?? ErrorCode.System;
  const hint = hintByCode[code];
  const message = `${what} ${path}: ${syscall}() failed with ${name}${hint === undefined ? "" : ` (${hint})`}`;
  return new LunlinkError(code, message, { errno, syscall, path });
}

export function invalidArgument(name: string, expected: string, found: unknown): LunlinkError {
  return new LunlinkError(ErrorCode.InvalidArgument, `${name} must be ${expected}; found ${describe(found)}`);
}

/** An optional integer option: `fallback` when absent, else an integer in min..max or a coded error naming it. */
export function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(name, `an integer in ${min}..${max}`, value);
  }
  return value;
}

/** A short, safe rendering of a bad value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (value === null || typeof value !== "object") return String(value);
  if (value instanceof Uint8Array) return `${value.constructor.name}(${value.byteLength})`;
  return Object.prototype.toString.call(value);
}
