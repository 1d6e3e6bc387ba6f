/**
 * E2B's code contexts over the agent's one ContextRegistry: E2B's language names and defaults,
 * its own default contexts (python and javascript, in /home/user), and the listing.
 *
 * The listing holds the contexts made through this face only, in the order they were made: the
 * Connect face's contexts never appear in it, so a caller without the token (the SDK sends none
 * on /contexts*) cannot find them. Such a caller acts as the default user and sees, restarts or
 * removes only that user's contexts of this face (`tokenless` below), whoever the default user is.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { statSync } from "node:fs";
import type { Logger } from "../../log.js";
import type { ContextRegistry, CreateOptions, ExecutionContext } from "../../services/execution/contexts.js";
import { mayControl } from "../../user-spawn.js";
import type { User } from "../../users.js";

/** What E2B calls a context, as every /contexts route returns it. */
export interface E2bContext {
  readonly id: string;
  readonly language: string;
  readonly cwd: string;
}

/** The languages whose default contexts E2B's server starts with, and its SDK tests list. */
export const DEFAULT_LANGUAGES = ["python", "javascript"] as const;

/** E2B's default working directory, where its template's user lives. */
const E2B_HOME = "/home/user";

/** Keeps the defaults of this face apart from the Connect face's (ContextRegistry.defaultFor). */
const SCOPE = "e2b";

const ALIASES: Readonly<Record<string, string>> = { js: "javascript", ts: "typescript" };

/** E2B's normalisation: trimmed, lower case, `js` and `ts` spelt out; python when absent. */
export function normalizeLanguage(language: string | undefined): string {
  const trimmed = (language ?? "").trim().toLowerCase();
  if (trimmed === "") return "python";
  return ALIASES[trimmed] ?? trimmed;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const describe = (context: ExecutionContext): E2bContext => ({ id: context.id, language: context.language, cwd: context.cwd || context.directory });

export class InterpreterContexts {
  /** Ids of this face's contexts, in creation order; those since destroyed or evicted drop out at the next addition or listing. */
  private readonly made = new Set<string>();

  constructor(
    private readonly registry: ContextRegistry,
    /** The sandbox's working directory, once POST /init has set one. */
    private readonly defaultWorkdir: () => string | undefined,
    private readonly log?: Logger,
  ) {}

  /** Remembers a new context, forgetting those gone meanwhile, so the set stays as small as the registry. */
  private remember(context: ExecutionContext): void {
    for (const id of this.made) if (this.registry.peek(id) === undefined) this.made.delete(id);
    this.made.add(context.id);
  }

  /** The sandbox's working directory (POST /init), else `/home/user` where it exists (E2B's templates), else the caller's home. */
  private defaultCwd(user: User): string {
    return this.defaultWorkdir() ?? (isDirectory(E2B_HOME) ? E2B_HOME : user.home);
  }

  /** At the context cap, a call without the token may replace only the contexts it could remove itself. */
  private createOptions(user: User, tokenless: boolean): CreateOptions {
    return tokenless ? { evictable: (context) => this.visible(context, user, true) } : {};
  }

  async defaultFor(language: string, user: User, tokenless = false): Promise<ExecutionContext> {
    return this.startDefault(language, user, this.createOptions(user, tokenless));
  }

  private async startDefault(language: string, user: User, createOptions: CreateOptions): Promise<ExecutionContext> {
    const options = { ...createOptions, scope: SCOPE, cwd: this.defaultCwd(user) };
    const context = await this.registry.defaultFor(normalizeLanguage(language), user, options);
    this.remember(context);
    return context;
  }

  /**
   * Starts the default contexts that are not running yet; one that cannot start is logged and left
   * out. A listing shuts nothing down to make room for them: at the context cap they wait.
   */
  async ensureDefaults(user: User): Promise<void> {
    await Promise.all(
      DEFAULT_LANGUAGES.map((language) =>
        this.startDefault(language, user, { evictable: () => false }).catch((err: Error) =>
          this.log?.warn({ language, err: err.message }, "cannot start an E2B default context"),
        ),
      ),
    );
  }

  async create(language: string | undefined, cwd: string | undefined, user: User, tokenless: boolean): Promise<E2bContext> {
    const context = await this.registry.create(normalizeLanguage(language), cwd || this.defaultCwd(user), user, this.createOptions(user, tokenless));
    this.remember(context);
    return describe(context);
  }

  private visible(context: ExecutionContext, user: User, tokenless: boolean): boolean {
    if (!this.made.has(context.id)) return false;
    return tokenless ? context.owner.uid === user.uid : mayControl(user, context.owner);
  }

  /**
   * Default contexts first, then the others in the order they were made: E2B's order, where the
   * defaults exist from the start (here they may be started by the first listing).
   */
  list(user: User, tokenless: boolean): E2bContext[] {
    const visible: ExecutionContext[] = [];
    for (const id of this.made) {
      const context = this.registry.peek(id);
      if (context === undefined) this.made.delete(id);
      else if (this.visible(context, user, tokenless)) visible.push(context);
    }
    const isDefault = (context: ExecutionContext): boolean => context.defaultKey !== undefined;
    return [...visible.filter(isDefault), ...visible.filter((context) => !isDefault(context))].map(describe);
  }

  /** The context `id` for a management call; NotFound, saying nothing more, when this caller may not see it. */
  private managed(id: string, user: User, tokenless: boolean): ExecutionContext {
    const context = this.registry.peek(id);
    if (tokenless && (context === undefined || !this.visible(context, user, tokenless))) {
      throw new ConnectError(`Context ${id} not found`, Code.NotFound);
    }
    return this.registry.get(id, user);
  }

  async restart(id: string, user: User, tokenless: boolean): Promise<void> {
    await this.registry.restart(this.managed(id, user, tokenless).id, user);
  }

  async remove(id: string, user: User, tokenless: boolean): Promise<void> {
    await this.registry.destroy(this.managed(id, user, tokenless).id, user);
    this.made.delete(id);
  }

  /** The context an execution names (callers of /execute hold the token: any context they may control). */
  get(id: string, user: User): ExecutionContext {
    return this.registry.get(id, user);
  }
}
