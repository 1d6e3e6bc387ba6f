/**
 * node-pty's terminal object around a child forked on the fork thread. node-pty forks inside its
 * native spawn, on the thread that calls it; its UnixTerminal (reading, writing, resizing, the
 * end-of-output handling pty-drain.ts relies on) is plain JavaScript around that call. So the fork
 * happens on the fork thread (fork-worker.mjs calls the same native fork), and here UnixTerminal
 * is built around its result: for the duration of the constructor, the native fork it calls
 * returns what the thread forked, and the exit callback it registers is handed back, for the
 * thread's report of the exit. node-pty is pinned in package.json;
 * test/unit/process/pty-exit-output.test.ts and the PTY tests fail if its internals change.
 */
import { createRequire } from "node:module";
import type { IPty, IPtyForkOptions } from "node-pty";
import type { ForkedPty } from "./fork-thread.js";

type NativeExit = (code: number, signal: number) => void;

interface NativePty {
  fork: (...args: unknown[]) => ForkedPty;
}

const require = createRequire(import.meta.url);
const native = (require("node-pty/lib/utils") as { loadNativeModule: (name: string) => { module: NativePty } }).loadNativeModule("pty").module;
const { UnixTerminal } = require("node-pty/lib/unixTerminal") as { UnixTerminal: new (file: string, args: string[], options: IPtyForkOptions) => IPty };

/** node-pty's DEFAULT_NAME, the TERM it sets when none is given. */
const DEFAULT_TERM = "xterm";

/** The environment node-pty would hand the child for `env`: it adds PWD and TERM. */
export function terminalEnvironment(env: Readonly<Record<string, string>>, cwd: string): string[] {
  const full: Record<string, string> = { ...env, PWD: cwd, TERM: env.TERM ?? DEFAULT_TERM };
  return Object.entries(full).map(([name, value]) => `${name}=${value}`);
}

/**
 * A UnixTerminal around `forked`. Returns it with the exit callback node-pty registered, to be
 * called (code, signal number) when the thread reports the exit.
 */
export function adoptTerminal(forked: ForkedPty, file: string, args: readonly string[], options: IPtyForkOptions): { term: IPty; exit: NativeExit } {
  const fork = native.fork;
  let exit: NativeExit | undefined;
  native.fork = (...forkArgs: unknown[]): ForkedPty => {
    exit = forkArgs[10] as NativeExit;
    return forked;
  };
  let term: IPty;
  try {
    term = new UnixTerminal(file, [...args], options);
  } finally {
    native.fork = fork;
  }
  if (exit === undefined) throw new Error("node-pty's UnixTerminal did not call its native fork: its internals changed");
  return { term, exit };
}
