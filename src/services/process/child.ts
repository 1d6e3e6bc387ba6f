/**
 * A running child as the rest of the service sees it, whether it talks through pipes or a terminal.
 * Both kinds lead their own process group (and session), so signals can reach everything they
 * started.
 */
import type { Stream } from "./coalescer.js";
import type { Exit } from "./exit-status.js";
import type { SealedLaunch } from "../../user-spawn.js";

export interface ChildHooks {
  readonly onOutput: (stream: Stream, chunk: Uint8Array) => void;
  /** Called once, after the output the child wrote before exiting has been read. */
  readonly onExit: (exit: Exit) => void;
}

export interface SpawnRequest {
  /** The program as the request named it, for messages. */
  readonly cmd: string;
  /** What to exec, the program's environment in it. */
  readonly launch: SealedLaunch;
  readonly cwd: string;
  readonly pty: { readonly cols: number; readonly rows: number } | undefined;
  /** Pipes only: false gives the child /dev/null as stdin, so a program that reads it ends at once. */
  readonly stdin: boolean;
}

export interface Child {
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

/** Writing to an input the child (or a client) already closed. */
export class InputClosedError extends Error {}

/** Resizing a terminal whose other side has closed: the process is on its way out. */
export class TerminalClosedError extends Error {}
