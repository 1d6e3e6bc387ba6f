/**
 * The contexts the agent holds: each one a kernel, the language and cwd it was asked for, its
 * owner, and the line its executions wait in. Default contexts (Execute with no context id) are
 * one per user and language, created on first use.
 *
 * Their number is capped: the JS SDK's runCode without a context creates a new one on every call
 * and never destroys it, so without a cap each call would leave a kernel running. At the cap, a
 * new context replaces the least recently used idle one, whose id then says why it is gone.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { stat } from "node:fs/promises";
import type { Logger } from "../../log.js";
import type { Metrics } from "../../metrics.js";
import { type KernelCatalog, LanguageUnavailableError, UnknownLanguageError } from "../../kernels/catalog.js";
import type { Kernel, KernelFactory } from "../../kernels/kernel.js";
import type { KernelPool } from "../../kernels/pool.js";
import { PathError, resolvePath } from "../../paths.js";
import { mayControl } from "../../user-spawn.js";
import type { User } from "../../users.js";
import { SerialQueue } from "./queue.js";

export interface ExecutionContext {
  readonly id: string;
  /** As the caller sent it; echoed back. */
  readonly language: string;
  /** The table's language: `python` for `python3` too. */
  readonly canonicalLanguage: string;
  /** As the caller sent it; echoed back. */
  readonly cwd: string;
  readonly directory: string;
  readonly owner: User;
  readonly createdAt: Date;
  readonly kernel: Kernel;
  readonly queue: SerialQueue;
  /** Counts a restart of this context's kernel (run.ts restarts it after a failed interrupt). */
  readonly countRestart: () => void;
  /**
   * Why the kernel died, when no execution has told a caller yet; taking it counts as telling.
   * Everything else about a context changes only here, in the registry.
   */
  readonly takeDeathNotice: () => string | undefined;
  destroyed: boolean;
  /** Restarts a caller asked for (ContextRegistry.restart), so a running execution knows why its kernel went. */
  restarts: number;
  /** When it was last created, looked up or executed in (for choosing what to shut down at the cap). */
  lastUsed: number;
  /** Set when it is a caller's default context for a language. */
  defaultKey: string | undefined;
}

const DEFAULT_LANGUAGE = "python";

/** Which contexts a new one may replace at the cap; any idle one when not given. */
type Evictable = (context: ExecutionContext) => boolean;

export interface CreateOptions {
  /**
   * Limits what a creation may shut down to make room: a caller let in without the token (the E2B
   * face's /contexts) must not end other callers' contexts.
   */
  readonly evictable?: Evictable;
}

/** How many ids of contexts shut down at the cap are remembered, to say why they are gone. */
const REMEMBERED_EVICTIONS = 1024;

export class ContextRegistry {
  private readonly byId = new Map<string, ExecutionContext>();
  private readonly defaults = new Map<string, Promise<ExecutionContext>>();
  private readonly creating = new Set<Promise<unknown>>();
  /** Every create() under way, from its first step; dispose() waits for them. */
  private readonly underWay = new Set<Promise<unknown>>();
  private readonly evicted = new Map<string, string>();
  private disposed = false;

  constructor(
    private readonly catalog: KernelCatalog,
    private readonly pool: KernelPool | undefined,
    private readonly log?: Logger,
    private readonly kernelEvents?: Metrics["kernelEvents"],
    private readonly maxContexts = Number.POSITIVE_INFINITY,
    /** The sandbox's variables (POST /init), which every kernel started from now on gets. */
    private readonly sandboxEnv: () => Readonly<Record<string, string>> = () => ({}),
  ) {}

  /**
   * Makes room for one more context: at the cap, the least recently used context with nothing
   * running or waiting is shut down. With every context busy, the caller is told to free one.
   */
  private makeRoom(evictable: Evictable | undefined): void {
    if (this.byId.size + this.creating.size < this.maxContexts) return;
    let victim: ExecutionContext | undefined;
    for (const context of this.byId.values()) {
      if (evictable !== undefined && !evictable(context)) continue;
      if (context.queue.length === 0 && (victim === undefined || context.lastUsed < victim.lastUsed)) victim = context;
    }
    if (victim === undefined) {
      const whose = evictable === undefined ? "busy" : "busy or not this caller's to shut down";
      throw new ConnectError(`all ${this.maxContexts} contexts are ${whose}: destroy one, or raise --max-contexts`, Code.ResourceExhausted);
    }
    this.forget(victim);
    this.evicted.set(victim.id, `it was shut down to make room for a newer one (at most ${this.maxContexts} contexts, --max-contexts)`);
    if (this.evicted.size > REMEMBERED_EVICTIONS) this.evicted.delete(this.evicted.keys().next().value!);
    this.log?.info({ context: victim.id, language: victim.language }, "context shut down at the context limit");
    void victim.kernel.shutdown();
  }

  /** Takes a context out of every index; its kernel is the caller's to shut down. */
  private forget(context: ExecutionContext): void {
    context.destroyed = true;
    this.byId.delete(context.id);
    if (context.defaultKey !== undefined) this.defaults.delete(context.defaultKey);
  }

  private async directory(cwd: string, user: User): Promise<string> {
    let directory: string;
    try {
      directory = resolvePath(cwd, user);
    } catch (err) {
      if (err instanceof PathError) throw new ConnectError(`invalid cwd: ${err.message}`, Code.InvalidArgument);
      throw err;
    }
    const info = await stat(directory).catch(() => undefined);
    if (info === undefined) throw new ConnectError(`cwd ${directory} does not exist`, Code.InvalidArgument);
    if (!info.isDirectory()) throw new ConnectError(`cwd ${directory} is not a directory`, Code.InvalidArgument);
    return directory;
  }

  /** Starts (or takes from the pool) a kernel for `language` in `cwd`, as `user`. */
  async create(language: string, cwd: string, user: User, options: CreateOptions = {}): Promise<ExecutionContext> {
    // Tracked from its first step: a create still looking up its language when dispose() ran
    // spawned its kernel afterwards, as the agent exited, and the kernel outlived it (one
    // orphaned tslab per test run, from an agent stopped while its E2B defaults were starting).
    const call = this.createNow(language, cwd, user, options);
    this.underWay.add(call);
    try {
      return await call;
    } finally {
      this.underWay.delete(call);
    }
  }

  private async createNow(language: string, cwd: string, user: User, options: CreateOptions): Promise<ExecutionContext> {
    if (this.disposed) throw new ConnectError("the agent is shutting down", Code.Unavailable);
    const wanted = language === "" ? DEFAULT_LANGUAGE : language;
    let resolved: Awaited<ReturnType<KernelCatalog["resolve"]>>;
    try {
      resolved = await this.catalog.resolve(wanted);
    } catch (err) {
      if (err instanceof UnknownLanguageError) throw new ConnectError(err.message, Code.InvalidArgument);
      if (err instanceof LanguageUnavailableError) throw new ConnectError(err.message, Code.FailedPrecondition);
      throw err;
    }
    const directory = await this.directory(cwd, user);
    if (this.disposed) throw new ConnectError("the agent is shutting down", Code.Unavailable);
    // No await between this check and tracking the job below, so concurrent creates count each other.
    this.makeRoom(options.evictable);
    // Tracked until settled, so dispose() waits for a kernel still starting and stops it too.
    const job = (async () => {
      const started = await this.startKernel(wanted, directory, user, resolved.factory);
      if (this.disposed) {
        await started.shutdown();
        throw new ConnectError("the agent is shutting down", Code.Unavailable);
      }
      return started;
    })();
    this.creating.add(job);
    let kernel: Kernel;
    try {
      kernel = await job;
    } finally {
      this.creating.delete(job);
    }
    let deathNotice: string | undefined;
    const context: ExecutionContext = {
      id: randomUUID(),
      language,
      canonicalLanguage: resolved.entry.language,
      cwd,
      directory,
      owner: user,
      createdAt: new Date(),
      kernel,
      queue: new SerialQueue(),
      countRestart: () => this.kernelEvents?.inc({ event: "restart" }),
      takeDeathNotice: () => {
        const notice = deathNotice;
        deathNotice = undefined;
        return notice;
      },
      destroyed: false,
      restarts: 0,
      lastUsed: Date.now(),
      defaultKey: undefined,
    };
    this.kernelEvents?.inc({ event: "start" });
    kernel.onDeath((reason) => {
      this.kernelEvents?.inc({ event: "death" });
      deathNotice = reason;
      this.log?.warn({ context: context.id, kernel: kernel.name, reason }, "kernel died");
    });
    this.byId.set(context.id, context);
    return context;
  }

  private async startKernel(language: string, directory: string, user: User, factory: KernelFactory): Promise<Kernel> {
    const pooled = await this.pool?.take(language, user);
    if (pooled !== undefined) {
      try {
        if (directory !== user.home) await pooled.changeDirectory(directory);
        return pooled;
      } catch (err) {
        this.log?.warn({ err: (err as Error).message }, "pooled kernel unusable; starting a new one");
        void pooled.shutdown();
      }
    }
    try {
      return await factory.create({ cwd: directory, env: this.sandboxEnv(), user });
    } catch (err) {
      throw new ConnectError(
        `cannot start a kernel for language ${JSON.stringify(language)} (${factory.description}): ${(err as Error).message}`,
        Code.FailedPrecondition,
      );
    }
  }

  get(id: string, user: User): ExecutionContext {
    const context = this.byId.get(id);
    if (context === undefined) {
      const why = this.evicted.get(id);
      throw new ConnectError(`context ${JSON.stringify(id)} not found${why === undefined ? "" : `: ${why}`}`, Code.NotFound);
    }
    if (!mayControl(user, context.owner)) {
      throw new ConnectError(`context ${JSON.stringify(id)} belongs to another user`, Code.PermissionDenied);
    }
    context.lastUsed = Date.now();
    return context;
  }

  /**
   * The context an Execute without a context id runs in: one per user and language, and per
   * `scope`, so another wire face (E2B's, with its own cwd) keeps default contexts of its own.
   */
  defaultFor(language: string, user: User, options: CreateOptions & { readonly scope?: string; readonly cwd?: string } = {}): Promise<ExecutionContext> {
    const wanted = language === "" ? DEFAULT_LANGUAGE : language;
    const canonical = this.catalog.entry(wanted)?.language ?? wanted.toLowerCase();
    const key = `${options.scope ?? ""}\u0000${user.name}\u0000${canonical}`;
    let context = this.defaults.get(key);
    if (context === undefined) {
      context = this.create(wanted, options.cwd ?? "", user, options).then((created) => {
        created.defaultKey = key;
        return created;
      });
      this.defaults.set(key, context);
      // A failed start is not remembered: the next call tries again.
      context.catch(() => this.defaults.delete(key));
    }
    return context.then((found) => {
      found.lastUsed = Date.now();
      return found;
    });
  }

  /** The context with this id, if alive, without checking who asks (listings filter themselves). */
  peek(id: string): ExecutionContext | undefined {
    return this.byId.get(id);
  }

  /**
   * Restarts a context's kernel at once, its state lost; an execution running in it ends with
   * the kernel's death. The context keeps its id, language and cwd.
   */
  async restart(id: string, user: User): Promise<void> {
    const context = this.get(id, user);
    context.countRestart();
    context.restarts++;
    await context.kernel.restart();
  }

  async destroy(id: string, user: User): Promise<void> {
    const context = this.get(id, user);
    this.forget(context);
    await context.kernel.shutdown();
  }

  /** Contexts alive now (tests and metrics). */
  get size(): number {
    return this.byId.size;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.allSettled([...this.underWay]);
    const contexts = [...this.byId.values()];
    this.byId.clear();
    this.defaults.clear();
    await Promise.allSettled(
      contexts.map((context) => {
        context.destroyed = true;
        return context.kernel.shutdown();
      }),
    );
  }
}
