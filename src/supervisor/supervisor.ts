/**
 * The one way the agent starts a child: commands of the Process service (pipes or a terminal), the
 * built-in bash/jshell drivers and Jupyter kernels all come through here, so the rules exist once.
 * Every child runs through launchAs (user-spawn.ts: the user, groups, sealed environment, no
 * inherited descriptors), leads its own session and process group, has an OOM score above the
 * agent's, is signalled as a group, reaped, read for POST_EXIT_DRAIN_MS after its exit, and killed
 * (group and all) when the agent stops or exits.
 *
 * Pipe children are started on a thread of their own (fork-thread.ts), not on the event loop, and
 * with posix_spawn where it can do what is asked (fork-worker.mjs). Alternatives measured (a
 * 400 MB agent, 50 concurrent /bin/true, event-loop delay; then a sequential Start→end):
 * - spawn() on the loop, as before: p99 107-213 ms, every request waits for each fork;
 * - spawn() on a worker thread, stdio made by the main thread: p99 3 ms, max 4-6 ms; the loop
 *   only waits when it faults a page while the fork copies the page tables; but each fork still
 *   took the thread 2 ms at 266 MB of RSS, in series, on the path of every Start;
 * - a helper process passing descriptors over a Unix socket: forks are cheap (a small process),
 *   but its death orphans every child to init, where the agent can no longer reap them, and
 *   node-pty's terminal cannot cross Node's IPC (only sockets can), so it would need a native
 *   helper; not built.
 * - posix_spawn (CLONE_VM | CLONE_VFORK) from a native addon on that thread: no page-table copy,
 *   0.15 ms per start at 266 MB; the children are then reaped on SIGCHLD by the main thread,
 *   as libuv does not know them. What is built.
 * Terminals are forked on the same thread by node-pty's native fork; node-pty's terminal object
 * is then built around the result on the loop (pty-adopt.ts). Both kinds get their OOM score on
 * the thread, right after the fork, so that what they start at once inherits it.
 */
import { errnoOf } from "../errors.js";
import type { Child, ChildHooks, Exit, RawChild, SpawnRequest } from "./child.js";
import { spawnPipes } from "./pipes.js";
import { spawnPty } from "./pty.js";

/** Process groups of children still running, for the last-resort kill at exit. */
const live = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // No child outlives the agent, however it exits (the signal handlers in main.ts end in exit()).
  process.once("exit", () => {
    for (const pid of live) killGroup(pid, "SIGKILL");
    live.clear();
  });
}

class SupervisedChild implements Child {
  readonly exited: Promise<Exit>;
  private ended = false;
  /** @internal set by supervise() when the child is reaped. */
  reaped = false;
  private deadline: NodeJS.Timeout | undefined;
  private timeLimitHit = false;

  constructor(
    private readonly raw: RawChild,
    exited: Promise<Exit>,
  ) {
    this.exited = exited.then((exit) => {
      this.ended = true;
      clearTimeout(this.deadline);
      return exit;
    });
  }

  get pid(): number {
    return this.raw.pid;
  }
  get kind(): "pipe" | "pty" {
    return this.raw.kind;
  }
  get released(): Promise<void> {
    return this.raw.released;
  }
  get running(): boolean {
    return !this.ended;
  }
  get timedOut(): boolean {
    return this.timeLimitHit;
  }

  write(data: Uint8Array): Promise<void> {
    return this.raw.write(data);
  }
  closeInput(): void {
    this.raw.closeInput();
  }
  resize(cols: number, rows: number): void {
    this.raw.resize(cols, rows);
  }
  pause(): void {
    this.raw.pause();
  }
  resume(): void {
    this.raw.resume();
  }
  destroy(): void {
    this.raw.destroy();
  }

  signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch (err) {
      if (errnoOf(err) !== "ESRCH") throw err;
      // No group by that id: the leader moved itself to another one. Signal it alone, but only
      // while it is not reaped: then its pid may already belong to someone else.
      if (this.reaped) return;
      try {
        process.kill(this.pid, signal);
      } catch {
        // exited meanwhile
      }
    }
  }

  limitTime(ms: number): void {
    if (this.ended) return;
    clearTimeout(this.deadline);
    this.deadline = setTimeout(
      () => {
        this.timeLimitHit = true;
        this.signal("SIGKILL");
      },
      Math.max(0, ms),
    );
  }
}

/**
 * Starts a child. Rejects with ForkError (fork-thread.ts) when it cannot start. hooks.onExit is
 * called before `exited` resolves, after the output written before the exit.
 */
export async function supervise(request: SpawnRequest, hooks: ChildHooks): Promise<Child> {
  installExitHook();
  let resolveExit: (exit: Exit) => void = () => {};
  const exited = new Promise<Exit>((resolve) => {
    resolveExit = resolve;
  });
  let pid: number | undefined;
  let child: SupervisedChild | undefined;
  let reaped = false;
  // Reaped: the pid may be reused from now on, so it leaves the kill list at once; a group that
  // dies with its leader goes now, so that grandchildren holding the pipes let the drain end.
  const onReaped = (): void => {
    reaped = true;
    if (child !== undefined) child.reaped = true;
    if (pid === undefined) return;
    live.delete(pid);
    if (request.killGroupOnExit === true) killGroup(pid, "SIGKILL");
  };
  const onExit = (exit: Exit): void => {
    hooks.onExit(exit);
    resolveExit(exit);
  };
  const { io } = request;
  let raw: RawChild;
  if (io.kind === "pty") {
    raw = await spawnPty(request, io, { onOutput: hooks.onOutput, onReaped, onExit });
  } else {
    raw = await spawnPipes(request, io.stdin, { onOutput: hooks.onOutput, onReaped, onExit });
  }
  pid = raw.pid;
  child = new SupervisedChild(raw, exited);
  if (!reaped) live.add(pid);
  else {
    child.reaped = true;
    if (request.killGroupOnExit === true) killGroup(pid, "SIGKILL");
  }
  return child;
}
