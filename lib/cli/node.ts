// `lunlink up | down | status | check-config`: run one node of a pair in the foreground (the node
// itself is composed in lib/node/run.ts), stop it, ask it how it is, or check a config file.
import { readFile } from "node:fs/promises";
import pino from "pino";
import pretty from "pino-pretty";

import { ErrorCode, LunlinkError } from "../errors.ts";
import type { LinkStatus } from "../link/link.ts";
import type { StorageReport } from "../link/storage-path.ts";
import { checkConfig, controlSocketPath, formatProblems, loadConfig, loadKeys } from "../node/config.ts";
import { callControl } from "../node/control.ts";
import { runNode } from "../node/run.ts";
import { flag, parse } from "./args.ts";
import type { Command } from "./command.ts";
import { toJson, UsageError } from "./output.ts";

function configArg(values: Record<string, unknown>): string {
  const file = values.config;
  if (typeof file !== "string") throw new UsageError("--config FILE is required");
  return file;
}

function logger(json: boolean) {
  return json || !process.stderr.isTTY ? pino({ base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true })) : pino({}, pretty({ destination: 2, sync: true, colorize: true, translateTime: "HH:MM:ss.l" }));
}

export const upCommand: Command = {
  summary: "bring this node's TUN interface and link up (foreground)",
  usage: [
    "Usage: lunlink up --config FILE [--metrics ADDR:PORT] [--log-json]",
    "",
    "Opens the TUN device (tun.name, default lunlink0) with tun.address and tun.mtu, the link's two",
    "paths (UDP primary; send ring on storage.send, peer's ring on storage.receive) and the control",
    "socket (control.socket, default /run/lunlink/<tun>.sock, mode 0600), and carries every IP packet",
    "until `lunlink down`, SIGINT or SIGTERM. Logs are structured (pino): human on a terminal, JSON",
    "lines otherwise or with --log-json. --metrics (or metrics.listen) serves Prometheus text at",
    "/metrics (loopback addresses only, unless metrics.allowRemote).",
  ].join("\n"),
  async run(args) {
    const parsed = parse(args, { config: { type: "string" }, metrics: { type: "string" }, "log-json": { type: "boolean" } }, { min: 0, max: 0 });
    const file = configArg(parsed.values);
    let config = await loadConfig(file);
    if (typeof parsed.values.metrics === "string") {
      const checked = checkConfig({ ...config, metrics: { ...config.metrics, listen: parsed.values.metrics } });
      if (!checked.ok) throw new LunlinkError(ErrorCode.BadConfig, formatProblems(`${file} with --metrics`, checked.problems), { path: file });
      config = checked.config;
    }
    await runNode(config, logger(flag(parsed, "log-json")));
  },
};

export const downCommand: Command = {
  summary: "bring a running node down (via its control socket)",
  usage: "Usage: lunlink down (--config FILE | --socket PATH)\n\nAsks the node started with `lunlink up` to close its TUN device and link and exit.",
  async run(args, out) {
    const parsed = parse(args, { config: { type: "string" }, socket: { type: "string" } }, { min: 0, max: 0 });
    const path = await socketFor(parsed.values);
    await callControl(path, "down");
    out.stdout.write(`asked the node on ${path} to go down\n`);
  },
};

export const statusCommand: Command = {
  summary: "show a running node's paths, failovers, queues and counters",
  usage: "Usage: lunlink status (--config FILE | --socket PATH) [--json]\n\nAsks the node started with `lunlink up` for its state through the control socket.",
  async run(args, out) {
    const parsed = parse(args, { config: { type: "string" }, socket: { type: "string" }, json: { type: "boolean" } }, { min: 0, max: 0 });
    const s = (await callControl(await socketFor(parsed.values), "status")) as LinkStatus & { tun: { name: string; packetsIn: number; packetsOut: number } };
    if (flag(parsed, "json")) {
      out.stdout.write(`${toJson(s)}\n`);
      return;
    }
    const lines = [
      `node ${s.node} <-> node ${s.peer}: active path ${s.active}${s.active === "isolated" ? " (both paths silent; lunlink does not fence)" : ""}`,
      `  primary  ${pathLine(s.paths.primary)}`,
      `  storage  ${s.storage.state === "up" ? `${pathLine(s.paths.storage)}${s.paths.storage.state === "up" ? "" : " (local volumes fine: the mirror or the peer)"}` : `${s.storage.state}  ${storageLine(s.storage)}`}`,
      `  failovers ${s.failovers}, failbacks ${s.failbacks}, self pauses ${s.selfPauses}, control pending ${s.controlPending}`,
      `  sent primary ${s.counters.sent.primary} storage ${s.counters.sent.storage}; received primary ${s.counters.received.primary} storage ${s.counters.received.storage}; duplicates dropped ${s.counters.dataDuplicates}`,
      `  ring head ${s.ring.headSeq}, peer ack ${s.ring.peerAckSeq ?? "none"}, receive lag ${s.ring.receiveLagRecords} records, writer queue ${s.ring.writerQueuedBytes} B, writer drops ${s.ring.writerCounters.framesDropped}`,
      `  tun ${s.tun.name}: ${s.tun.packetsIn} packets in, ${s.tun.packetsOut} out`,
    ];
    out.stdout.write(`${lines.join("\n")}\n`);
  },
};

export const checkConfigCommand: Command = {
  summary: "check a node config file and print every problem",
  usage: "Usage: lunlink check-config FILE [--json]\n\nExit 0 if the file is valid (prints it with defaults filled in), 1 with one line per bad key otherwise.\nWith keys configured it also reads the private key file as `up` would (present, mode 0600, a key).",
  async run(args, out) {
    const parsed = parse(args, { json: { type: "boolean" } }, { min: 1, max: 1 });
    const file = parsed.positionals[0]!;
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
      throw new LunlinkError(ErrorCode.BadConfig, `config ${file}: ${(error as Error).message}`, { path: file, cause: error });
    }
    const result = checkConfig(raw);
    if (!result.ok) throw new LunlinkError(ErrorCode.BadConfig, `${result.problems.length} problem(s)\n${formatProblems(file, result.problems)}`, { path: file });
    // The key file as `up` will read it: present, mode 0600 or stricter, a key, not the peer's own.
    if (result.config.keys !== undefined) {
      try {
        await loadKeys(result.config);
      } catch (error) {
        const problem = { key: "keys.private", value: result.config.keys.private, allowed: error instanceof Error ? error.message : String(error) };
        throw new LunlinkError(ErrorCode.BadConfig, `1 problem(s)\n${formatProblems(file, [problem])}`, { path: file, cause: error });
      }
    }
    out.stdout.write(flag(parsed, "json") ? `${toJson(result.config)}\n` : `${file}: ok (node ${result.config.node} <-> node ${result.config.peer}, ${result.config.tun.name} ${result.config.tun.address} mtu ${result.config.tun.mtu})\n`);
  },
};

function pathLine(p: LinkStatus["paths"]["primary"]): string {
  return `${p.state.padEnd(8)} last heard ${p.lastHeardAgoMs ?? "never"} ms ago${p.state === "up" ? "" : ` (${p.reason})`}`;
}

/** Why the local storage path is not up, e.g. "send volume stalled 12.4 s (2 requests parked)". */
export function storageLine(report: StorageReport): string {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const parts: string[] = [];
  for (const v of [report.send, report.receive]) {
    const name = `${v.component} volume`;
    if (v.state === "stalled") parts.push(`${name} stalled ${seconds(v.stalledForMs ?? v.forMs)} (${v.parked} request${v.parked === 1 ? "" : "s"} parked)`);
    else if (v.state === "retrying") parts.push(`${name} ${v.fault?.code.replace("ERR_LUNLINK_", "") ?? "fault"} ${seconds(v.forMs)} ago, attempt ${v.attempts}${v.nextAttemptInMs === null ? "" : `, next in ${seconds(v.nextAttemptInMs)}`}`);
    else if (v.state === "failed") parts.push(`${name} failed: ${v.fault?.message ?? "unknown"} (configuration fault: not retried; fix it and restart)`);
    else if (v.state !== "up") parts.push(`${name} ${v.state}`);
  }
  return parts.join("; ");
}

async function socketFor(values: Record<string, unknown>): Promise<string> {
  if (typeof values.socket === "string") return values.socket;
  return controlSocketPath(await loadConfig(configArg(values)));
}
