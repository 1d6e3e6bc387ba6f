/**
 * Kernels started before anyone asks, so a new context skips the second or so a kernel takes to
 * boot. The pool serves one language for one user (Python for the agent's default user) and
 * starts in the user's home; a context taking a kernel moves it to its own directory.
 */
import type { Logger } from "../log.js";
import type { User } from "../users.js";
import { LanguageUnavailableError, type KernelCatalog } from "./catalog.js";
import type { Kernel } from "./kernel.js";

/** After this many failed starts in a row the pool stops trying (a broken install, say). */
const MAX_FAILURES = 3;

/**
 * A kernel taken from the pool is replaced this much later, not at once: booting a Python kernel
 * is a second of CPU, which on a small machine would be taken from the first executions of the
 * context that just took one. A create that finds the pool empty meanwhile starts it at once.
 */
const REFILL_DELAY_MS = 1_000;

/** What installs the default kernel, for the one line an agent without it logs. */
export const INSTALL_KERNEL_COMMAND = "bash scripts/install.sh python";

export interface PoolOptions {
  readonly size: number;
  readonly language: string;
  readonly user: User;
  readonly catalog: KernelCatalog;
  readonly log?: Logger;
}

export class KernelPool {
  private readonly ready: Kernel[] = [];
  private readonly starting = new Set<Promise<void>>();
  /** Callers promised a kernel that is still starting. */
  private readonly waiters: Array<(kernel: Kernel | undefined) => void> = [];
  private failures = 0;
  private stopped = false;
  private refill: NodeJS.Timeout | undefined;

  constructor(private readonly options: PoolOptions) {}

  /** Begins filling in the background; never delays the caller. */
  start(): void {
    setImmediate(() => this.fill());
  }

  private fillLater(): void {
    if (this.refill !== undefined) return;
    this.refill = setTimeout(() => {
      this.refill = undefined;
      this.fill();
    }, REFILL_DELAY_MS);
    this.refill.unref();
  }

  private fill(): void {
    clearTimeout(this.refill);
    this.refill = undefined;
    while (!this.stopped && this.failures < MAX_FAILURES && this.ready.length + this.starting.size < this.options.size) {
      const job = this.startOne().finally(() => {
        this.starting.delete(job);
        this.fill();
      });
      this.starting.add(job);
    }
  }

  private async startOne(): Promise<void> {
    try {
      const { factory } = await this.options.catalog.resolve(this.options.language);
      const kernel = await factory.create({ cwd: this.options.user.home, env: {}, user: this.options.user });
      if (this.stopped) {
        await kernel.shutdown();
        return;
      }
      if (!kernel.canChangeDirectory) {
        // Only a kernel that can move to a context's directory can wait in the pool.
        await kernel.shutdown();
        this.failures = MAX_FAILURES;
        return;
      }
      kernel.onDeath(() => {
        const index = this.ready.indexOf(kernel);
        if (index >= 0) {
          this.ready.splice(index, 1);
          this.fill();
        }
      });
      this.failures = 0;
      const waiter = this.waiters.shift();
      if (waiter !== undefined) waiter(kernel);
      else this.ready.push(kernel);
    } catch (err) {
      this.waiters.shift()?.(undefined);
      if (err instanceof LanguageUnavailableError) {
        // Not installed is no failure to retry: say once what to run, and keep the pool empty.
        this.failures = MAX_FAILURES;
        this.options.log?.warn(
          `no ${this.options.language} kernel is installed, so code execution in ${this.options.language} will fail: install it with \`${INSTALL_KERNEL_COMMAND}\` (as root)`,
        );
        return;
      }
      this.failures++;
      this.options.log?.warn({ err: (err as Error).message, language: this.options.language }, "could not start a pooled kernel");
    }
  }

  /**
   * A pooled kernel when this pool serves `language` for `user`, the pool refilling behind it. When
   * none is ready but one is starting, waits for that one: it is closer to ready than a new start.
   */
  async take(language: string, user: User): Promise<Kernel | undefined> {
    if (this.stopped || this.options.size === 0 || user.name !== this.options.user.name) return undefined;
    const wanted = this.options.catalog.entry(language)?.language;
    if (wanted === undefined || wanted !== this.options.catalog.entry(this.options.language)?.language) return undefined;
    const kernel = this.ready.shift();
    if (kernel === undefined) {
      if (this.refill !== undefined) this.fill();
      if (this.starting.size <= this.waiters.length) return undefined;
      return new Promise((resolve) => this.waiters.push(resolve));
    }
    this.fillLater();
    if (kernel.state === "idle") return kernel;
    void kernel.shutdown();
    return undefined;
  }

  /** Kernels ready now (tests and metrics). */
  get size(): number {
    return this.ready.length;
  }

  async dispose(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.refill);
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
    await Promise.allSettled([...this.starting]);
    const kernels = this.ready.splice(0);
    await Promise.allSettled(kernels.map((kernel) => kernel.shutdown()));
  }
}
