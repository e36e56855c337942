// A long-running async loop owned by an object (a poller, a mirror): started once, stopped by
// clearing `running` (the loop checks it each turn), and whatever error ended it is kept and handed
// to the owner's callback and to finished()/stop().
export class Background {
  running = false;
  private loop: Promise<void> | undefined;
  private failure: Error | undefined;

  /** Starts `body` unless already running; `onFailure` hears the error that ended it. */
  start(body: () => Promise<void>, onFailure: (error: Error) => void): void {
    if (this.running) return;
    this.running = true;
    this.failure = undefined;
    this.loop = body().catch((error: unknown) => {
      this.failure = error instanceof Error ? error : new Error(String(error));
      this.running = false;
      onFailure(this.failure);
    });
  }

  get error(): Error | undefined {
    return this.failure;
  }

  /** Resolves when the loop has ended; rejects with the error that ended it. */
  async finished(): Promise<void> {
    await this.loop;
    if (this.failure !== undefined) throw this.failure;
  }

  /** Asks the loop to end and waits for it (no error: a stop is not a failure to report twice). */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
