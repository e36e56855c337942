// A CPU hog for the benches that measure under pressure (`bench link --hog`, `bench pressure`):
// stress-ng --cpu N (one busy worker per core) at normal priority, in a session of its own unless the
// caller wants it in its own session (the kernel then gives it an autogroup of its own, as another job
// on the machine would have). Bounded: stress-ng's own --timeout stops it if this process dies first.
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";

/** SIGTERM lets stress-ng stop its workers; SIGKILL after this. */
const HOG_KILL_AFTER_MS = 5000;

export interface Hog {
  /** Stops it and waits for it to exit; true if it was still running (it ran beside the whole run). */
  stop(): Promise<boolean>;
}

/** `timeoutS`: stress-ng's own --timeout, the hog's life at the most (the run it is for, plus a margin). */
export function startHog(timeoutS: number, options: { ownSession?: boolean } = {}): Hog {
  const ownSession = options.ownSession ?? true;
  const child = spawn("stress-ng", ["--cpu", String(availableParallelism()), "--timeout", `${timeoutS}s`, "--quiet"], { detached: ownSession, stdio: "ignore" });
  child.on("error", (error) => console.log(`stress-ng: ${error.message}`));
  return {
    async stop() {
      // Never started, or exited early (by a signal too: then its group may be gone, and a kill would throw ESRCH).
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      const signal = (name: NodeJS.Signals) => (ownSession ? process.kill(-child.pid!, name) : child.kill(name));
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), HOG_KILL_AFTER_MS);
      await exited;
      clearTimeout(timer);
      return true;
    },
  };
}
