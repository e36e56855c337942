// The host plumbing the labs (lab.ts: a pair, cluster-lab.ts: a cluster) and the device tests share:
// `ip` with errors that say which command failed, namespaces removed with what runs in them, written-out
// scratch volumes, loop devices attached with direct I/O (retried while another process races for the
// same free device; dio checked, since the driver silently falls back to buffered I/O), a wait for a
// mirror's first copy, and a checksummed TCP stream between two namespaces. Every wait is bounded.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

import { Volume } from "../io/volume.ts";
import { openSuperblock } from "../ring/superblocks.ts";

const execFileAsync = promisify(execFile);

/** A lab's host: a namespace running `lunlink up` with its config and control socket. */
export interface LabHost {
  ns: string;
  /** The node's end of its primary veth (to the peer, or into the switch). */
  veth: string;
  underlayAddress: string;
  tunAddress: string;
  configPath: string;
  socketPath: string;
  process?: ChildProcess;
}

/** Attempts at `losetup --find` while another process races us for the same free device. */
const LOOP_ATTACH_ATTEMPTS = 10;
/** Attempts at `losetup -d` while the device is still busy (100 ms apart). */
const LOOP_DETACH_ATTEMPTS = 20;
/** Attempts at setting direct I/O again until /sys says dio = 1. */
const DIRECT_IO_ATTEMPTS = 10;
/** Attempts at `ip netns del` while the kernel still holds the namespace (50 ms apart). */
const NETNS_DELETE_ATTEMPTS = 20;
/** Bound on one `ip` command. */
const IP_TIMEOUT_MS = 10_000;

export async function ip(args: string[]): Promise<void> {
  try {
    await execFileAsync("ip", args, { timeout: IP_TIMEOUT_MS });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(" ")} failed: ${e.stderr?.trim() || e.message}`, { cause: error });
  }
}

/**
 * Removes a network namespace this program created: kills what runs inside it, then deletes it
 * (which removes its veth ends and TUN devices), retrying while the kernel still holds it.
 */
export async function deleteNamespace(name: string): Promise<void> {
  const pids = await execFileAsync("ip", ["netns", "pids", name]).then((r) => r.stdout.split(/\s+/).filter(Boolean), () => []);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone already
    }
  }
  for (let attempt = 0; attempt < NETNS_DELETE_ATTEMPTS; attempt++) {
    try {
      await ip(["netns", "del", name]);
      return;
    } catch (error) {
      if (/No such file|not found|Invalid/i.test(String(error))) return;
      await sleep(50);
    }
  }
}

/** A file of `sizeBytes` written out, not sparse (a LUN has no holes: a first write into one makes ext4 allocate and journal, which stalls an O_DSYNC write). */
export async function writeOut(file: string, sizeBytes: number): Promise<string> {
  const handle = await open(file, "w");
  try {
    const zeros = Buffer.alloc(1024 * 1024);
    for (let at = 0; at < sizeBytes; at += zeros.length) await handle.write(zeros, 0, Math.min(zeros.length, sizeBytes - at), at);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return file;
}

export interface LoopOptions {
  sectorSize?: 512 | 1024 | 2048 | 4096;
  /** --direct-io=on: the loop driver does O_DIRECT on the backing file (no page cache in between). */
  directIo?: boolean;
}

/** `losetup --find --show`, retried while another process takes the same free device; with directIo, dio checked (detached if it cannot be had). */
export async function attachLoop(file: string, options: LoopOptions = {}): Promise<string> {
  const args = ["--find", "--show"];
  if (options.sectorSize !== undefined) args.push("--sector-size", String(options.sectorSize));
  if (options.directIo === true) args.push("--direct-io=on");
  args.push(file);
  let lastError: unknown;
  for (let attempt = 0; attempt < LOOP_ATTACH_ATTEMPTS; attempt++) {
    let device: string;
    try {
      device = (await execFileAsync("losetup", args, { encoding: "utf8" })).stdout.trim();
    } catch (error) {
      lastError = error;
      if (!/busy|EBUSY|resource temporarily/i.test(String(error))) break;
      await sleep(50 * (attempt + 1));
      continue;
    }
    if (options.directIo === true) {
      await ensureDirectIo(device).catch(async (error: unknown) => {
        await detachLoop(device).catch(() => undefined);
        throw error;
      });
    }
    return device;
  }
  throw lastError;
}

/** The labs' volumes: a loop device with direct I/O and 4096-byte sectors (a LUN's). */
export function attachDirectLoop(file: string): Promise<string> {
  return attachLoop(file, { sectorSize: 4096, directIo: true });
}

/** `losetup -d`, retried while the device is busy; another error is thrown. */
export async function detachLoop(device: string): Promise<void> {
  for (let attempt = 0; attempt < LOOP_DETACH_ATTEMPTS; attempt++) {
    try {
      await execFileAsync("losetup", ["-d", device]);
      return;
    } catch (error) {
      if (!/busy/i.test(String(error))) throw error;
      await sleep(100);
    }
  }
}

/**
 * The loop driver falls back to buffered I/O on the backing file without saying so when it cannot
 * do direct I/O at attach time; reads are then served from page cache (a stalled backing device
 * would not stall them). Sets it again until /sys says dio = 1, or says why not.
 */
async function ensureDirectIo(device: string): Promise<void> {
  const flag = `/sys/block/${device.replace("/dev/", "")}/loop/dio`;
  for (let attempt = 0; attempt < DIRECT_IO_ATTEMPTS; attempt++) {
    if ((await readFile(flag, "utf8")).trim() === "1") return;
    await execFileAsync("losetup", ["--direct-io=on", device]).catch(() => undefined);
    await sleep(50 * (attempt + 1));
  }
  throw new Error(`${device}: the loop driver refuses direct I/O on its backing file (${flag} stays 0)`);
}

/**
 * Waits until `path` carries the superblock of volume `volumeUuid` (a mirror's first copy is done:
 * the superblock goes last); `gone` says why to stop early (the mirror exited), if it did.
 */
export async function waitForCopy(path: string, volumeUuid: string, timeoutMs: number, gone: () => string | undefined = () => undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = gone();
    if (why !== undefined) throw new Error(why);
    const volume = await Volume.open(path, { readOnly: true });
    try {
      if ((await openSuperblock(volume)).superblock.volumeUuid === volumeUuid) return;
    } catch {
      // not copied yet
    } finally {
      await volume.close();
    }
    if (Date.now() > deadline) throw new Error(`${path}: no copy of volume ${volumeUuid} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export interface StreamReport {
  done?: boolean;
  bytes: number;
  sha256?: string;
  seconds?: number;
}

/** Where a lab stream runs: `spawn` starts a command in a node's namespace; the receiver listens on `toAddress`. */
export interface StreamEnds<N> {
  spawn: (node: N, command: string, args: string[]) => ChildProcess;
  lunlinkBin: string;
  from: N;
  to: N;
  toAddress: string;
}

/**
 * A checksummed TCP stream (`lunlink stream`) between two namespaces: resolves once the receiver
 * listens; `finished` resolves with both sides' reports (equal sha256 and bytes = it arrived intact).
 */
export async function startLabStream<N>(ends: StreamEnds<N>, bytes: number, rateMBps: number, port: number, onProgress?: (bytes: number) => void): Promise<{ finished: Promise<{ sent: StreamReport; received: StreamReport }> }> {
  const server = ends.spawn(ends.to, process.execPath, [ends.lunlinkBin, "stream", "serve", "--listen", `${ends.toAddress}:${port}`, "--interval-ms", "1000", "--timeout-s", "60"]);
  let received: StreamReport = { bytes: 0 };
  let serverErr = "";
  server.stderr!.on("data", (c: Buffer) => (serverErr += c.toString()));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: server.stdout! }).on("line", (line) => {
      const o = JSON.parse(line) as StreamReport & { listening?: string; progress?: boolean };
      if (o.listening !== undefined) resolve();
      if (o.progress === true) onProgress?.(o.bytes);
      if (o.done === true) received = o;
    });
    server.once("exit", () => reject(new Error(`stream server exited before listening: ${serverErr}`)));
  });
  const serverDone = new Promise<void>((resolve) => server.once("exit", () => resolve()));
  const sender = ends.spawn(ends.from, process.execPath, [ends.lunlinkBin, "stream", "send", "--to", `${ends.toAddress}:${port}`, "--bytes", String(bytes), "--rate-mbps", String(rateMBps), "--timeout-s", "60"]);
  let sent: StreamReport = { bytes: 0 };
  createInterface({ input: sender.stdout! }).on("line", (line) => (sent = JSON.parse(line) as StreamReport));
  const senderDone = new Promise<void>((resolve) => sender.once("exit", () => resolve()));
  return { finished: Promise.all([serverDone, senderDone]).then(() => ({ sent, received })) };
}

/** Bound on a node's stop: past it (after "down" or SIGTERM) it is killed. */
const NODE_STOP_TIMEOUT_MS = 10_000;

/** Runs a command in namespace `ns` and returns its stdout. */
export async function execIn(ns: string, command: string, args: string[], timeoutMs: number): Promise<string> {
  const { stdout } = await execFileAsync("ip", ["netns", "exec", ns, command, ...args], { timeout: timeoutMs, encoding: "utf8" });
  return stdout;
}

/** Gap between the pings of pingEach (a ping -i 0.05 rhythm). */
const PING_GAP_MS = 50;

/**
 * Echo replies to `count` pings from namespace `ns` to `address`, each its own `ping -c 1` started
 * PING_GAP_MS after the last and waiting up to replyWaitS for its own reply: a reply counts unless it
 * never comes within that wait. Not one `ping -c N -W S`: once any reply came, iputils waits after
 * the last request only max(2 x the slowest round trip, the interval) (schedule_exit), not -W, so a
 * reply the ring brings 60 ms after fast ones over the primary would count as lost.
 */
export async function pingEach(ns: string, address: string, count: number, replyWaitS: number, args: readonly string[] = []): Promise<number> {
  const pings: Promise<boolean>[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(PING_GAP_MS);
    const out = execIn(ns, "ping", ["-n", "-c", "1", "-W", String(replyWaitS), ...args, address], (replyWaitS + 10) * 1000);
    pings.push(out.then((text) => /\b1 received/.test(text)).catch(() => false));
  }
  return (await Promise.all(pings)).filter(Boolean).length;
}

/** `lunlink up --config FILE --log-json` in namespace `ns` (node options first); every line it logs goes to onLine. */
export function spawnUp(ns: string, configPath: string, nodeArgs: readonly string[], lunlinkBin: string, onLine: (line: string) => void): ChildProcess {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, ...nodeArgs, lunlinkBin, "up", "--config", configPath, "--log-json"], { stdio: ["ignore", "ignore", "pipe"] });
  createInterface({ input: child.stderr! }).on("line", onLine);
  return child;
}

/** Waits until `answers()` resolves (the node's control socket), polled every 100 ms; throws if the node exits first or after timeoutMs. */
export async function untilAnswers(child: ChildProcess, name: string, answers: () => Promise<unknown>, timeoutMs: number): Promise<void> {
  const exited = new Promise<never>((_, reject) => child.once("exit", (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before it came up`))));
  exited.catch(() => undefined); // it may exit long after it came up
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await Promise.race([answers(), exited]);
      return;
    } catch (error) {
      if (Date.now() > deadline || /exited/.test(String(error))) throw error;
      await sleep(100);
    }
  }
}

/** Stops a node's process: "down" (SIGTERM if `down` fails) or SIGKILL (a crash); SIGKILL after NODE_STOP_TIMEOUT_MS. */
export async function stopUp(child: ChildProcess | undefined, down: () => Promise<unknown>, how: "down" | "kill" = "down"): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  if (how === "kill") child.kill("SIGKILL");
  else await down().catch(() => child.kill("SIGTERM"));
  const timer = setTimeout(() => child.kill("SIGKILL"), NODE_STOP_TIMEOUT_MS);
  await exit;
  clearTimeout(timer);
}

/** Starts a long-running command in namespace `ns`, its stdio piped (the lab kills it at destroy() if still running). */
export function spawnIn(ns: string, command: string, args: string[]): ChildProcess {
  return spawn("ip", ["netns", "exec", ns, command, ...args], { stdio: ["pipe", "pipe", "pipe"] });
}

/** Builds a lab; if the build fails, removes what it created (destroy() is safe after a partial build) and rethrows. */
export async function builtOrDestroyed<L>(lab: L, build: () => Promise<void>, destroy: () => Promise<void>): Promise<L> {
  try {
    await build();
  } catch (error) {
    await destroy();
    throw error;
  }
  return lab;
}
