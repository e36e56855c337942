// `lunlink mirror copy|serve|push|status`: the mirror modes lunlink drives itself (local copy; remote
// over TCP: serve on the far side, push on the near side) and a status report for any mode. Each takes
// `--region NODE` to mirror one node's region of a cluster volume (lib/mirror/region.ts picks the views).
// The long-running ones heal themselves (lib/io/supervisor.ts) and print one line per change of
// health (a JSON line with --json), never one per retry; on SIGINT/SIGTERM they stop within
// --close-timeout-ms and say what they could not flush.
import { performance } from "node:perf_hooks";
import { DEFAULT_IO_TIMEOUT_MS } from "../defaults.ts";
import { ErrorCode, LunlinkError, integerOption, invalidArgument } from "../errors.ts";
import { MAX_CLUSTER_NODE_ID } from "../format/layout.ts";
import type { ClusterHeader } from "../format/cluster.ts";
import { Volume } from "../io/volume.ts";
import { isClusterVolume } from "../ring/cluster.ts";
import { healthOf, healthSnapshot, type HealthChange } from "../mirror/health.ts";
import { LocalMirror } from "../mirror/local.ts";
import type { MirrorCloseReport, RingMirror } from "../mirror/ring-mirror.ts";
import { RemoteMirrorPusher } from "../mirror/remote-pusher.ts";
import { RemoteMirrorServer } from "../mirror/remote-server.ts";
import { regionDestination, regionSource } from "../mirror/region.ts";
import { mirrorStatus } from "../mirror/status.ts";
import { flag, parse, type ParsedArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { toJson, type Output } from "./output.ts";
import { progressBar } from "./progress.ts";

/** "HOST:PORT" or "[IPv6]:PORT" -> parts. */
export function parseAddress(name: string, raw: unknown): { host: string; port: number } {
  const m = typeof raw === "string" ? /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw) : null;
  const port = Number(m?.[3]);
  if (m === null || port < 1 || port > 65535) throw invalidArgument(name, "HOST:PORT (or [IPv6]:PORT) with a port in 1..65535", raw);
  return { host: m[1] ?? m[2]!, port };
}

/** `--flag N` as `{ key: N }` (range-checked by the API, which names the option), or nothing. */
function numberOption<K extends string>(parsed: ParsedArgs, flagName: string, key: K): Partial<Record<K, number>> {
  const raw = parsed.values[flagName];
  return raw === undefined ? {} : ({ [key]: Number(raw) } as Partial<Record<K, number>>);
}

/** --region NODE: the node whose region of a cluster volume is mirrored (undefined: the whole volume). */
function regionOption(parsed: ParsedArgs): number | undefined {
  const raw = parsed.values.region;
  return raw === undefined ? undefined : integerOption("--region", Number(raw), 0, 1, MAX_CLUSTER_NODE_ID);
}

/** What a mirror reads: node `region`'s region of a cluster volume, or the volume; a cluster volume needs --region. */
async function mirrorSource(volume: Volume, region: number | undefined): Promise<{ source: Volume; header?: ClusterHeader }> {
  if (region !== undefined) return regionSource(volume, region);
  if (await isClusterVolume(volume)) throw invalidArgument("--region", `the node whose region to mirror (${volume.path} is a cluster volume)`, undefined);
  return { source: volume };
}

function jsonLine(out: Output, value: unknown): void {
  out.stdout.write(`${toJson(value).replace(/\n\s*/g, " ")}\n`);
}

/** The supervisor settings every long-running mirror verb takes. */
function supervisorOptions(parsed: ParsedArgs): { retryMinMs?: number; retryMaxMs?: number; closeTimeoutMs?: number } {
  return { ...numberOption(parsed, "retry-min-ms", "retryMinMs"), ...numberOption(parsed, "retry-max-ms", "retryMaxMs"), ...numberOption(parsed, "close-timeout-ms", "closeTimeoutMs") };
}

/** --io-timeout-ms N as a volume option (range-checked by Volume.open). */
function ioTimeout(parsed: ParsedArgs): { ioTimeoutMs?: number } {
  return numberOption(parsed, "io-timeout-ms", "ioTimeoutMs");
}

/** One line per change of health: `event: "state"` on stdout with --json, a sentence on stderr without. */
function logState(out: Output, json: boolean, verb: string): (change: HealthChange) => void {
  return (change) => {
    if (json) jsonLine(out, { event: "state", ...change });
    else out.stderr.write(`lunlink ${verb}: ${change.health}${change.fault === null ? "" : ` (${change.fault}${change.code === null ? "" : `, ${change.code}`})`}: ${change.detail}\n`);
  };
}

/** Runs a mirror until SIGINT/SIGTERM (rejects if it failed first); returns what stop() could not flush. */
async function followMirror(mirror: RingMirror): Promise<MirrorCloseReport> {
  let onSignal: (() => void) | undefined;
  const signalled = new Promise<void>((resolve) => (onSignal = resolve));
  process.once("SIGINT", onSignal!);
  process.once("SIGTERM", onSignal!);
  mirror.start();
  try {
    await Promise.race([mirror.finished(), signalled]);
    return await mirror.stop();
  } finally {
    process.off("SIGINT", onSignal!);
    process.off("SIGTERM", onSignal!);
  }
}

function reportClose(out: Output, json: boolean, verb: string, report: MirrorCloseReport | { flushed: boolean; detail: string }): void {
  if (json) jsonLine(out, { event: "closed", ...report });
  else if (!report.flushed) out.stderr.write(`lunlink ${verb}: stopped without flushing everything: ${report.detail}\n`);
}
async function copy(parsed: ParsedArgs, out: Output): Promise<void> {
  const [, sourcePath, destinationPath] = parsed.positionals as [string, string?, string?];
  if (destinationPath === undefined) throw invalidArgument("mirror copy", "<source> <destination>", parsed.positionals.slice(1).join(" "));
  const region = regionOption(parsed);
  const sourceVolume = await Volume.open(sourcePath!, { readOnly: true, ...ioTimeout(parsed) });
  const destinationVolume = await Volume.open(destinationPath, { exclusive: true, ...ioTimeout(parsed) });
  try {
    const json = flag(parsed, "json");
    const { source, header } = await mirrorSource(sourceVolume, region);
    const destination = region === undefined ? destinationVolume : await regionDestination(destinationVolume, region, header);
    const mirror = await LocalMirror.open(source, destination, { force: flag(parsed, "force"), ...supervisorOptions(parsed) });
    mirror.on("progress", progressBar());
    const changed = flag(parsed, "changed");
    const intervalText = parsed.values["interval-ms"];
    if (flag(parsed, "follow")) {
      if (changed || intervalText !== undefined) throw invalidArgument("--follow", "alone (not with --changed or --interval-ms)", true);
      mirror.on("state", logState(out, json, "mirror copy"));
      reportClose(out, json, "mirror copy", await followMirror(mirror));
    } else if (intervalText !== undefined) {
      // Interval mode: copy what changed every N ms until SIGINT/SIGTERM.
      const intervalMs = integerOption("--interval-ms", Number(intervalText), 0, 1, 3_600_000);
      let stop = false;
      const onSignal = (): void => void (stop = true);
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        while (!stop) {
          await mirror.resync(true);
          for (const until = performance.now() + intervalMs; !stop && performance.now() < until; ) await new Promise((r) => setTimeout(r, Math.min(100, intervalMs)));
        }
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    } else {
      await mirror.resync(changed);
    }
    const summary = { source: sourcePath, destination: destinationPath, ...mirror.counters, supervisor: healthSnapshot(mirror.supervisor) };
    // --follow --json prints JSON lines (state changes, closed): the summary is one more line.
    if (json && flag(parsed, "follow")) jsonLine(out, { event: "done", ...summary });
    else out.stdout.write(json ? `${toJson(summary)}\n` : `mirrored ${source.path} -> ${destination.path}: ${mirror.counters.blocksCopied} blocks copied, ${mirror.counters.blocksSkipped} already equal, ${mirror.counters.records} records followed, ${mirror.counters.resyncs} resync(s)\n`);
  } finally {
    await sourceVolume.close();
    await destinationVolume.close();
  }
}

async function serve(parsed: ParsedArgs, out: Output): Promise<void> {
  const { host, port } = parseAddress("--listen", parsed.values.listen);
  const volumePath = parsed.values.volume;
  if (typeof volumePath !== "string") throw invalidArgument("--volume", "the destination (receive) volume", volumePath);
  const json = flag(parsed, "json");
  const region = regionOption(parsed);
  const destinationVolume = await Volume.open(volumePath, { exclusive: true, ...ioTimeout(parsed) });
  try {
    // The pusher's cluster is not known before it connects: its volume identity is checked per session.
    const destination = region === undefined ? destinationVolume : await regionDestination(destinationVolume, region);
    const server = await RemoteMirrorServer.listen(destination, { host, port, force: flag(parsed, "force"), ...numberOption(parsed, "close-timeout-ms", "closeTimeoutMs") });
    const log = (event: string, detail: Record<string, unknown>): void => {
      if (json) jsonLine(out, { event, ...detail });
      else out.stderr.write(`lunlink mirror serve: ${event} ${Object.values(detail).join(" ")}\n`);
    };
    // While the destination is faulted every reconnect of the pusher would be a session: quiet then.
    const quiet = (): boolean => healthOf(server.supervisor.state) === "faulted";
    server.on("session", (peer) => quiet() || log("session", { peer }));
    server.on("sessionEnd", (peer, reason) => quiet() || log("session-end", { peer, reason }));
    server.on("state", logState(out, json, "mirror serve"));
    server.on("error", (error) => log("error", { code: error instanceof LunlinkError ? error.code : "", message: error.message }));
    const address = `${server.address.host}:${server.address.port}`;
    if (json) jsonLine(out, { event: "listening", address, volume: destination.path });
    else out.stdout.write(`listening on ${address}, writing ${destination.path}\n`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    reportClose(out, json, "mirror serve", await server.close());
    if (json) jsonLine(out, { event: "stopped", ...server.counters, supervisor: healthSnapshot(server.supervisor) });
    else out.stdout.write(`stopped: ${server.counters.sessions} session(s), ${server.counters.writes} writes, ${server.counters.bytesWritten} bytes, ${server.counters.syncs} syncs\n`);
  } finally {
    await destinationVolume.close();
  }
}

async function push(parsed: ParsedArgs, out: Output): Promise<void> {
  const sourcePath = parsed.positionals[1];
  if (sourcePath === undefined || parsed.positionals.length !== 2) throw invalidArgument("mirror push", "<source> --to HOST:PORT", parsed.positionals.slice(1).join(" "));
  const { host, port } = parseAddress("--to", parsed.values.to);
  const json = flag(parsed, "json");
  const sourceVolume = await Volume.open(sourcePath, { readOnly: true, ...ioTimeout(parsed) });
  try {
    const { source } = await mirrorSource(sourceVolume, regionOption(parsed));
    const pusher = await RemoteMirrorPusher.open(source, { host, port, once: flag(parsed, "once"), ...numberOption(parsed, "ack-timeout-ms", "ackTimeoutMs"), ...numberOption(parsed, "poll-max-ms", "pollMaxMs"), ...supervisorOptions(parsed) });
    pusher.on("progress", progressBar());
    pusher.on("connection", (state, detail) => {
      if (json) jsonLine(out, { event: `connection-${state}`, detail });
      else out.stderr.write(`lunlink mirror push: link ${state}: ${detail}\n`);
    });
    pusher.on("state", logState(out, json, "mirror push"));
    pusher.on("resync", () => {
      if (json) jsonLine(out, { event: "resync", ...pusher.counters, ...pusher.link });
    });
    reportClose(out, json, "mirror push", await followMirror(pusher));
    const summary = { source: source.path, to: `${host}:${port}`, ...pusher.counters, ...pusher.link, supervisor: healthSnapshot(pusher.supervisor) };
    if (json) jsonLine(out, { event: "done", ...summary });
    else out.stdout.write(`pushed ${source.path} -> ${host}:${port}: ${pusher.counters.blocksCopied} blocks sent, ${pusher.counters.blocksSkipped} already equal, ${pusher.counters.records} records followed, ${pusher.counters.resyncs} resync(s), ${pusher.link.reconnects} reconnect(s)\n`);
  } finally {
    await sourceVolume.close();
  }
}

async function status(parsed: ParsedArgs, out: Output): Promise<void> {
  const [, sourcePath, destinationPath] = parsed.positionals as [string, string?, string?];
  if (sourcePath === undefined || destinationPath === undefined) throw invalidArgument("mirror status", "<source> <destination>", parsed.positionals.slice(1).join(" "));
  const region = regionOption(parsed);
  const sourceVolume = await Volume.open(sourcePath, { readOnly: true });
  const destinationVolume = await Volume.open(destinationPath, { readOnly: true });
  try {
    const { source } = await mirrorSource(sourceVolume, region);
    // No header check here: a destination that is not a copy is reported as such ("not-a-copy").
    const destination = region === undefined ? destinationVolume : await regionDestination(destinationVolume, region);
    const report = await mirrorStatus(source, destination);
    if (flag(parsed, "json")) {
      out.stdout.write(`${toJson(report)}\n`);
      return;
    }
    const s = report.source;
    const d = report.destination;
    out.stdout.write(
      [
        `mirror ${source.path} -> ${destination.path}: ${report.state}`,
        `  source       volume ${s.volumeUuid} epoch ${s.epoch} head seq ${s.headSeq ?? "?"}`,
        `  destination  ${d.volumeUuid === null ? `no lunlink volume (${d.problem})` : `volume ${d.volumeUuid} epoch ${d.epoch} head seq ${d.headSeq ?? "?"}, last copied seq ${d.newestSeq ?? "none"}`}`,
        `  lag          ${report.lagRecords === null ? "n/a" : `${report.lagRecords} record(s)`}${report.lagMs === null ? "" : `, status ${report.lagMs} ms behind`}`,
        "",
      ].join("\n"),
    );
  } finally {
    await sourceVolume.close();
    await destinationVolume.close();
  }
}

export const mirrorCommand: Command = {
  summary: "mirror a send volume onto a receive volume (local copy, remote serve/push) and report status",
  usage: [
    "Usage: lunlink mirror copy <source> <destination> [--region NODE] [--follow | --changed | --interval-ms N] [--force] [--json] [SUPERVISION]",
    "       lunlink mirror serve --listen HOST:PORT --volume <destination> [--region NODE] [--force] [--json] [--close-timeout-ms N] [--io-timeout-ms N]",
    "       lunlink mirror push <source> --to HOST:PORT [--region NODE] [--once] [--ack-timeout-ms N] [--poll-max-ms N] [--json] [SUPERVISION]",
    "       lunlink mirror status <source> <destination> [--region NODE] [--json]",
    "",
    "copy    Copies the source send volume onto the destination receive volume with O_DIRECT: the ring",
    "        (end first), the status slots, then superblock copy B and copy A, each synced. --changed",
    "        reads the destination too and writes only the blocks that differ (once); --interval-ms N",
    "        does that every N ms until SIGINT/SIGTERM. With --follow",
    "        it then copies every new record as it lands (later blocks before the first block).",
    "serve   Far side of the remote mirror: listens on the replication link and writes what a pusher",
    "        sends onto <destination> (O_DIRECT; acked only after fdatasync). One pusher at a time.",
    "push    Near side: connects to a server, compares per-block checksums of the ring and sends only",
    "        the blocks that differ, then follows the ring; reconnects with backoff and resyncs after",
    "        the link drops (a write unacked for --ack-timeout-ms, default 5000, means it did).",
    "        --once: resync, then exit. --poll-max-ms: longest sleep between reads of the source's",
    "        next block while idle (default 10; bounds the added lag).",
    "status  Reads both volumes (any mirror mode, the array's too) and reports lag in records and ms,",
    "        head sequences and the last record copied.",
    "",
    "--region NODE: the source is a cluster volume (format --cluster) and only node NODE's region is",
    "        mirrored (a cluster volume source needs it). The destination is then the same region of a",
    "        cluster volume carrying the source's cluster header (copy refuses another cluster's), or the",
    "        whole destination otherwise (a node volume copy of the region, which a peer reads as its ring).",
    "",
    "copy and serve refuse a destination formatted as another volume or pair unless --force. copy, serve",
    "and push run until SIGINT/SIGTERM (copy: with --follow); a progress bar shows on a terminal.",
    "",
    "SUPERVISION: --retry-min-ms N --retry-max-ms N (backoff between attempts, doubling, jittered; default",
    "100 and 5000), --close-timeout-ms N (how long a stop waits for the last writes; default 5000),",
    "--io-timeout-ms N (deadline of each I/O: past it the request is parked and the volume stalled;",
    `default ${DEFAULT_IO_TIMEOUT_MS}). A stall, EIO, ENOSPC or a lost link is reported once (state: faulted), waited out`,
    "(a stalled volume until it answers) and the mirror resyncs and carries on by itself (state:",
    "healthy); a configuration fault (wrong pair, too small, refused) is reported and ends the command.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(
      args,
      { region: { type: "string" }, follow: { type: "boolean" }, changed: { type: "boolean" }, "interval-ms": { type: "string" }, force: { type: "boolean" }, json: { type: "boolean" }, once: { type: "boolean" }, listen: { type: "string" }, volume: { type: "string" }, to: { type: "string" }, "ack-timeout-ms": { type: "string" }, "poll-max-ms": { type: "string" }, "retry-min-ms": { type: "string" }, "retry-max-ms": { type: "string" }, "close-timeout-ms": { type: "string" }, "io-timeout-ms": { type: "string" } },
      { min: 1, max: 3 },
    );
    const verb = parsed.positionals[0];
    if (verb === "copy") return copy(parsed, out);
    if (verb === "serve") return serve(parsed, out);
    if (verb === "push") return push(parsed, out);
    if (verb === "status") return status(parsed, out);
    throw new LunlinkError(ErrorCode.InvalidArgument, `mirror subcommand must be copy, serve, push or status; found ${JSON.stringify(verb)}`);
  },
};
