/**
 * Executions on one context run one at a time, in arrival order. A waiter whose caller gives up
 * (client gone, time limit passed) leaves the line without running, and passes its turn on at once.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private count = 0;

  /** Executions running or waiting. */
  get length(): number {
    return this.count;
  }

  /** Resolves with a release function once it is this caller's turn; rejects if `signal` aborts first. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    const previous = this.tail;
    let open!: () => void;
    const mine = new Promise<void>((resolve) => (open = resolve));
    this.tail = previous.then(() => mine);
    this.count++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.count--;
      open();
    };
    if (signal.aborted) {
      void previous.then(release);
      throw signal.reason;
    }
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        previous.then(resolve, resolve);
      });
      return release;
    } catch (err) {
      void previous.then(release);
      throw err;
    } finally {
      if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    }
  }
}
