// A child process that reports by printing one JSON object per line on stdout: the test reads the
// lines in order (next) or skips to the first that matches (until), both bounded in time; a child
// that exits first fails the wait with its stderr.
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export type JsonLine = Record<string, unknown>;

export interface JsonLines {
  next(timeoutMs?: number): Promise<JsonLine>;
  until(match: (line: JsonLine) => boolean, timeoutMs?: number): Promise<JsonLine>;
  exited: Promise<number>;
  stderr(): string;
}

export function jsonLines(child: ChildProcess, label: string): JsonLines {
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const messages: JsonLine[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      messages.push(JSON.parse(line) as JsonLine);
    } catch {
      messages.push({ text: line });
    }
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal === null ? -1 : 128))));
  const next = async (timeoutMs = 25_000): Promise<JsonLine> => {
    const deadline = Date.now() + timeoutMs;
    while (messages.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${label}: no output line within ${timeoutMs} ms; stderr: ${stderr}`);
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        new Promise<null>((r) => waiters.push(() => r(null))),
        new Promise<null>((r) => (timer = setTimeout(() => r(null), left))),
        exited,
      ]);
      clearTimeout(timer);
      if (code !== null && messages.length === 0) throw new Error(`${label} exited ${code}: ${stderr}`);
    }
    return messages.shift()!;
  };
  const until = async (match: (line: JsonLine) => boolean, timeoutMs = 25_000): Promise<JsonLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = await next(Math.max(1, deadline - Date.now()));
      if (match(line)) return line;
    }
  };
  return { next, until, exited, stderr: () => stderr };
}
