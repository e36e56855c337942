// `lunlink up | down | status | check-config`: run one node of a pair or of a cluster in the
// foreground (composed in lib/node/run.ts and lib/node/cluster-run.ts; the config's `cluster`
// section decides which), stop it, ask it how it is, or check a config file.
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import pretty from "pino-pretty";

import { ErrorCode, LunlinkError } from "../errors.ts";
import { checkAnyConfig, controlSocketPath, formatProblems, loadAnyConfig, loadKeys, type AnyConfig } from "../node/config.ts";
import { runClusterNode } from "../node/cluster-run.ts";
import { ConfigValueError, loadClusterKey } from "../node/cluster-secret.ts";
import { renderClusterStatus, type ClusterNodeStatus } from "../node/cluster-status.ts";
import { callControl } from "../node/control.ts";
import { corosyncFindings } from "../node/doctor.ts";
import { runNode } from "../node/run.ts";
import { flag, parse } from "./args.ts";
import type { Command } from "./command.ts";
import { toJson, UsageError } from "./output.ts";
import { renderStatus, watch, WATCH_INTERVAL_DEFAULT_S, WATCH_INTERVAL_MAX_S, WATCH_INTERVAL_MIN_S, type NodeStatus } from "./status-view.ts";

export { storageLine } from "./status-view.ts";

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
    "A config with a `cluster` section runs a cluster node: one TUN for the cluster, this node's ring",
    "(its member's `ring`) written, every peer's ring read, a link per peer (README: Clusters).",
  ].join("\n"),
  async run(args) {
    const parsed = parse(args, { config: { type: "string" }, metrics: { type: "string" }, "log-json": { type: "boolean" } }, { min: 0, max: 0 });
    const file = configArg(parsed.values);
    let any: AnyConfig = await loadAnyConfig(file);
    if (typeof parsed.values.metrics === "string") {
      const checked = checkAnyConfig({ ...any.config, metrics: { ...any.config.metrics, listen: parsed.values.metrics } });
      if (!checked.ok) throw new LunlinkError(ErrorCode.BadConfig, formatProblems(`${file} with --metrics`, checked.problems), { path: file });
      any = checked.config;
    }
    const log = logger(flag(parsed, "log-json"));
    if (any.kind === "cluster") await runClusterNode(any.config, log);
    else await runNode(any.config, log);
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
  summary: "show a running node's paths, failovers, queues, counters and timeline (--watch: live)",
  usage: [
    "Usage: lunlink status (--config FILE | --socket PATH) [--json] [--watch [--interval SECONDS] [--count N]]",
    "",
    "Asks the node started with `lunlink up` for its state through the control socket: paths, active",
    "path, failovers, ring and peer-ring counters, and the timeline of its last transitions with their",
    "reasons (the last 10 here; --json has all the node keeps, 32).",
    `--watch refreshes every --interval seconds (${WATCH_INTERVAL_MIN_S}-${WATCH_INTERVAL_MAX_S}, default ${WATCH_INTERVAL_DEFAULT_S}) until Ctrl-C, in place on a`,
    "terminal and as plain frames one after another otherwise; --count N stops after N frames.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { config: { type: "string" }, socket: { type: "string" }, json: { type: "boolean" }, watch: { type: "boolean" }, interval: { type: "string" }, count: { type: "string" } }, { min: 0, max: 0 });
    const path = await socketFor(parsed.values);
    const json = flag(parsed, "json");
    const frame = async () => {
      const s = (await callControl(path, "status")) as NodeStatus | ClusterNodeStatus;
      if (json) return `${toJson(s)}\n`;
      return "kind" in s && s.kind === "cluster" ? renderClusterStatus(s) : renderStatus(s as NodeStatus);
    };
    if (!flag(parsed, "watch")) {
      if (parsed.values.interval !== undefined || parsed.values.count !== undefined) throw new UsageError("--interval and --count go with --watch");
      out.stdout.write(await frame());
      return;
    }
    const intervalS = numberArg(parsed.values.interval, "--interval", WATCH_INTERVAL_DEFAULT_S, WATCH_INTERVAL_MIN_S, WATCH_INTERVAL_MAX_S);
    const count = parsed.values.count === undefined ? undefined : numberArg(parsed.values.count, "--count", 1, 1, 1_000_000);
    if (count !== undefined && !Number.isInteger(count)) throw new UsageError("--count must be a whole number");
    const stdout = out.stdout as { isTTY?: boolean; rows?: number };
    const stop = new AbortController();
    const abort = () => stop.abort();
    process.once("SIGINT", abort);
    process.once("SIGTERM", abort);
    try {
      const ok = await watch(frame, { write: (text) => out.stdout.write(text), ...(stdout.isTTY === true ? { isTTY: true } : {}), ...(stdout.rows === undefined ? {} : { rows: stdout.rows }) }, {
        intervalS,
        ...(count === undefined ? {} : { count }),
        title: ["lunlink status", ...args.filter((a) => a !== "--watch")].join(" "),
        signal: stop.signal,
        sleep: (ms, signal) => sleep(ms, undefined, { signal }),
      });
      return ok ? 0 : 1;
    } finally {
      process.off("SIGINT", abort);
      process.off("SIGTERM", abort);
    }
  },
};

export const checkConfigCommand: Command = {
  summary: "check a node config file and print every problem",
  usage: [
    "Usage: lunlink check-config FILE [--json] [--corosync-conf PATH]",
    "",
    "Exit 0 if the file is valid (prints it with defaults filled in), 1 with one line per bad key otherwise.",
    "With keys configured it also reads the private key file as `up` would (present, mode 0600, a key).",
    "It then holds the timers against corosync.conf (PATH, default /etc/corosync/corosync.conf; skipped if",
    "absent), as `lunlink doctor` does, with the same findings: a WARN (a token under 3x lunlink's failover",
    "bound) is printed on stderr and leaves the exit status 0; a FAIL (a token not longer than the bound, or",
    "a ring address on the TUN subnet that is no member's) is printed on stderr and makes it 1.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { json: { type: "boolean" }, "corosync-conf": { type: "string" } }, { min: 1, max: 1 });
    const file = parsed.positionals[0]!;
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
      throw new LunlinkError(ErrorCode.BadConfig, `config ${file}: ${(error as Error).message}`, { path: file, cause: error });
    }
    const result = checkAnyConfig(raw);
    if (!result.ok) throw new LunlinkError(ErrorCode.BadConfig, `${result.problems.length} problem(s)\n${formatProblems(file, result.problems)}`, { path: file });
    const any = result.config;
    const c = any.config;
    // The key file as `up` will read it: present, mode 0600 or stricter, a key, not a peer's own.
    if (c.keys !== undefined) {
      try {
        if (any.kind === "cluster") await loadClusterKey(any.config);
        else await loadKeys(any.config);
      } catch (error) {
        // A cluster's key errors name their config key; a pair's loadKeys reads keys.private.
        const problem = error instanceof ConfigValueError ? error.problem : { key: "keys.private", value: c.keys.private, allowed: error instanceof Error ? error.message : String(error) };
        throw new LunlinkError(ErrorCode.BadConfig, `1 problem(s)\n${formatProblems(file, [problem])}`, { path: file, cause: error });
      }
    }
    const who = any.kind === "cluster" ? `node ${c.node} in a cluster of ${any.config.cluster.members.length}` : `node ${c.node} <-> node ${any.config.peer}`;
    out.stdout.write(flag(parsed, "json") ? `${toJson(c)}\n` : `${file}: ok (${who}, ${c.tun.name} ${c.tun.address} mtu ${c.tun.mtu})\n`);
    const corosyncConf = typeof parsed.values["corosync-conf"] === "string" ? parsed.values["corosync-conf"] : "/etc/corosync/corosync.conf";
    const contradictions = (await corosyncFindings(any, corosyncConf)).filter((f) => f.severity === "warn" || f.severity === "fail");
    for (const f of contradictions) out.stderr.write(`${f.severity === "fail" ? "FAIL" : "WARN"} ${f.check}: ${f.what}\n${f.why === undefined ? "" : `  why: ${f.why}\n`}${f.fix === undefined ? "" : `  fix: ${f.fix}\n`}`);
    return contradictions.some((f) => f.severity === "fail") ? 1 : 0;
  },
};

function numberArg(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== "string" || value.trim() === "" || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`${name} must be a number from ${min} to ${max}, found ${JSON.stringify(value)}`);
  return n;
}

async function socketFor(values: Record<string, unknown>): Promise<string> {
  if (typeof values.socket === "string") return values.socket;
  return controlSocketPath((await loadAnyConfig(configArg(values))).config);
}
