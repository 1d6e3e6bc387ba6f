/**
 * Every process the agent started and has not forgotten yet, indexed by pid and by tag. A caller
 * finds only processes it may control (owner.ts); any other is not found, in the same words as one
 * that does not exist, so that another user's pids and tags are never confirmed.
 *
 * Tags are names each user gives its own processes: unique among one owner's running processes,
 * and another user's tag neither blocks nor shows (a Start with it just takes it for the caller;
 * a global name would tell the caller that someone else holds it, and let one user squat the names
 * another is going to use). Root's tag names root's own process first; else, as root sees
 * everybody's, the one process of another user holding it, and when several users hold it root is
 * asked to select by pid. An exited process stays findable (for Connect) for a while.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ProcessSelector } from "../../gen/sandboxagent/api_pb.js";
import { mayControl } from "../../user-spawn.js";
import type { User } from "../../users.js";
import { DISPOSE_WAIT_MS, EXITED_RETENTION_MS } from "./limits.js";
import { startProcess, type ManagedProcess, type ProcessPlan } from "./managed-process.js";

/** Processes by tag, each tag kept apart per owner (uid). */
class TagIndex {
  private readonly byTag = new Map<string, Map<number, ManagedProcess>>();

  get(tag: string, owner: number): ManagedProcess | undefined {
    return this.byTag.get(tag)?.get(owner);
  }

  /** Everybody's processes holding `tag`, one per owner. */
  holders(tag: string): ManagedProcess[] {
    return [...(this.byTag.get(tag)?.values() ?? [])];
  }

  set(tag: string, proc: ManagedProcess): void {
    let owners = this.byTag.get(tag);
    if (owners === undefined) {
      owners = new Map();
      this.byTag.set(tag, owners);
    }
    owners.set(proc.owner.uid, proc);
  }

  /** Removes `proc`, unless a newer process of its owner has taken the tag since. */
  delete(tag: string, proc: ManagedProcess): boolean {
    const owners = this.byTag.get(tag);
    if (owners?.get(proc.owner.uid) !== proc) return false;
    owners.delete(proc.owner.uid);
    if (owners.size === 0) this.byTag.delete(tag);
    return true;
  }
}

export interface TableOptions {
  /** How long an exited process stays findable by Connect. */
  readonly retentionMs: number;
  /** How long dispose() waits for killed processes to be reaped. */
  readonly disposeWaitMs: number;
}

export class ProcessTable {
  private readonly byPid = new Map<number, ManagedProcess>();
  private readonly runningByTag = new TagIndex();
  private readonly exitedByTag = new TagIndex();
  /** Owner and tag of Starts between their check and their spawn. */
  private readonly reservedTags = new Set<string>();
  private readonly retention = new Map<ManagedProcess, NodeJS.Timeout>();
  /** Processes whose pipes the agent still holds, forgotten or not: dispose closes them. */
  private readonly holding = new Set<ManagedProcess>();
  private disposed = false;

  constructor(private readonly options: TableOptions = { retentionMs: EXITED_RETENTION_MS, disposeWaitMs: DISPOSE_WAIT_MS }) {}

  /** Spawns a planned process and registers it; the tag is claimed before anything is spawned. */
  async start(plan: ProcessPlan): Promise<ManagedProcess> {
    if (this.disposed) throw new ConnectError("the agent is shutting down", Code.Unavailable);
    const { tag, owner } = plan;
    const reservation = `${owner.uid}\0${tag}`;
    if (tag !== undefined) {
      if (this.runningByTag.get(tag, owner.uid) !== undefined || this.reservedTags.has(reservation)) {
        throw new ConnectError(`a process with tag ${JSON.stringify(tag)} is already running`, Code.AlreadyExists);
      }
      this.reservedTags.add(reservation);
    }
    try {
      const proc = await startProcess(plan);
      this.add(proc);
      return proc;
    } finally {
      if (tag !== undefined) this.reservedTags.delete(reservation);
    }
  }

  /**
   * The process a selector names, if `caller` may control it. Only running ones, unless `exited`
   * is set (Connect).
   */
  find(selector: ProcessSelector | undefined, options: { readonly exited: boolean; readonly caller: User }): ManagedProcess {
    const chosen = selector?.selector;
    if (chosen === undefined || chosen.case === undefined) {
      throw new ConnectError("no process selected: give a pid or a tag", Code.InvalidArgument);
    }
    const proc = chosen.case === "pid" ? this.byPid.get(chosen.value) : this.findTag(chosen.value, options);
    if (proc === undefined || !mayControl(options.caller, proc.owner) || (!proc.running && !options.exited)) {
      const what = chosen.case === "pid" ? `pid ${chosen.value}` : `tag ${JSON.stringify(chosen.value)}`;
      throw new ConnectError(`process with ${what} not found`, Code.NotFound);
    }
    return proc;
  }

  /** Every running process (for the agent's own accounting). */
  running(): ManagedProcess[] {
    return [...this.byPid.values()].filter((proc) => proc.running);
  }

  /** The running processes `caller` may see: its own, everybody's for root. */
  runningOf(caller: User): ManagedProcess[] {
    return this.running().filter((proc) => mayControl(caller, proc.owner));
  }

  private findTag(tag: string, options: { readonly exited: boolean; readonly caller: User }): ManagedProcess | undefined {
    const { caller, exited } = options;
    const own = this.runningByTag.get(tag, caller.uid) ?? (exited ? this.exitedByTag.get(tag, caller.uid) : undefined);
    if (own !== undefined || caller.uid !== 0) return own;
    for (const index of exited ? [this.runningByTag, this.exitedByTag] : [this.runningByTag]) {
      const holders = index.holders(tag);
      if (holders.length > 1) {
        const pids = holders.map((proc) => proc.pid).join(", ");
        throw new ConnectError(
          `processes of ${holders.length} users have tag ${JSON.stringify(tag)} (pids ${pids}): select it by pid`,
          Code.FailedPrecondition,
        );
      }
      if (holders.length === 1) return holders[0];
    }
    return undefined;
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
    if (proc.tag !== undefined && this.runningByTag.delete(proc.tag, proc)) this.exitedByTag.set(proc.tag, proc);
    if (this.disposed) return;
    const timeout = setTimeout(() => this.forget(proc), this.options.retentionMs);
    timeout.unref();
    this.retention.set(proc, timeout);
  }

  private forget(proc: ManagedProcess): void {
    this.retention.delete(proc);
    if (this.byPid.get(proc.pid) === proc) this.byPid.delete(proc.pid);
    if (proc.tag !== undefined) this.exitedByTag.delete(proc.tag, proc);
    proc.release();
  }
}
