/**
 * One soak client: its own connections and directory, drawing operations from the mix until told
 * to stop. An operation is never cut short by the end of the run, only by its own time limit, so
 * every operation counted has a verdict.
 */
import { Filesystem } from "../../src/gen/sandboxagent/api_pb.js";
import { Connections } from "./connections.js";
import { pickOperation, type OpContext, type Operation } from "./ops/index.js";
import { insideScratch } from "./scratch.js";
import { LostBytes, type Tally } from "./tally.js";

/** Long enough for 16 MiB over JSON on a busy two-core machine; a hang still ends the operation. */
export const OPERATION_TIMEOUT_MS = 120_000;

export interface ClientOptions {
  readonly url: string;
  readonly token: string;
  readonly scratch: string;
  readonly name: string;
  readonly tally: Tally;
}

export class SoakClient {
  readonly conn: Connections;
  readonly dir: string;
  private sequence = 0;

  constructor(private readonly options: ClientOptions) {
    this.conn = new Connections(options.url, options.token, () => options.tally.request());
    this.dir = insideScratch(options.scratch, options.name);
  }

  /** Creates the client's directory; false (and counted as an error) when that fails. */
  async open(): Promise<boolean> {
    try {
      await this.conn.client(Filesystem).makeDir({ path: this.dir }, { signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS) });
      return true;
    } catch (err) {
      this.options.tally.failed("setup", err);
      return false;
    }
  }

  async loop(running: () => boolean): Promise<void> {
    while (running()) await this.run(pickOperation());
  }

  /** Runs one operation to its verdict and records it. */
  async run(op: Operation): Promise<void> {
    const started = Date.now();
    const signal = AbortSignal.timeout(OPERATION_TIMEOUT_MS);
    const ctx: OpContext = {
      conn: this.conn,
      dir: this.dir,
      signal,
      remainingMs: () => Math.max(1, OPERATION_TIMEOUT_MS - (Date.now() - started)),
      freshPath: (prefix) => insideScratch(this.dir, `${prefix}-${this.sequence++}`),
    };
    try {
      await op.run(ctx);
      this.options.tally.succeeded(op.name);
    } catch (err) {
      const timedOut = signal.aborted && !(err instanceof LostBytes);
      this.options.tally.failed(op.name, timedOut ? new Error(`no verdict within ${OPERATION_TIMEOUT_MS} ms: ${String(err)}`) : err);
    }
  }

  close(): void {
    this.conn.close();
  }
}
