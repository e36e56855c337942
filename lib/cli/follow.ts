// Running a background job (a poller, a mirror) in the foreground of a CLI command until it ends or
// the operator sends SIGINT/SIGTERM, which stop it cleanly.
export interface Followable {
  start(): void;
  stop(): Promise<void>;
  finished(): Promise<void>;
}

export async function followUntilSignal(job: Followable): Promise<void> {
  const stop = (): void => void job.stop().catch(() => undefined);
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  job.start();
  try {
    await job.finished();
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}
