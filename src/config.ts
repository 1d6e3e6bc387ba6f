/**
 * The agent's configuration: one table of options, read from flags, then environment variables,
 * then an optional JSON config file, then defaults (first one found wins). `--help` prints the table.
 */
import { readFileSync } from "node:fs";
import { AUTH_MODES, type AuthMode } from "./sandbox-settings.js";

type Kind = "string" | "int" | "path";

interface OptionSpec {
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly help: string;
  readonly min?: number;
  readonly max?: number;
}

/** Every option, keyed by its name in the config file. */
export const OPTIONS = {
  host: { flag: "--host", env: "SANDBOX_AGENT_HOST", kind: "string", help: "address to listen on (default 0.0.0.0)" },
  port: { flag: "--port", env: "SANDBOX_AGENT_PORT", kind: "int", min: 0, max: 65535, help: "TCP port for every protocol (default 49983; 0 picks a free one)" },
  interpreterPort: {
    flag: "--interpreter-port",
    env: "SANDBOX_AGENT_INTERPRETER_PORT",
    kind: "int",
    min: 0,
    max: 65535,
    help: "second TCP port serving only the E2B code interpreter (/execute, /contexts) and /health, where its SDK looks (default 49999; 0 turns it off; a port already taken is logged and skipped)",
  },
  accessToken: {
    flag: "--access-token",
    env: "SANDBOX_AGENT_ACCESS_TOKEN",
    kind: "string",
    help: "the X-Access-Token callers must send (default: generated and printed once); as a flag it is visible to every local user in /proc/<pid>/cmdline: prefer the variable or --access-token-file",
  },
  accessTokenFile: { flag: "--access-token-file", env: "SANDBOX_AGENT_ACCESS_TOKEN_FILE", kind: "path", help: "read the access token from this file" },
  auth: {
    flag: "--auth",
    env: "SANDBOX_AGENT_AUTH",
    kind: "string",
    help: "token (default: the access token is required), init (no token until the platform's POST /init sets one; nothing but /health and /init answers before), or none (no token: local development only, refused on a non-loopback --host)",
  },
  defaultUser: { flag: "--default-user", env: "SANDBOX_AGENT_DEFAULT_USER", kind: "string", help: "Linux user for calls that name none (default root)" },
  defaultWorkdir: {
    flag: "--default-workdir",
    env: "SANDBOX_AGENT_DEFAULT_WORKDIR",
    kind: "string",
    help: "working directory of processes that name none (default: the user's home)",
  },
  tlsCert: { flag: "--tls-cert", env: "SANDBOX_AGENT_TLS_CERT", kind: "path", help: "PEM certificate; with --tls-key, TLS is also served on the same port" },
  tlsKey: { flag: "--tls-key", env: "SANDBOX_AGENT_TLS_KEY", kind: "path", help: "PEM private key for --tls-cert" },
  uploadMaxBytes: {
    flag: "--upload-max-bytes",
    env: "SANDBOX_AGENT_UPLOAD_MAX_BYTES",
    kind: "int",
    min: 1,
    help: "largest file one upload part may carry (default 64 GiB)",
  },
  watcherIdleMs: {
    flag: "--watcher-idle-ms",
    env: "SANDBOX_AGENT_WATCHER_IDLE_MS",
    kind: "int",
    min: 1000,
    help: "a polled watcher nobody polls for this long is removed (default 300000)",
  },
  watcherMaxEvents: {
    flag: "--watcher-max-events",
    env: "SANDBOX_AGENT_WATCHER_MAX_EVENTS",
    kind: "int",
    min: 1,
    help: "events a polled watcher buffers before reporting an overflow (default 10000)",
  },
  rpcMaxBytes: {
    flag: "--rpc-max-bytes",
    env: "SANDBOX_AGENT_RPC_MAX_BYTES",
    kind: "int",
    min: 1024,
    help: "largest RPC message read (default 8388608, 8 MiB: process input and code come in smaller pieces; files go through /upload)",
  },
  maxConnections: {
    flag: "--max-connections",
    env: "SANDBOX_AGENT_MAX_CONNECTIONS",
    kind: "int",
    min: 1,
    help: "connections open at once; more are refused (default 1024)",
  },
  h2MaxStreams: {
    flag: "--h2-max-streams",
    env: "SANDBOX_AGENT_H2_MAX_STREAMS",
    kind: "int",
    min: 1,
    help: "concurrent streams one HTTP/2 connection may open (default 256)",
  },
  h2IdleMs: {
    flag: "--h2-idle-ms",
    env: "SANDBOX_AGENT_H2_IDLE_MS",
    kind: "int",
    min: 1000,
    help: "an HTTP/2 connection with no stream open for this long is closed (default 300000)",
  },
  signedUrlMaxSeconds: {
    flag: "--signed-url-max-seconds",
    env: "SANDBOX_AGENT_SIGNED_URL_MAX_SECONDS",
    kind: "int",
    min: 1,
    help: "a signed URL whose signature_expiration lies further ahead than this is refused (default 604800, 7 days)",
  },
  watchDefaultTimeoutMs: {
    flag: "--watch-default-timeout-ms",
    env: "SANDBOX_AGENT_WATCH_DEFAULT_TIMEOUT_MS",
    kind: "int",
    min: 0,
    help: "a WatchDir stream that names no deadline and no Keepalive-Ping-Interval ends after this long, as the ScaleBox SDK's request timeout means it to; 0 means never (default 30000)",
  },
  executionTimeoutMs: {
    flag: "--execution-timeout-ms",
    env: "SANDBOX_AGENT_EXECUTION_TIMEOUT_MS",
    kind: "int",
    min: 0,
    help: "time limit of an execution that sends no Connect-Timeout-Ms; 0 means none (default 300000)",
  },
  kernelPoolSize: {
    flag: "--kernel-pool-size",
    env: "SANDBOX_AGENT_KERNEL_POOL_SIZE",
    kind: "int",
    min: 0,
    max: 16,
    help: "Python kernels kept started for new contexts of the default user (default 1)",
  },
  maxContexts: {
    flag: "--max-contexts",
    env: "SANDBOX_AGENT_MAX_CONTEXTS",
    kind: "int",
    min: 1,
    max: 1024,
    help: "execution contexts (kernels) alive at once; at the limit the least recently used idle one is shut down (default 16)",
  },
  languagesFile: {
    flag: "--languages-file",
    env: "SANDBOX_AGENT_LANGUAGES_FILE",
    kind: "path",
    help: "JSON file mapping language names to kernelspecs, over the built-in table",
  },
  logLevel: { flag: "--log-level", env: "SANDBOX_AGENT_LOG_LEVEL", kind: "string", help: "fatal, error, warn, info, debug, trace or silent (default info)" },
  config: { flag: "--config", env: "SANDBOX_AGENT_CONFIG", kind: "path", help: "JSON file with any of these options by name" },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

export interface Config {
  host: string;
  port: number;
  /** The E2B code interpreter's own listener; 0 for none. */
  interpreterPort: number;
  /** Resolved token: from the option, the token file, or generated by the caller of loadConfig. */
  accessToken: string | undefined;
  auth: AuthMode;
  defaultUser: string;
  defaultWorkdir: string | undefined;
  tls: { cert: Buffer; key: Buffer } | undefined;
  uploadMaxBytes: number;
  watcherIdleMs: number;
  watcherMaxEvents: number;
  watchDefaultTimeoutMs: number;
  signedUrlMaxSeconds: number;
  rpcMaxBytes: number;
  maxConnections: number;
  h2MaxStreams: number;
  h2IdleMs: number;
  executionTimeoutMs: number;
  kernelPoolSize: number;
  maxContexts: number;
  languagesFile: string | undefined;
  logLevel: string;
}

export const DEFAULTS = {
  host: "0.0.0.0",
  port: 49983,
  interpreterPort: 49999,
  defaultUser: "root",
  uploadMaxBytes: 64 * 1024 ** 3,
  watcherIdleMs: 300_000,
  watcherMaxEvents: 10_000,
  watchDefaultTimeoutMs: 30_000,
  signedUrlMaxSeconds: 7 * 24 * 3600,
  rpcMaxBytes: 8 * 1024 * 1024,
  maxConnections: 1024,
  h2MaxStreams: 256,
  h2IdleMs: 300_000,
  executionTimeoutMs: 300_000,
  kernelPoolSize: 1,
  maxContexts: 16,
  logLevel: "info",
} as const;

const LOG_LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

export class ConfigError extends Error {}

type Raw = Partial<Record<OptionName, string>>;

function parseFlags(argv: readonly string[]): Raw {
  const byFlag = new Map<string, OptionName>(Object.entries(OPTIONS).map(([name, spec]) => [spec.flag, name as OptionName]));
  const raw: Raw = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const name = byFlag.get(flag);
    if (name === undefined) throw new ConfigError(`unknown option ${flag} (see --help)`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new ConfigError(`${flag} needs a value`);
    raw[name] = value;
  }
  return raw;
}

/** Options whose empty value is refused even from the environment, where empty otherwise means unset. */
const NEVER_EMPTY: ReadonlySet<OptionName> = new Set(["accessToken", "accessTokenFile"]);

function parseEnv(env: NodeJS.ProcessEnv): Raw {
  const raw: Raw = {};
  for (const [name, spec] of Object.entries(OPTIONS)) {
    const value = env[spec.env];
    if (value !== undefined && (value !== "" || NEVER_EMPTY.has(name as OptionName))) raw[name as OptionName] = value;
  }
  return raw;
}

function parseFile(path: string): Raw {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  const raw: Raw = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!(key in OPTIONS) || key === "config") throw new ConfigError(`config file ${path}: unknown option "${key}"`);
    const spec: OptionSpec = OPTIONS[key as OptionName];
    // Numbers only where a number is meant; null, booleans, lists and objects never become text.
    const fits = typeof value === "string" || (spec.kind === "int" && typeof value === "number");
    if (!fits) throw new ConfigError(`config file ${path}: "${key}" must be ${spec.kind === "int" ? "a number" : "a string"}, got ${JSON.stringify(value)}`);
    raw[key as OptionName] = String(value);
  }
  return raw;
}

function toInt(name: OptionName, value: string): number {
  const spec: OptionSpec = OPTIONS[name];
  if (!/^\d+$/.test(value.trim())) throw new ConfigError(`${spec.flag} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
    throw new ConfigError(`${spec.flag} must be between ${spec.min ?? 0} and ${spec.max ?? Number.MAX_SAFE_INTEGER}, got ${value}`);
  }
  return n;
}

function readSecretFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${flag}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Reads the configuration; throws ConfigError with a message meant for the operator. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config {
  const flags = parseFlags(argv);
  const fromEnv = parseEnv(env);
  const configPath = flags.config ?? fromEnv.config;
  const fromFile = configPath === undefined ? {} : parseFile(configPath);
  const pick = (name: OptionName): string | undefined => {
    const value = flags[name] ?? fromEnv[name] ?? fromFile[name];
    // An empty token would let an empty X-Access-Token header in; no other text option means anything empty.
    if (value !== undefined && value.trim() === "" && OPTIONS[name].kind !== "int") {
      throw new ConfigError(`${OPTIONS[name].flag} (${OPTIONS[name].env}) is empty: give it a value or leave it out`);
    }
    return value;
  };

  let accessToken = pick("accessToken");
  const tokenFile = pick("accessTokenFile");
  if (accessToken === undefined && tokenFile !== undefined) {
    accessToken = readSecretFile(OPTIONS.accessTokenFile.flag, tokenFile).toString("utf8").trim();
    if (accessToken === "") throw new ConfigError(`${OPTIONS.accessTokenFile.flag}: ${tokenFile} is empty`);
  }

  const certPath = pick("tlsCert");
  const keyPath = pick("tlsKey");
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new ConfigError(`${OPTIONS.tlsCert.flag} and ${OPTIONS.tlsKey.flag} go together`);
  }
  const tls =
    certPath !== undefined && keyPath !== undefined
      ? { cert: readSecretFile(OPTIONS.tlsCert.flag, certPath), key: readSecretFile(OPTIONS.tlsKey.flag, keyPath) }
      : undefined;

  const auth = (pick("auth") ?? "token") as AuthMode;
  if (!AUTH_MODES.includes(auth)) throw new ConfigError(`${OPTIONS.auth.flag} must be one of ${AUTH_MODES.join(", ")}`);
  if (auth === "none" && !isLoopback(pick("host") ?? DEFAULTS.host)) {
    throw new ConfigError(`${OPTIONS.auth.flag} none serves everything without a token: it listens only on a loopback address (give --host 127.0.0.1)`);
  }
  if (auth !== "token" && accessToken !== undefined) {
    throw new ConfigError(`${OPTIONS.auth.flag} ${auth} takes no access token (with init, POST /init sets it)`);
  }
  const defaultWorkdir = pick("defaultWorkdir");
  if (defaultWorkdir !== undefined && !defaultWorkdir.startsWith("/")) throw new ConfigError(`${OPTIONS.defaultWorkdir.flag} must be an absolute path`);

  const logLevel = pick("logLevel") ?? DEFAULTS.logLevel;
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError(`${OPTIONS.logLevel.flag} must be one of ${[...LOG_LEVELS].join(", ")}`);

  const int = (
    name:
      | "port"
      | "interpreterPort"
      | "uploadMaxBytes"
      | "watcherIdleMs"
      | "watcherMaxEvents"
      | "watchDefaultTimeoutMs"
      | "signedUrlMaxSeconds"
      | "rpcMaxBytes"
      | "maxConnections"
      | "h2MaxStreams"
      | "h2IdleMs"
      | "executionTimeoutMs"
      | "kernelPoolSize"
      | "maxContexts",
  ): number => {
    const value = pick(name);
    return value === undefined ? DEFAULTS[name] : toInt(name, value);
  };

  return {
    host: pick("host") ?? DEFAULTS.host,
    port: int("port"),
    interpreterPort: int("interpreterPort"),
    accessToken,
    auth,
    defaultUser: pick("defaultUser") ?? DEFAULTS.defaultUser,
    defaultWorkdir,
    tls,
    uploadMaxBytes: int("uploadMaxBytes"),
    watcherIdleMs: int("watcherIdleMs"),
    watcherMaxEvents: int("watcherMaxEvents"),
    watchDefaultTimeoutMs: int("watchDefaultTimeoutMs"),
    signedUrlMaxSeconds: int("signedUrlMaxSeconds"),
    rpcMaxBytes: int("rpcMaxBytes"),
    maxConnections: int("maxConnections"),
    h2MaxStreams: int("h2MaxStreams"),
    h2IdleMs: int("h2IdleMs"),
    executionTimeoutMs: int("executionTimeoutMs"),
    kernelPoolSize: int("kernelPoolSize"),
    maxContexts: int("maxContexts"),
    languagesFile: pick("languagesFile"),
    logLevel,
  };
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function helpText(): string {
  const rows = Object.values(OPTIONS).map((spec) => `  ${spec.flag.padEnd(22)} ${spec.env.padEnd(34)} ${spec.help}`);
  return [
    "Usage: sandbox-agent [options]",
    "",
    "Options (flag, environment variable, meaning); flags win over the environment, which wins over --config:",
    ...rows,
    "  --help                 show this text",
    "  --version              print the version",
  ].join("\n");
}

/** Test helper and embedding entry: a full Config from a few overrides. */
export function configWith(overrides: Partial<Config>): Config {
  return {
    host: "127.0.0.1",
    port: 0,
    // Embedded and test agents (many at once) take no fixed port they were not asked for.
    interpreterPort: 0,
    accessToken: undefined,
    auth: "token",
    defaultUser: DEFAULTS.defaultUser,
    defaultWorkdir: undefined,
    tls: undefined,
    uploadMaxBytes: DEFAULTS.uploadMaxBytes,
    watcherIdleMs: DEFAULTS.watcherIdleMs,
    watcherMaxEvents: DEFAULTS.watcherMaxEvents,
    watchDefaultTimeoutMs: DEFAULTS.watchDefaultTimeoutMs,
    signedUrlMaxSeconds: DEFAULTS.signedUrlMaxSeconds,
    rpcMaxBytes: DEFAULTS.rpcMaxBytes,
    maxConnections: DEFAULTS.maxConnections,
    h2MaxStreams: DEFAULTS.h2MaxStreams,
    h2IdleMs: DEFAULTS.h2IdleMs,
    executionTimeoutMs: DEFAULTS.executionTimeoutMs,
    // Embedded and test agents start no kernels they were not asked for.
    kernelPoolSize: 0,
    maxContexts: DEFAULTS.maxContexts,
    languagesFile: undefined,
    logLevel: "silent",
    ...overrides,
  };
}
