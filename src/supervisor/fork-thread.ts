/**
 * fork/exec off the agent's event loop. fork() copies the page tables of the whole agent, and the
 * thread that calls it waits for that: 5 ms at 50 MB of RSS, 100-200 ms for a burst of 50 at
 * 400 MB, which on the event loop stalls every request. On a thread of its own (fork-worker.mjs)
 * the loop runs on; measured for 50 concurrent /bin/true at 400 MB RSS, event-loop delay p99
 * 3 ms instead of 107-213 ms (notes in supervisor.ts).
 *
 * The thread only starts children (and reaps those libuv forked). The child's stdio are
 * socketpairs the main thread makes and keeps one end of (child-fds.ts), so output flows straight
 * into the main loop, no copy between threads. Children the thread started with posix_spawn are
 * reaped here, on SIGCHLD: nobody else waits for them, and their exit needs no message. A thread
 * that dies (it never should: everything in it is caught) fails its pending starts and is
 * replaced; ForkThread.onGone kills the children it started and reaps those it was reaping.
 */
import { constants } from "node:os";
import { Worker } from "node:worker_threads";
import { CHILD_OOM_SCORE_ADJ } from "../user-spawn.js";
import { reap } from "./child-fds.js";

const WORKER_URL = new URL("./fork-worker.mjs", import.meta.url);

/** How often a child whose fork thread ended is looked at until it can be reaped. */
const ORPHAN_REAP_POLL_MS = 50;

function signalName(signal: number): NodeJS.Signals {
  const entry = Object.entries(constants.signals).find(([, n]) => n === signal);
  return (entry?.[0] as NodeJS.Signals | undefined) ?? "SIGKILL";
}

/** reap(pid) as a RawExit: undefined while it runs. */
function reapNow(pid: number): RawExit | undefined {
  let ended: { code: number; signal: number } | undefined;
  try {
    ended = reap(pid);
  } catch {
    ended = { code: -1, signal: -1 };
  }
  if (ended === undefined) return undefined;
  // -1 and -1: reaped by someone else (node-pty's own waiting thread): it was killed with its group.
  if (ended.code >= 0) return { code: ended.code, signal: null };
  return { code: null, signal: ended.signal >= 0 ? signalName(ended.signal) : "SIGKILL" };
}

/** Waits (polling, off nobody's way) for a child nobody else will reap, and reports its exit. */
function reapOrphan(pid: number, onExit: (exit: RawExit) => void): void {
  const exit = reapNow(pid);
  if (exit === undefined) setTimeout(() => reapOrphan(pid, onExit), ORPHAN_REAP_POLL_MS).unref();
  else onExit(exit);
}

export interface ForkRequest {
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** Descriptors that become the child's 0, 1 and 2, or "ignore" for /dev/null. */
  readonly stdio: readonly (number | "ignore")[];
  readonly uid?: number;
  readonly gid?: number;
}

/** A terminal to fork (node-pty's native fork, on the thread). */
export interface PtyForkRequest {
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** The environment as node-pty hands it to the child: `NAME=value` strings. */
  readonly parsedEnv: readonly string[];
  readonly cols: number;
  readonly rows: number;
}

/** What node-pty's native fork returns: the terminal's master side is `fd`, now the main thread's. */
export interface ForkedPty {
  readonly pid: number;
  readonly fd: number;
  readonly pty: string;
}

export interface RawExit {
  readonly code: number | null;
  /** A name for pipe children; terminals report the number. */
  readonly signal: NodeJS.Signals | number | null;
}

/** A failed fork/exec, with the errno code spawn() gave (ENOENT, EACCES, ...). */
export class ForkError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

type Reply =
  | { readonly type: "started"; readonly id: number; readonly pid: number; readonly fd?: number; readonly pty?: string; readonly reaper?: "main" }
  | { readonly type: "failed"; readonly id: number; readonly code: string | undefined; readonly message: string }
  | { readonly type: "exit"; readonly pid: number; readonly code: number | null; readonly signal: NodeJS.Signals | number | null };

interface Pending {
  readonly resolve: (started: ForkedPty) => void;
  readonly reject: (err: Error) => void;
  readonly onExit: (exit: RawExit) => void;
}

class ForkThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Children the thread reaps, by pid: their exit comes as a message. */
  private readonly exits = new Map<number, (exit: RawExit) => void>();
  /** Children started with posix_spawn, reaped here (on the main thread) on SIGCHLD. */
  private readonly reapedHere = new Map<number, { readonly onExit: (exit: RawExit) => void; readonly worker: Worker }>();
  private sigchldListening = false;

  /** Forks and execs; resolves with the pid once exec'd (or rejects), calls onExit once reaped. */
  async start(request: ForkRequest, onExit: (exit: RawExit) => void): Promise<number> {
    return (await this.request(request, onExit)).pid;
  }

  /** Forks a child in a new terminal; resolves once exec'd with the master side's descriptor. */
  startPty(request: PtyForkRequest, onExit: (exit: RawExit) => void): Promise<ForkedPty> {
    return this.request(request, onExit);
  }

  private request(request: ForkRequest | PtyForkRequest, onExit: (exit: RawExit) => void): Promise<ForkedPty> {
    const worker = this.worker ?? this.spawnWorker();
    const id = this.nextId++;
    return new Promise<ForkedPty>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onExit });
      // A start under way keeps the agent alive until the child exists: a process that ended
      // meanwhile would leave the thread to fork a child nobody kills (an orphaned kernel).
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ ...request, id, oomScoreAdj: CHILD_OOM_SCORE_ADJ });
    });
  }

  private spawnWorker(): Worker {
    // trackUnmanagedFds off: the descriptors the thread hands to children belong to the main thread.
    const worker = new Worker(WORKER_URL, { stdout: false, stderr: false, trackUnmanagedFds: false });
    worker.on("message", (reply: Reply) => this.receive(reply));
    worker.on("error", () => this.onGone(worker));
    worker.on("exit", () => this.onGone(worker));
    // Never keeps the agent alive: at exit the supervisor kills what is left (supervisor.ts).
    // After the listeners: a 'message' listener added later refs the thread's port again, and
    // then no process that ever started a child could end on its own (the bench hung at exit).
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private receive(reply: Reply): void {
    if (reply.type === "exit") {
      const onExit = this.exits.get(reply.pid);
      this.exits.delete(reply.pid);
      onExit?.({ code: reply.code, signal: reply.signal });
      return;
    }
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.type === "started") {
      if (reply.reaper === "main") this.reapHere(reply.pid, pending.onExit);
      else this.exits.set(reply.pid, pending.onExit);
      pending.resolve({ pid: reply.pid, fd: reply.fd ?? -1, pty: reply.pty ?? "" });
    } else {
      pending.reject(new ForkError(reply.message, reply.code));
    }
  }

  private reapHere(pid: number, onExit: (exit: RawExit) => void): void {
    if (!this.sigchldListening) {
      this.sigchldListening = true;
      // Node's signal listeners never keep the process alive. One SIGCHLD may stand for several exits.
      process.on("SIGCHLD", () => this.reapExited());
    }
    this.reapedHere.set(pid, { onExit, worker: this.worker! });
    // It may have ended before it was listed here, its SIGCHLD then finding nothing to reap.
    this.reapExited(pid);
  }

  /** Reaps whichever children started with posix_spawn have ended (only `pid`, when given). */
  private reapExited(pid?: number): void {
    const pids = pid === undefined ? [...this.reapedHere.keys()] : [pid];
    for (const candidate of pids) {
      const child = this.reapedHere.get(candidate);
      const exit = child === undefined ? undefined : reapNow(candidate);
      if (child === undefined || exit === undefined) continue;
      this.reapedHere.delete(candidate);
      child.onExit(exit);
    }
  }

  /**
   * Makes the thread throw an uncaught exception, as a bug in it would: what fault tests do to it.
   * Resolves once the thread has ended (it ends its terminals first, fork-worker.mjs). (Worker.terminate() is no stand-in: node-pty's cleanup
   * waits for the terminals' children to end, so a thread with a running terminal never exits.)
   */
  async crashForFaultTest(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    const gone = new Promise((resolve) => worker.once("exit", resolve));
    worker.postMessage({ crash: true });
    await gone;
  }

  /**
   * The thread is gone: its pending starts fail, and the next start makes a new one. The children
   * it was reaping are still the agent's (children belong to the process, not the thread), but
   * nobody would wait for them any more: their groups are killed (a half-supervised child is
   * worse than none) and they are reaped here, their exits reported as usual.
   */
  private onGone(worker: Worker): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    for (const pending of this.pending.values()) pending.reject(new ForkError("the fork thread ended", undefined));
    this.pending.clear();
    // Those are still reaped here, but one rule for every child the thread started: a thread that
    // failed is a bug, and its children go with it.
    for (const [pid, child] of this.reapedHere) {
      if (child.worker !== worker) continue;
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    const orphans = [...this.exits];
    this.exits.clear();
    for (const [pid, onExit] of orphans) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
      reapOrphan(pid, onExit);
    }
  }
}

export const forkThread = new ForkThread();
