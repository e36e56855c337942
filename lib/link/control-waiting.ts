// sendControl calls waiting for room in the control window, in call order (the order of sendControl
// calls is the order of control sequences): acks admit them, no timer polls. Pure bookkeeping; the
// shell passes the core's submit. Bound: MAX_CONTROL_WAITING (beyond: ERR_LUNLINK_QUEUE_FULL).
export const MAX_CONTROL_WAITING = 4096;

interface Waiting {
  payload: Uint8Array;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class ControlWaiting {
  private readonly calls: Waiting[] = [];

  get length(): number {
    return this.calls.length;
  }

  /** Queues a copy of `payload`; false (not queued) when MAX_CONTROL_WAITING already wait. */
  add(payload: Uint8Array, resolve: () => void, reject: (error: Error) => void): boolean {
    if (this.calls.length >= MAX_CONTROL_WAITING) return false;
    this.calls.push({ payload: payload.slice(), resolve, reject });
    return true;
  }

  /** Hands waiting payloads to `submit` in order while it takes them (the window has room), resolving each taken call. */
  admit(submit: (payload: Uint8Array) => boolean): void {
    while (this.calls.length > 0 && submit(this.calls[0]!.payload)) this.calls.shift()!.resolve();
  }

  /** Rejects every waiting call (the link closed). */
  rejectAll(error: Error): void {
    for (const call of this.calls.splice(0)) call.reject(error);
  }
}
