// `bench link --stages`: where one record's time goes on the storage path, from the lab's own stage
// trace (lib/ring/stage-trace.ts, LUNLINK_STAGE_TRACE set for every process the lab starts). A record
// of direction N -> peer is joined by seq across node N's writer (enqueued, sealed, issued, written), the mirror of
// node N's send volume (read, written) and the peer's poller (seen); per stage the p50/p95 of the
// time from the stage before, over the records sealed within one TCP run. Data goes 1 -> 2, TCP's
// acks come back 2 -> 1 (the same stages, the other ring).
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import type { Lab } from "../lib/node/lab.ts";
import { percentile } from "./stats.ts";

/** The stages in a record's order after "enqueued", and what the step into each one is. */
const STEPS = [
  ["sealed", "writer: first frame enqueued -> sealed"],
  ["issued", "writer: sealed -> write issued"],
  ["written", "writer: issued -> write done"],
  ["mirror-read", "mirror: write done -> read it"],
  ["mirror-written", "mirror: read -> written to the peer's volume"],
  ["seen", "peer's poller: mirror written -> polled it"],
] as const;

type Stage = "enqueued" | "stamp" | (typeof STEPS)[number][0];

/** Stage -> seq -> wall us, per direction ("1 -> 2", "2 -> 1"). */
type Trace = Map<string, Map<Stage, Map<bigint, number>>>;

async function loadTrace(dir: string, lab: Lab): Promise<Trace> {
  const trace: Trace = new Map();
  const put = (direction: string, stage: Stage, seq: bigint, us: number) => {
    const byStage = trace.get(direction) ?? new Map<Stage, Map<bigint, number>>();
    trace.set(direction, byStage);
    const bySeq = byStage.get(stage) ?? new Map<bigint, number>();
    byStage.set(stage, bySeq);
    if (!bySeq.has(seq)) bySeq.set(seq, us); // the first time a stage saw the record
  };
  for (const file of (await readdir(dir)).filter((f) => f.endsWith(".trace"))) {
    const lines = (await readFile(join(dir, file), "utf8")).split("\n");
    const argv = lines[0] ?? "";
    const node = lab.nodes.find((n) => argv.includes(` up --config ${n.configPath}`));
    const mirrored = lab.nodes.find((n) => argv.includes(` mirror copy --follow ${n.send} `));
    if (node === undefined && mirrored === undefined) continue;
    for (const line of lines.slice(1)) {
      const [stage, seq, us] = line.split(" ");
      if (seq === undefined || us === undefined) continue;
      if (node !== undefined) {
        if (stage === "enqueued" || stage === "sealed" || stage === "issued" || stage === "written") put(`${node.id} -> ${3 - node.id}`, stage, BigInt(seq), Number(us));
        else if (stage === "seen") put(`${3 - node.id} -> ${node.id}`, stage, BigInt(seq), Number(us));
      } else if (mirrored !== undefined && (stage === "sealed" || stage === "mirror-read" || stage === "mirror-written")) {
        // The mirror's "sealed" is the record header's ms timestamp: kept apart, the writer's own marks come first.
        put(`${mirrored.id} -> ${3 - mirrored.id}`, stage === "sealed" ? "stamp" : stage, BigInt(seq), Number(us));
      }
    }
  }
  return trace;
}

/** Per direction and step: records, p50 and p95 ms, over records sealed in [fromUs, toUs); and the whole way. */
export async function stageRows(dir: string, lab: Lab, label: string, fromUs: number, toUs: number): Promise<string[][]> {
  const trace = await loadTrace(dir, lab);
  const rows: string[][] = [];
  for (const direction of ["1 -> 2", "2 -> 1"]) {
    const byStage = trace.get(direction);
    // Runs are cut by the record's seal time (the writer's; the header stamp from a writer without the marks).
    const sealed = byStage?.get("sealed") ?? byStage?.get("stamp");
    if (byStage === undefined || sealed === undefined) continue;
    const first = byStage.has("enqueued") ? "enqueued" : byStage.has("sealed") ? "sealed" : "stamp";
    const seqs = [...sealed].filter(([, us]) => us >= fromUs && us < toUs).map(([seq]) => seq);
    const cell = (values: number[]) => {
      const sorted = values.sort((a, b) => a - b);
      return [String(sorted.length), percentile(sorted, 50).toFixed(2), percentile(sorted, 95).toFixed(2)];
    };
    let previous: Stage = first;
    for (const [stage, what] of STEPS) {
      if (!byStage.has(stage)) continue;
      const from = byStage.get(previous);
      const to = byStage.get(stage);
      const deltas = seqs.flatMap((seq) => {
        const a = from?.get(seq);
        const b = to?.get(seq);
        return a === undefined || b === undefined ? [] : [(b - a) / 1000];
      });
      rows.push([label, direction, what, ...cell(deltas)]);
      previous = stage;
    }
    const start = byStage.get(first)!;
    const total = seqs.flatMap((seq) => {
      const a = start.get(seq);
      const b = byStage.get("seen")?.get(seq);
      return a === undefined || b === undefined ? [] : [(b - a) / 1000];
    });
    rows.push([label, direction, `total: ${first === "enqueued" ? "first frame enqueued" : "sealed"} -> polled by the peer`, ...cell(total)]);
  }
  return rows;
}

export const STAGE_COLUMNS = ["run", "direction", "step", "records", "p50 ms", "p95 ms"];
