// Stage trace: where a record's time goes on the storage path, for `bench link --stages`. Off unless
// LUNLINK_STAGE_TRACE names a directory (read once, at import): then each process appends
// "<stage> <seq> <wall us>" lines to <dir>/<pid>.trace (its first line: "argv ..."), buffered and
// written every FLUSH_LINES lines, every FLUSH_MS and at exit. Stages: the writer's record: its first
// (oldest) frame appended ("enqueued": Link.send and sendBatch append in their own turn; a frame that
// overflowed to a class queue counts from its refill), sealed, write started ("issued") and done
// ("written"); the mirror's read of it ("mirror-read"; it also marks the header's ms timestamp as
// "sealed", which the bench uses only without the writer's), its destination write
// ("mirror-written"), and a follower's poll that passed it ("seen": the poller, in a node). Bound: at most MAX_TRACE_LINES lines per process; later ones are dropped (counted at exit).
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

/** Lines kept in memory before they are appended to the file. */
const FLUSH_LINES = 512;
/** A partly filled buffer is appended this often (an idle process still leaves its trace). */
const FLUSH_MS = 500;
/** Lines per process: a trace is for a bench run of seconds, not for a node's life. */
export const MAX_TRACE_LINES = 2_000_000;

export type TraceStage = "enqueued" | "sealed" | "issued" | "written" | "mirror-read" | "mirror-written" | "seen";

class StageTrace {
  private readonly path: string;
  private lines: string[] = [];
  private count = 0;
  private dropped = 0;

  constructor(dir: string) {
    this.path = join(dir, `${process.pid}.trace`);
    appendFileSync(this.path, `argv ${process.argv.slice(1).join(" ")}\n`);
    setInterval(() => this.flush(), FLUSH_MS).unref();
    process.on("exit", () => {
      if (this.dropped > 0) this.lines.push(`dropped ${this.dropped}`);
      this.flush();
    });
  }

  /** Seqs [fromSeq, toSeq) reached `stage` now (or at atWallUs). */
  mark(stage: TraceStage, fromSeq: bigint, toSeq = fromSeq + 1n, atWallUs = nowWallUs()): void {
    for (let seq = fromSeq; seq < toSeq; seq++) {
      if (this.count >= MAX_TRACE_LINES) {
        this.dropped++;
        continue;
      }
      this.count++;
      this.lines.push(`${stage} ${seq} ${Math.round(atWallUs)}`);
    }
    if (this.lines.length >= FLUSH_LINES) this.flush();
  }

  private flush(): void {
    if (this.lines.length === 0) return;
    appendFileSync(this.path, this.lines.join("\n") + "\n");
    this.lines = [];
  }
}

/** Wall-clock microseconds (comparable across the lab's processes on one host). */
export function nowWallUs(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

const dir = process.env["LUNLINK_STAGE_TRACE"];
/** The process's trace, or undefined (the default: no cost but this check). */
export const stageTrace: StageTrace | undefined = dir === undefined || dir === "" ? undefined : new StageTrace(dir);
