/**
 * What the execution service needs from a language runtime, whether it is a Jupyter kernel spoken
 * to over ZeroMQ (kernels/jupyter/) or a built-in driver of a persistent process (kernels/drivers/).
 * Events follow Jupyter's IOPub vocabulary so both kinds map to the wire in one place.
 */
import type { User } from "../users.js";

/** A Jupyter MIME bundle: MIME type to data (strings, or JSON for application/json and friends). */
export type MimeBundle = Readonly<Record<string, unknown>>;

export type KernelEvent =
  | { readonly kind: "stdout"; readonly text: string }
  | { readonly kind: "stderr"; readonly text: string }
  /** execute_result: the value of the cell's trailing expression. */
  | { readonly kind: "result"; readonly data: MimeBundle; readonly executionCount: number }
  /** display_data, or update_display_data when `update` is set (same display id as an earlier one). */
  | { readonly kind: "display"; readonly data: MimeBundle; readonly displayId?: string; readonly update?: boolean }
  | { readonly kind: "error"; readonly name: string; readonly value: string; readonly traceback: readonly string[] }
  /** clear_output: `wait` means clear when the next output arrives. */
  | { readonly kind: "clear"; readonly wait: boolean }
  /** The code asked for input (input(), readline()); the kernel is answered with an error by the runner. */
  | { readonly kind: "input_request"; readonly prompt: string; readonly password: boolean };

export interface ExecuteOptions {
  /** Environment variables visible to this execution only; restored afterwards. Never pasted into code. */
  readonly env: Readonly<Record<string, string>>;
  readonly onEvent: (event: KernelEvent) => void;
}

export interface ExecuteOutcome {
  readonly status: "ok" | "error" | "aborted";
  readonly executionCount: number;
}

export type KernelState = "starting" | "idle" | "busy" | "dead";

export interface Kernel {
  /** The kernelspec name or driver name, e.g. "python3", "ir", "builtin-bash". */
  readonly name: string;
  readonly state: KernelState;
  /** Process id of the kernel process, for tests and metrics. */
  readonly pid: number | undefined;
  /** Whether per-execution environment variables can be applied (ExecuteOptions.env). */
  readonly supportsEnv: boolean;
  /** Whether a running kernel can move to another working directory (what the warm pool needs). */
  readonly canChangeDirectory: boolean;
  /** Moves the running kernel to `cwd`; only when canChangeDirectory. */
  changeDirectory(cwd: string): Promise<void>;
  /**
   * Runs code and reports its output through onEvent until the execution finishes. One at a time:
   * callers serialise executions per kernel. Rejects with KernelDiedError if the kernel dies meanwhile.
   */
  execute(code: string, options: ExecuteOptions): Promise<ExecuteOutcome>;
  /** Asks the running execution to stop (SIGINT or interrupt_request); resolves once asked. */
  interrupt(): Promise<void>;
  /** Kills and starts the kernel again, state lost; resolves when it is ready. */
  restart(): Promise<void>;
  /** Stops the kernel and frees everything it holds; idempotent. */
  shutdown(): Promise<void>;
  /**
   * Brings `state` up to date: when the kernel's process has ended but its exit is not reported
   * yet, waits for the report (so state reads "dead" and onDeath listeners have heard). Called
   * before an execution, so that code is never sent to a kernel that died before it.
   */
  catchUp(): Promise<void>;
  /** Called once when the kernel dies on its own (not on shutdown). */
  onDeath(listener: (reason: string) => void): void;
}

export class KernelDiedError extends Error {}

/** Creates a started kernel, with its working directory and the Linux user it runs as. */
export interface KernelFactory {
  /** Name shown in errors and listings, e.g. "python3 (Jupyter)" or "bash (built-in)". */
  readonly description: string;
  create(options: KernelOptions): Promise<Kernel>;
}

export interface KernelOptions {
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** The Linux user the kernel runs as (see user-spawn.ts). */
  readonly user: User;
}
