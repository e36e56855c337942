// `lunlink stream serve|send`: a checksummed TCP stream for checking a path end to end (through
// the TUN addresses, across a cut): the sender sends N random bytes (optionally paced) and prints
// their SHA-256, the receiver prints what it got and its SHA-256, plus a progress line every
// --interval-ms, all as JSON lines. Equal hashes = nothing lost, duplicated or corrupted. Bounded:
// at most --bytes, and --timeout-s for the whole run.
import { createHash, randomFillSync } from "node:crypto";
import { createConnection, createServer, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

import { invalidArgument, integerOption } from "../errors.ts";
import { parseEndpoint } from "../node/config.ts";
import { parse } from "./args.ts";
import type { Command } from "./command.ts";

const CHUNK_BYTES = 64 * 1024;

export const streamCommand: Command = {
  summary: "send or receive a checksummed TCP stream (end-to-end path check)",
  usage: [
    "Usage: lunlink stream serve --listen ADDR:PORT [--interval-ms N] [--timeout-s N]",
    "       lunlink stream send --to ADDR:PORT --bytes N [--rate-mbps R] [--timeout-s N]",
    "",
    "serve accepts one connection and prints {progress} lines and a final {done, bytes, sha256};",
    "send prints {done, bytes, sha256, seconds}. Compare the hashes.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(
      args,
      { listen: { type: "string" }, to: { type: "string" }, bytes: { type: "string" }, "rate-mbps": { type: "string" }, "interval-ms": { type: "string" }, "timeout-s": { type: "string" } },
      { min: 1, max: 1 },
    );
    const verb = parsed.positionals[0];
    const v = parsed.values;
    const timeoutMs = integerOption("--timeout-s", v["timeout-s"] === undefined ? undefined : Number(v["timeout-s"]), 120, 1, 3600) * 1000;
    const print = (o: object) => void out.stdout.write(`${JSON.stringify(o)}\n`);
    if (verb === "serve") {
      const at = parseEndpoint(String(v.listen));
      if (at === undefined) throw invalidArgument("--listen", "ADDR:PORT (IPv4)", v.listen);
      const intervalMs = integerOption("--interval-ms", v["interval-ms"] === undefined ? undefined : Number(v["interval-ms"]), 250, 10, 60_000);
      await serve(at.host, at.port, intervalMs, timeoutMs, print);
    } else if (verb === "send") {
      const to = parseEndpoint(String(v.to));
      if (to === undefined) throw invalidArgument("--to", "ADDR:PORT (IPv4)", v.to);
      if (v.bytes === undefined) throw invalidArgument("--bytes", "the number of bytes to send (1..2^40)", undefined);
      const bytes = integerOption("--bytes", Number(v.bytes), 0, 1, 2 ** 40);
      const rate = v["rate-mbps"] === undefined ? 0 : Number(v["rate-mbps"]);
      if (!(rate >= 0 && rate <= 100_000)) throw invalidArgument("--rate-mbps", "a number of MB/s in 0..100000 (0 = as fast as possible)", v["rate-mbps"]);
      await send(to.host, to.port, bytes, rate, timeoutMs, print);
    } else throw invalidArgument("stream subcommand", "serve or send", verb);
  },
};

function serve(host: string, port: number, intervalMs: number, timeoutMs: number, print: (o: object) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let bytes = 0;
    const start = performance.now();
    let socket: Socket | undefined;
    const server = createServer((s) => {
      if (socket !== undefined) return s.destroy();
      socket = s;
      server.close();
      const progress = setInterval(() => print({ progress: true, ms: Math.round(performance.now() - start), bytes }), intervalMs);
      s.on("data", (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      s.on("error", (error) => {
        clearInterval(progress);
        reject(error);
      });
      s.on("end", () => {
        clearInterval(progress);
        print({ done: true, bytes, sha256: hash.digest("hex"), seconds: (performance.now() - start) / 1000 });
        s.end();
        resolve();
      });
    });
    const timer = setTimeout(() => {
      socket?.destroy();
      server.close();
      reject(new Error(`stream serve: no complete stream within ${timeoutMs / 1000} s (${bytes} bytes so far)`));
    }, timeoutMs);
    timer.unref();
    server.once("error", reject);
    server.listen(port, host, () => print({ listening: `${host}:${port}` }));
  });
}

function send(host: string, port: number, total: number, rateMBps: number, timeoutMs: number, print: (o: object) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    const chunk = Buffer.alloc(CHUNK_BYTES);
    let sent = 0;
    const start = performance.now();
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error(`stream send: not done within ${timeoutMs / 1000} s (${sent} of ${total} bytes sent)`)), timeoutMs);
    const pump = (): void => {
      while (sent < total) {
        if (rateMBps > 0) {
          const dueMs = (sent / (rateMBps * 1e6)) * 1000;
          const aheadMs = dueMs - (performance.now() - start);
          if (aheadMs > 1) {
            setTimeout(pump, aheadMs);
            return;
          }
        }
        const n = Math.min(CHUNK_BYTES, total - sent);
        const piece = Buffer.from(randomFillSync(chunk, 0, n).subarray(0, n));
        hash.update(piece);
        sent += n;
        if (!socket.write(piece)) {
          socket.once("drain", pump);
          return;
        }
      }
      socket.end();
    };
    socket.on("connect", pump);
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", (hadError) => {
      clearTimeout(timer);
      if (hadError) return;
      print({ done: true, bytes: sent, sha256: hash.digest("hex"), seconds: (performance.now() - start) / 1000 });
      resolve();
    });
  });
}
