// systemd's notification protocol on the wire (sd_notify(3)): one datagram of KEY=VALUE lines to the
// unix socket named by $NOTIFY_SOCKET. Node's dgram has no AF_UNIX, so the addon sends it (addon/notify.cc,
// non-blocking, a new socket per message). What to say and when is decided by lib/node/service.ts.
import { ErrorCode, LunlinkError, invalidArgument, systemError } from "../errors.ts";
import { addon } from "./native.ts";

/** sockaddr_un's sun_path is 108 bytes: a path needs its NUL, an abstract name its leading NUL. */
export const NOTIFY_SOCKET_MAX_BYTES = 107;
/** addon/notify.cc refuses longer messages (a notification is a few short lines). */
export const NOTIFY_MESSAGE_MAX_BYTES = 4096;

/** The notify socket from an environment: undefined when unset or empty (not run by systemd with Type=notify). */
export function notifySocketFrom(env: NodeJS.ProcessEnv): string | undefined {
  const socket = env["NOTIFY_SOCKET"];
  return socket === undefined || socket === "" ? undefined : socket;
}

/**
 * Sends one notification. `socket` is an absolute path or "@name" (abstract namespace, which belongs
 * to the network namespace the process runs in). Failures are coded LunlinkErrors naming the syscall
 * (ECONNREFUSED or ENOENT: nobody listens there; EAGAIN: the receiver's queue is full).
 */
export function sdNotify(socket: string, message: string): void {
  if (!/^(\/|@)./.test(socket) || Buffer.byteLength(socket) > NOTIFY_SOCKET_MAX_BYTES || socket.includes("\0")) {
    throw invalidArgument("NOTIFY_SOCKET", `an absolute path or @abstract-name of at most ${NOTIFY_SOCKET_MAX_BYTES} bytes (vsock: addresses are not supported)`, socket);
  }
  const bytes = Buffer.byteLength(message);
  if (bytes === 0 || bytes > NOTIFY_MESSAGE_MAX_BYTES) throw invalidArgument("notification", `1..${NOTIFY_MESSAGE_MAX_BYTES} bytes`, message);
  try {
    addon().sdNotify(socket, message);
  } catch (error) {
    const { errno, syscall } = error as { errno?: unknown; syscall?: unknown };
    if (typeof errno === "number" && typeof syscall === "string") throw systemError(errno, syscall, socket, "notify systemd on");
    if (error instanceof LunlinkError) throw error;
    throw new LunlinkError(ErrorCode.System, `notify systemd on ${socket}: ${(error as Error).message}`, { path: socket, cause: error });
  }
}
