/**
 * A child in a pseudo-terminal (node-pty), forked on the fork thread (pty-adopt.ts). forkpty()
 * makes it a session leader with the terminal as its controlling tty, so it leads its own process
 * group like a pipe child. Output is read as bytes (encoding: null), never decoded.
 */
import { constants } from "node:os";
import { closeQuietly, dup } from "./child-fds.js";
import { TerminalClosedError, type ChildHooks, type Exit, type RawChild, type SpawnRequest } from "./child.js";
import { ForkError, forkThread, type ForkedPty, type RawExit } from "./fork-thread.js";
import { adoptTerminal, terminalEnvironment } from "./pty-adopt.js";
import { readRestBeforeDestroy, terminalClosed } from "./pty-drain.js";

export async function spawnPty(request: SpawnRequest, size: { readonly cols: number; readonly rows: number }, hooks: ChildHooks): Promise<RawChild> {
  const { launch } = request;
  let reported: RawExit | undefined;
  let deliverExit: ((exit: RawExit) => void) | undefined;
  const onExit = (exit: RawExit): void => {
    if (deliverExit !== undefined) deliverExit(exit);
    else reported = exit;
  };
  let forked: ForkedPty;
  try {
    // node-pty adds TERM and PWD to this environment: they reach only what runs before the
    // program, which gets both from its own (environment.ts).
    forked = await forkThread.startPty(
      { file: launch.file, args: launch.args, cwd: request.cwd, parsedEnv: terminalEnvironment(request.env, request.cwd), cols: size.cols, rows: size.rows },
      onExit,
    );
  } catch (err) {
    throw new ForkError(`cannot start a terminal for ${request.cmd}: ${(err as Error).message}`, "EAGAIN");
  }
  const { term, exit } = adoptTerminal(forked, launch.file, launch.args, {
    cols: size.cols,
    rows: size.rows,
    cwd: request.cwd,
    env: { ...request.env },
    encoding: null,
  });
  // The child closes its side of the terminal a moment before it exits; node-pty then reads EIO and
  // closes the master, which hangs the terminal up and SIGHUPs a child still exiting: `cat` ended
  // by ^D would report "signal: hangup" (one run in fifty under load). A duplicate keeps the master
  // open until the child is reaped; what is left in its session is hung up then, as before.
  const holdOpen = dup(forked.fd);
  // Signals come as numbers from node-pty; by name only for a child reaped after its thread died.
  deliverExit = ({ code, signal }) => {
    closeQuietly(holdOpen);
    exit(code ?? 0, typeof signal === "string" ? constants.signals[signal] : (signal ?? 0));
  };
  if (reported !== undefined) deliverExit(reported);
  let markReleased: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    markReleased = resolve;
  });
  // With encoding null node-pty hands out Buffers, though its typings say string.
  term.onData((data: string | Buffer) => hooks.onOutput("pty", typeof data === "string" ? Buffer.from(data, "utf8") : data));
  readRestBeforeDestroy(term, (chunk) => hooks.onOutput("pty", chunk));
  // node-pty reports the exit once the terminal has been read to the end, or shortly after when
  // it could not be (a background process keeps it open, reading was paused, a wake-up was lost);
  // readRestBeforeDestroy reads what is left then, so the output is complete either way.
  term.onExit(({ exitCode, signal }) => {
    const exit: Exit = signal ? { kind: "signaled", signal } : { kind: "exited", code: exitCode };
    hooks.onReaped?.();
    hooks.onExit(exit);
    markReleased();
  });
  const pty = term;
  return {
    pid: pty.pid,
    kind: "pty",
    released,
    write: async (data) => {
      pty.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    },
    pause: () => pty.pause(),
    resume: () => pty.resume(),
    closeInput: () => {
      throw new Error("a terminal has no stdin to close");
    },
    resize: (cols, rows) => {
      // Once the child closes its side, node-pty closes the terminal before it reports the exit;
      // its descriptor number may already belong to another file, which must not be resized.
      if (terminalClosed(pty)) throw new TerminalClosedError(`the terminal of process ${pty.pid} has closed: nothing in it holds the other side any more`);
      pty.resize(cols, rows);
    },
    destroy: () => {
      // node-pty closes the terminal's master side when the child exits; nothing else to release.
    },
  };
}
