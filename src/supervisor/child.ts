/**
 * A child as its clients (the Process service, the built-in drivers, the Jupyter launcher) see it,
 * whether it talks through pipes or a terminal. Both kinds lead their own session and process
 * group, so signals reach everything they started.
 */
import type { Launch } from "../user-spawn.js";

/** Where a chunk of output came from. */
export type Stream = "stdout" | "stderr" | "pty";

/** How a child ended. */
export type Exit = { readonly kind: "exited"; readonly code: number } | { readonly kind: "signaled"; readonly signal: NodeJS.Signals | number };

export interface ChildHooks {
  readonly onOutput: (stream: Stream, chunk: Buffer) => void;
  /** Called once the child has been reaped (its pid may be reused from now on), before onExit. */
  readonly onReaped?: () => void;
  /** Called once, after the output the child wrote before exiting has been read. */
  readonly onExit: (exit: Exit) => void;
}

export interface SpawnRequest {
  /** The program as the caller named it, for messages. */
  readonly cmd: string;
  /** What to exec (launchAs). */
  readonly launch: Launch;
  /** The environment exec gets: launch.env when the launch carries a sealed one. */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  /** A terminal of this size, or stdin/stdout/stderr pipes (stdin from /dev/null when `stdin` is false). */
  readonly io: { readonly kind: "pty"; readonly cols: number; readonly rows: number } | { readonly kind: "pipes"; readonly stdin: boolean };
  /**
   * Whatever the child left running in its group goes when it exits (drivers, kernels: a cell's
   * background jobs die with the shell). Commands of the Process service keep theirs.
   */
  readonly killGroupOnExit?: boolean;
}

/** What a pipe or terminal implementation provides; the supervisor adds the rules (Child). */
export interface RawChild {
  readonly pid: number;
  readonly kind: "pipe" | "pty";
  /** Bytes to stdin (pipes) or to the terminal (PTY), in call order. */
  write(data: Uint8Array): Promise<void>;
  /** EOF on stdin; pipes only. */
  closeInput(): void;
  /** PTY only; throws TerminalClosedError once the terminal has closed. */
  resize(cols: number, rows: number): void;
  /** Stops reading the child's output (it blocks once the kernel buffer is full) / reads again. */
  pause(): void;
  resume(): void;
  /** Resolves when the agent holds nothing of the child any more. */
  readonly released: Promise<void>;
  /** Closes the agent's ends of the child's pipes or terminal, even if something still holds them. */
  destroy(): void;
}

export interface Child extends RawChild {
  /** Resolves once, with the exit, after the output written before it has been read. */
  readonly exited: Promise<Exit>;
  readonly running: boolean;
  /**
   * Sends a signal to the process group (which outlives the leader while anything of it runs), or
   * to the leader alone when it left its group, but never once it is reaped.
   */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILLs the group when `ms` has passed; timedOut tells afterwards. */
  limitTime(ms: number): void;
  readonly timedOut: boolean;
}

/** Writing to an input the child (or a client) already closed. */
export class InputClosedError extends Error {}

/** Resizing a terminal whose other side has closed: the process is on its way out. */
export class TerminalClosedError extends Error {}
