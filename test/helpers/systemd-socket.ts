// A unix datagram socket that plays systemd's notify socket, for the sd_notify tests. Node can neither
// send nor receive AF_UNIX datagrams, so the receiver is a python3 child (node-gyp needs python3 for a
// source build, so the machines that build lunlink have it); it prints each datagram as one JSON line.
// Killed in teardown; a path socket lives in the test's scratch directory.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { ExecutionContext } from "ava";

const RECEIVER = [
  "import json, socket, sys",
  "name = sys.argv[1]",
  "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
  "s.bind('\\0' + name[1:] if name.startswith('@') else name)",
  "print(json.dumps({'listening': name}), flush=True)",
  "for _ in range(100000):",
  "    print(json.dumps({'message': s.recv(65536).decode()}), flush=True)",
].join("\n");

/** Bound on messages kept (the receiver itself stops after 100,000). */
const MAX_KEPT_MESSAGES = 10_000;

export interface SystemdSocket {
  /** Every datagram received, in order. */
  readonly messages: string[];
  /** Resolves with the messages once `check` holds; rejects with them after timeoutMs. */
  waitFor(what: string, check: (messages: string[]) => boolean, timeoutMs?: number): Promise<string[]>;
  close(): void;
}

/** Binds `name` (a path, or "@name" abstract) and resolves once it listens. */
export async function playSystemd(t: ExecutionContext, name: string): Promise<SystemdSocket> {
  const child = spawn("python3", ["-c", RECEIVER, name], { stdio: ["ignore", "pipe", "pipe"] });
  const close = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  t.teardown(close);
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const messages: string[] = [];
  const waiters = new Set<() => void>();
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the python3 notify receiver exited (${code}): ${stderr}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const o = JSON.parse(line) as { listening?: string; message?: string };
      if (o.listening !== undefined) resolve();
      if (o.message !== undefined && messages.length < MAX_KEPT_MESSAGES) messages.push(o.message);
      for (const w of waiters) w();
    });
  });
  return {
    messages,
    close,
    waitFor(what, check, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const done = () => {
          if (!check(messages)) return;
          clearTimeout(timer);
          waiters.delete(done);
          resolve(messages);
        };
        const timer = setTimeout(() => {
          waiters.delete(done);
          reject(new Error(`systemd socket: not ${what} within ${timeoutMs} ms; received ${JSON.stringify(messages)}`));
        }, timeoutMs);
        waiters.add(done);
        done();
      });
    },
  };
}
