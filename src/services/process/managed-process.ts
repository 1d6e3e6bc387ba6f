/**
 * One process the agent started: its child (pipes or terminal), the path its output takes to
 * clients (coalescer → fan-out with replay), its time limit, and its end event. Nothing here
 * depends on who is attached: clients come and go, the process runs on.
 */
import type { ProcessConfig, ProcessEvent } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf } from "../../errors.js";
import type { Child, ChildHooks, SpawnRequest } from "./child.js";
import { Coalescer } from "./coalescer.js";
import { exitEvent, type Exit } from "./exit-status.js";
import { OutputFanout } from "./fanout.js";
import {
  COALESCE_MAX_BYTES,
  COALESCE_WINDOW_MS,
  DEADLINE_MARGIN_MS,
  PAUSE_BYTES,
  REPLAY_BYTES,
  RESUME_BYTES,
  SUBSCRIBER_QUEUE_BYTES,
  SUBSCRIBER_STALL_MS,
  UTF8_CARRY_MAX_MS,
} from "./limits.js";
import { spawnPipes } from "./pipe-child.js";
import { spawnPty } from "./pty-child.js";
import { raiseOomScore } from "../../user-spawn.js";
import type { User } from "../../users.js";

export interface ProcessPlan {
  /** The Linux user the process runs as: its owner (owner.ts). */
  readonly owner: User;
  /** What List reports: the request's config, with the working directory resolved. */
  readonly config: ProcessConfig;
  readonly tag: string | undefined;
  readonly spawn: SpawnRequest;
}

export class ManagedProcess {
  readonly pid: number;
  readonly tag: string | undefined;
  readonly owner: User;
  readonly config: ProcessConfig;
  readonly kind: "pipe" | "pty";
  readonly ended: Promise<void>;
  private endEvent: ProcessEvent | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private timeLimitMs: number | undefined;
  private markEnded: () => void = () => {};

  constructor(
    plan: ProcessPlan,
    private readonly child: Child,
    readonly output: OutputFanout,
    private readonly coalescer: Coalescer,
  ) {
    this.pid = child.pid;
    this.kind = child.kind;
    this.tag = plan.tag;
    this.owner = plan.owner;
    this.config = plan.config;
    this.ended = new Promise((resolve) => {
      this.markEnded = resolve;
    });
  }

  get running(): boolean {
    return this.endEvent === undefined;
  }

  /** Set when the process was killed because its time limit passed. */
  get timedOutAfterMs(): number | undefined {
    return this.endEvent !== undefined ? this.timeLimitMs : undefined;
  }

  /** Resolves when the agent holds no pipe or terminal of this process any more. */
  get released(): Promise<void> {
    return this.child.released;
  }

  /**
   * Kills the whole process group when `limitMs` has passed. It fires a little early so that the
   * end event still reaches a client whose own deadline is the same.
   */
  limitTime(limitMs: number, remainingMs: number): void {
    if (!this.running) return;
    const margin = Math.min(DEADLINE_MARGIN_MS, remainingMs / 10);
    this.deadline = setTimeout(() => {
      this.timeLimitMs = limitMs;
      this.signal("SIGKILL");
    }, Math.max(0, remainingMs - margin));
  }

  /** Sends a signal to the process group, so children die with their parent. */
  signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch (err) {
      if (errnoOf(err) !== "ESRCH") throw err;
      // No group by that id: the leader moved itself to another one. Signal it alone, but only
      // while it runs: the pid of an exited process may already belong to someone else.
      if (!this.running) return;
      try {
        process.kill(this.pid, signal);
      } catch {
        // exited meanwhile
      }
    }
  }

  write(data: Uint8Array): Promise<void> {
    return this.child.write(data);
  }

  closeInput(): void {
    this.child.closeInput();
  }

  resize(cols: number, rows: number): void {
    this.child.resize(cols, rows);
  }

  /** Forgets the replay buffer once nobody can Connect any more. */
  release(): void {
    this.output.release();
  }

  /** Closes the agent's ends of the pipes (dispose: nobody will read them again). */
  destroy(): void {
    this.child.destroy();
  }

  /** @internal called by the child hooks once the exit and the output before it are known. */
  finish(exit: Exit): void {
    if (this.endEvent !== undefined) return;
    clearTimeout(this.deadline);
    this.coalescer.finish();
    const error = this.timeLimitMs !== undefined ? `command exceeded its time limit of ${this.timeLimitMs} ms; its process group was killed` : undefined;
    this.endEvent = exitEvent(exit, error);
    this.output.end(this.endEvent);
    this.markEnded();
  }
}

/** Spawns the planned child and wires its output. Throws SpawnError when it cannot start. */
export async function startProcess(plan: ProcessPlan): Promise<ManagedProcess> {
  const output = new OutputFanout({
    replayBytes: REPLAY_BYTES,
    subscriberQueueBytes: SUBSCRIBER_QUEUE_BYTES,
    pauseBytes: PAUSE_BYTES,
    resumeBytes: RESUME_BYTES,
    stallMs: SUBSCRIBER_STALL_MS,
  });
  const coalescer = new Coalescer((frame) => output.publish(frame), {
    windowMs: COALESCE_WINDOW_MS,
    maxBytes: COALESCE_MAX_BYTES,
    carryMaxMs: UTF8_CARRY_MAX_MS,
  });
  let proc: ManagedProcess | undefined;
  let earlyExit: Exit | undefined;
  const hooks: ChildHooks = {
    onOutput: (stream, chunk) => coalescer.push(stream, chunk),
    onExit: (exit) => {
      if (proc === undefined) earlyExit = exit;
      else proc.finish(exit);
    },
  };
  const { pty } = plan.spawn;
  const child = pty !== undefined ? spawnPty(plan.spawn, pty, hooks) : await spawnPipes(plan.spawn, hooks);
  proc = new ManagedProcess(plan, child, output, coalescer);
  output.attach(child);
  if (earlyExit !== undefined) proc.finish(earlyExit);
  // The OOM killer should pick user code before the agent.
  raiseOomScore(child.pid);
  return proc;
}
