// `lunlink doctor --config FILE [--json]`: runs lib/node/doctor.ts's checks and prints one line per
// finding (with why and fix under it), or JSON for automation. Exit 1 if any check failed.
import { doctor, type Finding } from "../node/doctor.ts";
import { flag, parse } from "./args.ts";
import type { Command } from "./command.ts";
import { toJson, UsageError } from "./output.ts";

const MARK: Record<Finding["severity"], string> = { ok: "ok  ", info: "info", warn: "WARN", fail: "FAIL" };

export const doctorCommand: Command = {
  summary: "check a node's volumes, multipath, TUN, MTU, keys, ports, clock and corosync timers",
  usage: [
    "Usage: lunlink doctor --config FILE [--json] [--corosync-conf PATH] [--multipath-conf PATH]",
    "",
    "FILE is a pair's node config or a cluster node's (a cluster section): the same checks, on every",
    "ring the node writes or reads, and corosync.conf's ring addresses against the cluster's members.",
    "",
    "Runs before go-live and after every change. Reads only: it opens the volumes read-only, binds and",
    "releases the UDP ports, and reads /proc, /sys, nft, corosync.conf and multipath.conf.",
    "Each finding: ok, info, WARN (works, but you should know) or FAIL (lunlink will not work, or a",
    "failure will go unnoticed), with why it matters and the fix.",
    "Exit status: 0 nothing failed, 1 a check failed, 2 bad usage.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { config: { type: "string" }, json: { type: "boolean" }, "corosync-conf": { type: "string" }, "multipath-conf": { type: "string" } }, { min: 0, max: 0 });
    const config = parsed.values.config;
    if (typeof config !== "string") throw new UsageError("--config FILE is required");
    const options: { corosyncConf?: string; multipathConf?: string } = {};
    if (typeof parsed.values["corosync-conf"] === "string") options.corosyncConf = parsed.values["corosync-conf"];
    if (typeof parsed.values["multipath-conf"] === "string") options.multipathConf = parsed.values["multipath-conf"];
    const findings = await doctor(config, options);
    const failed = findings.some((f) => f.severity === "fail");
    if (flag(parsed, "json")) out.stdout.write(`${toJson({ ok: !failed, findings })}\n`);
    else {
      for (const f of findings) {
        out.stdout.write(`${MARK[f.severity]}  ${f.check.padEnd(20)} ${f.what}\n`);
        if (f.severity !== "ok" && f.why !== undefined) out.stdout.write(`      ${"".padEnd(20)} why: ${f.why}\n`);
        if (f.severity !== "ok" && f.fix !== undefined) out.stdout.write(`      ${"".padEnd(20)} fix: ${f.fix}\n`);
      }
      const count = (s: Finding["severity"]) => findings.filter((f) => f.severity === s).length;
      out.stdout.write(`${count("fail")} failed, ${count("warn")} warnings, ${count("ok")} ok\n`);
    }
    return failed ? 1 : 0;
  },
};
