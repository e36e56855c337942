// `npm run bench -- pressure [--seconds S] [--phases quiet,other,lab]`: false failovers under CPU pressure. A pair in the
// two-host lab (lib/node/lab.ts) with default timers and no cut runs three times, each for S seconds
// (default 60): on a quiet machine; with a CPU hog at normal priority on every core (stress-ng --cpu
// N, N = the core count) started as another job (its own session, so its own autogroup, as another
// user's job or service would be); and with the same hog in the lab's own session (one autogroup with
// the nodes and the mirrors, the harshest placement). A transition on a link nobody cut is a false
// one; the table gives transitions per minute per node, self-pauses and the nodes' event-loop delay.
import { availableParallelism, loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

import type { LinkStatus } from "../lib/link/link.ts";
import { Lab } from "../lib/node/lab.ts";
import { startHog, type Hog } from "./hog.ts";
import { numberArg, table } from "./stats.ts";
import { machineLine } from "./machine.ts";

interface PhaseResult {
  name: string;
  transitions: [number, number];
  reasons: string[];
  selfPauses: [number, number];
  loopDelayP99Ms: [number, number];
  loopDelayMaxMs: [number, number];
  scheduling: string;
  load: string;
}

/** Where the hog runs: nowhere, as another job (own session and autogroup), or in the lab's session. */
type HogPlacement = "none" | "own-session" | "lab-session";
const PHASES: Record<string, HogPlacement> = { quiet: "none", other: "own-session", lab: "lab-session" };

/** `--phases quiet,other,lab` (the default; any subset, in any order). */
function phaseList(args: string[]): HogPlacement[] {
  const at = args.indexOf("--phases");
  const names = at >= 0 && args[at + 1] !== undefined ? args[at + 1]!.split(",") : ["quiet", "other", "lab"];
  return names.map((n) => {
    const placement = PHASES[n];
    if (placement === undefined) throw new Error(`--phases: ${JSON.stringify(n)} is not one of ${Object.keys(PHASES).join(", ")}`);
    return placement;
  });
}

export async function pressureBench(args: string[]): Promise<void> {
  const seconds = numberArg(args, "--seconds", 60);
  const cores = availableParallelism();
  console.log(machineLine());
  console.log(`pressure: a pair with default timers, no cut, ${seconds} s per phase; hog: stress-ng --cpu ${cores} (normal priority)`);
  const names: Record<HogPlacement, string> = { none: "quiet", "own-session": `stress-ng --cpu ${cores}, another session`, "lab-session": `stress-ng --cpu ${cores}, the lab's session` };
  const results: PhaseResult[] = [];
  for (const placement of phaseList(args)) results.push(await phase(names[placement], seconds, placement));
  const perMinute = (n: number) => ((n * 60) / seconds).toFixed(1);
  console.log(
    table(
      ["phase", "false transitions/min node 1", "node 2", "self-pauses 1/2", "event-loop delay p99 ms 1/2", "max ms 1/2", "node scheduling", "load average"],
      results.map((r) => [
        r.name,
        perMinute(r.transitions[0]),
        perMinute(r.transitions[1]),
        `${r.selfPauses[0]}/${r.selfPauses[1]}`,
        `${r.loopDelayP99Ms[0].toFixed(1)}/${r.loopDelayP99Ms[1].toFixed(1)}`,
        `${r.loopDelayMaxMs[0].toFixed(0)}/${r.loopDelayMaxMs[1].toFixed(0)}`,
        r.scheduling,
        r.load,
      ]),
    ),
  );
  for (const r of results) if (r.reasons.length > 0) console.log(`${r.name}: ${r.reasons.join("; ")}`);
}

// One fresh lab per phase, so each node's event-loop histogram (kept since start) covers that phase only.
async function phase(name: string, seconds: number, hog: HogPlacement): Promise<PhaseResult> {
  const scheduling = new Set<string>();
  const onLog = (_node: 1 | 2, line: string): void => {
    if (!line.includes('"scheduling"')) return;
    const o = JSON.parse(line) as { policy?: string; priority?: number };
    scheduling.add(o.policy === "rr" ? `SCHED_RR ${o.priority}` : "normal");
  };
  const lab = await Lab.create({ prefix: "llb-", onLog });
  const stop = () => void lab.destroy().finally(() => process.exit(130));
  process.once("SIGINT", stop);
  let stress: Hog | undefined;
  try {
    await lab.startPair(20_000);
    const before = await Promise.all([lab.status(1), lab.status(2)]);
    if (hog !== "none") {
      // Its own session (setsid): the kernel puts the hog in an autogroup of its own.
      stress = startHog(seconds + 5, { ownSession: hog === "own-session" });
    }
    await sleep(seconds * 1000);
    const load = loadavg().map((x) => x.toFixed(2)).join(" ");
    const after = await Promise.all([lab.status(1), lab.status(2)]);
    const fresh = (id: 0 | 1) => falseTransitions(before[id]!, after[id]!);
    const t = [fresh(0), fresh(1)] as const;
    return {
      name,
      transitions: [t[0].length, t[1].length],
      reasons: [...t[0].map((x) => `node 1 ${x}`), ...t[1].map((x) => `node 2 ${x}`)].slice(0, 8),
      selfPauses: [after[0]!.selfPauses - before[0]!.selfPauses, after[1]!.selfPauses - before[1]!.selfPauses],
      loopDelayP99Ms: [after[0]!.eventLoopDelayMs.p99, after[1]!.eventLoopDelayMs.p99],
      loopDelayMaxMs: [after[0]!.eventLoopDelayMs.max, after[1]!.eventLoopDelayMs.max],
      scheduling: [...scheduling].join(", ") || "?",
      load,
    };
  } finally {
    await stress?.stop();
    process.off("SIGINT", stop);
    await lab.destroy();
  }
}

/** Path and active-path transitions that happened between two status snapshots, as text. */
function falseTransitions(before: LinkStatus, after: LinkStatus): string[] {
  const seen = new Set(before.transitions.map((t) => JSON.stringify(t)));
  return after.transitions.filter((t) => t.kind !== "pause" && !seen.has(JSON.stringify(t))).map((t) => `${t.subject} ${t.from} -> ${t.to} (${t.detail})`);
}
