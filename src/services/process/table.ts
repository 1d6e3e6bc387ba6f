/**
 * Every process the agent started and has not forgotten yet, indexed by pid and by tag. Tags are
 * unique among running processes; an exited process stays findable (for Connect) for a while.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ProcessSelector } from "../../gen/sandboxagent/api_pb.js";
import { DISPOSE_WAIT_MS, EXITED_RETENTION_MS } from "./limits.js";
import { startProcess, type ManagedProcess, type ProcessPlan } from "./managed-process.js";

export interface TableOptions {
  /** How long an exited process stays findable by Connect. */
  readonly retentionMs: number;
  /** How long dispose() waits for killed processes to be reaped. */
  readonly disposeWaitMs: number;
}

export class ProcessTable {
  private readonly byPid = new Map<number, ManagedProcess>();
  private readonly runningByTag = new Map<string, ManagedProcess>();
  private readonly exitedByTag = new Map<string, ManagedProcess>();
  /** Tags of Starts between their check and their spawn. */
  private readonly reservedTags = new Set<string>();
  private readonly retention = new Map<ManagedProcess, NodeJS.Timeout>();
  /** Processes whose pipes the agent still holds, forgotten or not: dispose closes them. */
  private readonly holding = new Set<ManagedProcess>();
  private disposed = false;

  constructor(private readonly options: TableOptions = { retentionMs: EXITED_RETENTION_MS, disposeWaitMs: DISPOSE_WAIT_MS }) {}

  /** Spawns a planned process and registers it; the tag is claimed before anything is spawned. */
  async start(plan: ProcessPlan): Promise<ManagedProcess> {
    if (this.disposed) throw new ConnectError("the agent is shutting down", Code.Unavailable);
    const { tag } = plan;
    if (tag !== undefined) {
      if (this.runningByTag.has(tag) || this.reservedTags.has(tag)) {
        throw new ConnectError(`a process with tag ${JSON.stringify(tag)} is already running`, Code.AlreadyExists);
      }
      this.reservedTags.add(tag);
    }
    try {
      const proc = await startProcess(plan);
      this.add(proc);
      return proc;
    } finally {
      if (tag !== undefined) this.reservedTags.delete(tag);
    }
  }

  /** The process a selector names. Only running ones, unless `exited` is set (Connect). */
  find(selector: ProcessSelector | undefined, options: { readonly exited: boolean }): ManagedProcess {
    const chosen = selector?.selector;
    if (chosen === undefined || chosen.case === undefined) {
      throw new ConnectError("no process selected: give a pid or a tag", Code.InvalidArgument);
    }
    let proc: ManagedProcess | undefined;
    if (chosen.case === "pid") proc = this.byPid.get(chosen.value);
    else proc = this.runningByTag.get(chosen.value) ?? (options.exited ? this.exitedByTag.get(chosen.value) : undefined);
    if (proc === undefined || (!proc.running && !options.exited)) {
      const what = chosen.case === "pid" ? `pid ${chosen.value}` : `tag ${JSON.stringify(chosen.value)}`;
      throw new ConnectError(`process with ${what} not found`, Code.NotFound);
    }
    return proc;
  }

  running(): ManagedProcess[] {
    return [...this.byPid.values()].filter((proc) => proc.running);
  }

  /** Kills every process group the agent knows of and waits (bounded) for the processes to end. */
  async dispose(): Promise<void> {
    this.disposed = true;
    const known = [...this.byPid.values()];
    for (const proc of known) {
      try {
        proc.signal("SIGKILL");
      } catch {
        // not ours to kill any more (EPERM): shutting down goes on regardless
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.disposeWaitMs);
    });
    await Promise.race([Promise.all(known.map((proc) => proc.ended)), deadline]);
    clearTimeout(timer);
    for (const proc of this.holding) proc.destroy();
    for (const timeout of this.retention.values()) clearTimeout(timeout);
    this.retention.clear();
    for (const proc of known) proc.release();
  }

  private add(proc: ManagedProcess): void {
    // A pid the kernel reuses replaces the exited process that had it.
    this.byPid.set(proc.pid, proc);
    if (proc.tag !== undefined) this.runningByTag.set(proc.tag, proc);
    this.holding.add(proc);
    void proc.released.then(() => this.holding.delete(proc));
    void proc.ended.then(() => this.retire(proc));
  }

  private retire(proc: ManagedProcess): void {
    if (proc.tag !== undefined && this.runningByTag.get(proc.tag) === proc) {
      this.runningByTag.delete(proc.tag);
      this.exitedByTag.set(proc.tag, proc);
    }
    if (this.disposed) return;
    const timeout = setTimeout(() => this.forget(proc), this.options.retentionMs);
    timeout.unref();
    this.retention.set(proc, timeout);
  }

  private forget(proc: ManagedProcess): void {
    this.retention.delete(proc);
    if (this.byPid.get(proc.pid) === proc) this.byPid.delete(proc.pid);
    if (proc.tag !== undefined && this.exitedByTag.get(proc.tag) === proc) this.exitedByTag.delete(proc.tag);
    proc.release();
  }
}
