/**
 * What the soak counts: requests sent (every RPC call or stream and every HTTP request), failed
 * operations, and bytes that came back wrong or not at all. The first failures are printed as they
 * happen, so a long run that goes wrong early says why without waiting for the end.
 */

/** An operation whose payload came back short or different: its bytes count as lost. */
export class LostBytes extends Error {
  constructor(
    readonly bytes: number,
    message: string,
  ) {
    super(message);
  }
}

const ERRORS_PRINTED = 10;

export class Tally {
  requests = 0;
  errors = 0;
  lostBytes = 0;
  readonly byOperation = new Map<string, { ok: number; failed: number }>();

  request(): void {
    this.requests++;
  }

  succeeded(operation: string): void {
    this.counts(operation).ok++;
  }

  failed(operation: string, err: unknown): void {
    this.counts(operation).failed++;
    this.errors++;
    if (err instanceof LostBytes) this.lostBytes += err.bytes;
    if (this.errors <= ERRORS_PRINTED) {
      const message = err instanceof Error ? err.message : String(err);
      console.error(`soak: error ${this.errors} in ${operation}: ${message.slice(0, 500)}`);
      if (this.errors === ERRORS_PRINTED) console.error("soak: (later errors are counted, not printed)");
    }
  }

  /** "files 120/0, pty 40/1, …": successes/failures per operation, for the progress lines. */
  summary(): string {
    return [...this.byOperation].map(([name, c]) => `${name} ${c.ok}/${c.failed}`).join(", ");
  }

  private counts(operation: string): { ok: number; failed: number } {
    let counts = this.byOperation.get(operation);
    if (counts === undefined) {
      counts = { ok: 0, failed: 0 };
      this.byOperation.set(operation, counts);
    }
    return counts;
  }
}
