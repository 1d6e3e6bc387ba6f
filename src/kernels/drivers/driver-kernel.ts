/**
 * The Kernel contract for a persistent process the agent drives itself (bash, jshell): one
 * execution at a time, a process that ends itself in a cell (`exit 3`, `System.exit(3)`) reported
 * as that cell's error and replaced at the next execution, a process that dies otherwise reported
 * as KernelDiedError, restart and shutdown that settle a running execution as "aborted".
 */
import { KernelDiedError, type ExecuteOptions, type ExecuteOutcome, type Kernel, type KernelEvent, type KernelFactory, type KernelState } from "../kernel.js";
import type { ProcessExit } from "./driver-process.js";
import { describeExit } from "./driver-process.js";
import { reaped } from "../../proc-stat.js";

/** A KernelFactory that can also say whether its program (bash, a JDK) is installed at all. */
export interface BuiltinDriverFactory extends KernelFactory {
  available(): Promise<boolean>;
}

export type CellOutcome =
  | { readonly kind: "done"; readonly status: "ok" | "error" }
  /** The process ended before the cell did. */
  | { readonly kind: "exited"; readonly exit: ProcessExit };

export interface CellRequest {
  readonly code: string;
  readonly env: Readonly<Record<string, string>>;
  readonly executionCount: number;
  readonly onEvent: (event: KernelEvent) => void;
  /** Whether interrupt() was called during this cell, to report the stop as an interruption. */
  readonly interrupted: () => boolean;
}

/** One started process of a driver, ready for cells. */
export interface DriverSession {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  readonly hasExited: boolean;
  run(request: CellRequest): Promise<CellOutcome>;
  /** Asks the running cell to stop; resolves once asked. */
  interrupt(): Promise<void>;
  /** Kills the process group and removes the session's files. */
  kill(): Promise<void>;
}

export abstract class DriverKernel implements Kernel {
  abstract readonly name: string;

  private session: DriverSession | undefined;
  private starting: Promise<DriverSession> | undefined;
  private currentState: KernelState = "starting";
  private closed = false;
  private closing: Promise<void> | undefined;
  private executionCount = 0;
  private running: { readonly session: DriverSession; interrupted: boolean } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly killedByUs = new WeakSet<DriverSession>();
  private readonly deathListeners: Array<(reason: string) => void> = [];

  /** Starts a process and resolves once it accepts cells. */
  protected abstract startSession(): Promise<DriverSession>;
  /** Why these variables cannot be given to the process, or undefined when they can. */
  protected abstract environmentProblem(env: Readonly<Record<string, string>>): string | undefined;
  /** The error a cell gets when it ends the process itself with this exit status. */
  protected abstract exitError(code: number): { readonly name: string; readonly value: string };

  get state(): KernelState {
    return this.currentState;
  }

  get pid(): number | undefined {
    return this.session?.hasExited === false ? this.session.pid : undefined;
  }

  /** Variables are passed to each cell as data and restored afterwards (see each driver). */
  readonly supportsEnv = true;
  /** A driver's process starts in its context's directory; drivers wait in no pool. */
  readonly canChangeDirectory = false;

  async changeDirectory(): Promise<void> {
    throw new Error(`cannot change the directory of a running ${this.name} driver`);
  }

  /** Starts the first process; used by factories so that create() resolves with a ready kernel. */
  async start(): Promise<void> {
    await this.ensureSession();
  }

  execute(code: string, options: ExecuteOptions): Promise<ExecuteOutcome> {
    const run = this.queue.then(() => this.executeNow(code, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async executeNow(code: string, options: ExecuteOptions): Promise<ExecuteOutcome> {
    if (this.closed) throw new KernelDiedError(`${this.name} has been shut down`);
    const problem = this.environmentProblem(options.env);
    if (problem !== undefined) {
      const executionCount = ++this.executionCount;
      options.onEvent({ kind: "error", name: "EnvironmentError", value: problem, traceback: [] });
      return { status: "error", executionCount };
    }
    let session: DriverSession;
    try {
      session = await this.ensureSession();
    } catch (err) {
      if (err instanceof KernelDiedError) throw err;
      throw new KernelDiedError(`${this.name} could not start: ${(err as Error).message}`);
    }
    const executionCount = ++this.executionCount;
    const running = { session, interrupted: false };
    this.running = running;
    this.currentState = "busy";
    try {
      const outcome = await session.run({
        code,
        env: options.env,
        executionCount,
        onEvent: options.onEvent,
        interrupted: () => running.interrupted,
      });
      if (outcome.kind === "done") return { status: outcome.status, executionCount };
      if (this.killedByUs.has(session)) return { status: "aborted", executionCount };
      if (this.session === session) this.session = undefined;
      // Whatever the process left (its group, its files) goes with it.
      void session.kill();
      const { exit } = outcome;
      if (exit.code !== null && exit.spawnError === undefined) {
        // The cell ended the process on purpose: its error, and a fresh process next time.
        options.onEvent({ kind: "error", ...this.exitError(exit.code), traceback: [] });
        return { status: "error", executionCount };
      }
      const reason = `${this.name} ${describeExit(exit)}`;
      this.currentState = "dead";
      this.notifyDeath(reason);
      throw new KernelDiedError(`${reason} during the execution`);
    } finally {
      this.running = undefined;
      // After a cell that ended the process the kernel is still usable: the next cell starts a new one.
      if (this.currentState === "busy") this.currentState = "idle";
    }
  }

  async interrupt(): Promise<void> {
    const running = this.running;
    if (running === undefined) return;
    running.interrupted = true;
    await running.session.interrupt();
  }

  async restart(): Promise<void> {
    if (this.closed) throw new KernelDiedError(`${this.name} has been shut down`);
    const old = this.session ?? (await this.starting?.catch(() => undefined));
    if (old !== undefined) {
      this.killedByUs.add(old);
      if (this.session === old) this.session = undefined;
      await old.kill();
    }
    await this.ensureSession();
  }

  shutdown(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      const current = this.session ?? (await this.starting?.catch(() => undefined));
      this.session = undefined;
      if (current !== undefined) {
        this.killedByUs.add(current);
        await current.kill();
      }
      this.currentState = "dead";
    })();
    return this.closing;
  }

  onDeath(listener: (reason: string) => void): void {
    this.deathListeners.push(listener);
  }

  async catchUp(): Promise<void> {
    const session = this.session;
    if (session?.pid === undefined || !reaped(session.pid)) return;
    // onSessionExit was chained on `exited` first, so it has run when this await returns.
    await session.exited;
  }

  private notifyDeath(reason: string): void {
    for (const listener of this.deathListeners) {
      try {
        listener(reason);
      } catch {
        // A listener's failure is its own; the others still hear of the death.
      }
    }
  }

  private ensureSession(): Promise<DriverSession> {
    const current = this.session;
    if (current !== undefined && !current.hasExited) return Promise.resolve(current);
    this.starting ??= (async () => {
      this.currentState = "starting";
      try {
        const session = await this.startSession();
        if (this.closed) {
          this.killedByUs.add(session);
          await session.kill();
          throw new KernelDiedError(`${this.name} has been shut down`);
        }
        this.session = session;
        // Execution counts restart with the process, as they do in a restarted Jupyter kernel.
        this.executionCount = 0;
        this.currentState = "idle";
        void session.exited.then((exit) => this.onSessionExit(session, exit));
        return session;
      } catch (err) {
        if (!this.closed) this.currentState = "dead";
        throw err;
      } finally {
        this.starting = undefined;
      }
    })();
    return this.starting;
  }

  /** A death between executions; one during an execution is reported by that execution. */
  private onSessionExit(session: DriverSession, exit: ProcessExit): void {
    if (this.killedByUs.has(session) || this.running?.session === session || this.session !== session) return;
    this.session = undefined;
    void session.kill();
    this.currentState = "dead";
    this.notifyDeath(`${this.name} ${describeExit(exit)}`);
  }
}
