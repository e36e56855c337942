// The running node's local control socket: a Unix socket (directory 0700, socket 0600, so only
// root and the owner reach it) speaking one JSON line each way: {"cmd":"status"} or {"cmd":"down"}.
// Requests are bounded (4 KiB, 5 s); a stale socket file from a killed run is replaced, a live one
// (another node running with the same name) is refused.
import { chmod, mkdir, unlink } from "node:fs/promises";
import { createConnection, createServer, type Server } from "node:net";
import { dirname } from "node:path";

import { ErrorCode, LunlinkError } from "../errors.ts";

const MAX_REQUEST_BYTES = 4096;
const REQUEST_TIMEOUT_MS = 5000;

export type ControlHandler = (cmd: string) => Promise<unknown>;

export async function serveControl(path: string, handler: ControlHandler): Promise<Server> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  if (await probe(path)) throw new LunlinkError(ErrorCode.Busy, `control socket ${path} is in use: is this node already up?`, { path });
  await unlink(path).catch(() => undefined);
  const server = createServer((socket) => {
    let text = "";
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy());
    socket.on("error", () => undefined);
    socket.on("data", (chunk) => {
      text += chunk.toString("utf8");
      if (text.length > MAX_REQUEST_BYTES) return socket.destroy();
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      let cmd = "";
      try {
        cmd = String((JSON.parse(text.slice(0, nl)) as { cmd?: unknown }).cmd);
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: "request is not JSON" })}\n`);
        return;
      }
      handler(cmd).then(
        (result) => socket.end(`${JSON.stringify({ ok: true, result })}\n`),
        (error: unknown) => socket.end(`${JSON.stringify({ ok: false, error: error instanceof Error ? error.message : String(error) })}\n`),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  return server;
}

/** Sends one command to a running node and returns its result. */
export function callControl(path: string, cmd: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = "";
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy(new Error("no answer within 5 s")));
    socket.on("connect", () => socket.write(`${JSON.stringify({ cmd })}\n`));
    socket.on("data", (chunk) => (text += chunk.toString("utf8")));
    socket.on("error", (error: NodeJS.ErrnoException) => {
      const down = error.code === "ENOENT" || error.code === "ECONNREFUSED";
      reject(new LunlinkError(down ? ErrorCode.NotFound : ErrorCode.System, down ? `no node is up on ${path} (${error.code})` : `control socket ${path}: ${error.message}`, { path, syscall: "connect", cause: error }));
    });
    socket.on("end", () => {
      try {
        const answer = JSON.parse(text) as { ok: boolean; result?: unknown; error?: string };
        if (answer.ok) resolve(answer.result);
        else reject(new LunlinkError(ErrorCode.System, `${path}: ${answer.error ?? "failed"}`, { path }));
      } catch {
        reject(new LunlinkError(ErrorCode.System, `${path}: the node's answer is not JSON`, { path }));
      }
    });
  });
}

function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.on("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}
