/**
 * What the platform may set while the agent runs (E2B's `POST /init`, docs/e2b.md):
 * the access token, environment variables every later process and kernel gets, and the default
 * user and working directory. One object, read on every request by the gate and by the services,
 * so a change reaches every one of them at once.
 */
import { Secret } from "./auth.js";
import { environmentProblem } from "./env-vars.js";
import { lookupUser } from "./users.js";

/**
 * How callers authenticate: `token` (the default: a configured or generated token), `init` (no
 * token until the platform's `POST /init` sets one; until then only /health and /init answer),
 * `none` (no token at all, for local development; only on a loopback address).
 */
export type AuthMode = "token" | "init" | "none";
export const AUTH_MODES: readonly AuthMode[] = ["token", "init", "none"];

/** The body of `POST /init`; envd's other fields (volume mounts, hyperloop, CA bundle…) are not for this agent. */
export interface InitRequest {
  readonly accessToken?: unknown;
  readonly envVars?: unknown;
  readonly defaultUser?: unknown;
  readonly defaultWorkdir?: unknown;
}

export class InitError extends Error {}

export class SandboxSettings {
  private token: Secret | undefined;
  defaultUser: string;
  defaultWorkdir: string | undefined;
  /** Set by /init; between a process's basics (PATH, HOME…) and the variables its request names. */
  envVars: Readonly<Record<string, string>> = {};

  constructor(
    readonly mode: AuthMode,
    options: { readonly token: string | undefined; readonly defaultUser: string; readonly defaultWorkdir?: string | undefined },
  ) {
    this.token = options.token === undefined ? undefined : new Secret(options.token);
    this.defaultUser = options.defaultUser;
    this.defaultWorkdir = options.defaultWorkdir;
  }

  /** No credentials are asked for: `--auth none` before any /init set a token. */
  get open(): boolean {
    return this.mode === "none" && this.token === undefined;
  }

  /** The token callers must present, if one is set. */
  get accessToken(): string | undefined {
    return this.token?.value;
  }

  tokenMatches(given: string | undefined): boolean {
    return given !== undefined && this.token?.matches(given) === true;
  }

  /**
   * Whether a caller presenting `given` may call /init: anyone while no token is set (the platform
   * initialises a fresh sandbox before anyone else can reach it), afterwards only the token holder.
   */
  mayInit(given: string | undefined): boolean {
    return this.token === undefined || this.tokenMatches(given);
  }

  /** Applies an /init body; checks everything first, so a refused body changes nothing. */
  apply(body: InitRequest): void {
    const { accessToken, envVars, defaultUser, defaultWorkdir } = body;
    if (accessToken !== undefined && (typeof accessToken !== "string" || accessToken.trim() === "")) {
      throw new InitError("accessToken must be a non-empty string");
    }
    if (envVars !== undefined && !isStringRecord(envVars)) throw new InitError("envVars must be an object of strings");
    const problem = envVars === undefined ? undefined : environmentProblem(envVars);
    if (problem !== undefined) throw new InitError(problem);
    if (defaultUser !== undefined && (typeof defaultUser !== "string" || lookupUser(defaultUser) === undefined)) {
      throw new InitError(`defaultUser ${JSON.stringify(defaultUser)} is not a user of this sandbox`);
    }
    if (defaultWorkdir !== undefined && (typeof defaultWorkdir !== "string" || !defaultWorkdir.startsWith("/"))) {
      throw new InitError("defaultWorkdir must be an absolute path");
    }
    if (accessToken !== undefined) this.token = new Secret(accessToken);
    if (envVars !== undefined) this.envVars = { ...envVars };
    if (defaultUser !== undefined) this.defaultUser = defaultUser;
    if (defaultWorkdir !== undefined) this.defaultWorkdir = defaultWorkdir;
  }
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === "string");
}
