/**
 * What each RPC may be sent and what it must never be. The agent runs as root on the machine the
 * fuzzer runs on, so every request is checked against these rules before it is sent: paths it may
 * change stay inside the scratch directory, processes come from an allow-list of harmless commands
 * (none of which reads its input as code), and code runs only as fixed bash snippets. Requests
 * that may keep a stream open carry a short deadline.
 *
 * An RPC without a rule here (one added to the proto later) is still fuzzed, conservatively:
 * every string in its request must be a path inside the scratch directory.
 */
import fc from "fast-check";
import type { DescMessage, DescMethod, Message } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { posix } from "node:path";
import type {
  CreateContextRequest,
  CreateWatcherRequest,
  ExecuteRequest,
  ListDirRequest,
  MakeDirRequest,
  MoveRequest,
  RemoveRequest,
  StartRequest,
  WatchDirRequest,
} from "../../src/gen/sandboxagent/api_pb.js";
import { DEFAULT_LANGUAGES } from "../../src/kernels/languages.js";
import type { FuzzContext } from "./context.js";
import { awkwardString, ownTypeName, type MessageOverrides } from "./proto-values.js";

export interface RpcRule {
  /** Why the agent must not act on this request message, or undefined when it may. */
  readonly unsafe?: (message: Message, ctx: FuzzContext, desc: DescMessage) => string | undefined;
  /** The call may hold its stream open until its deadline: it is only sent with a short one. */
  readonly staysOpen?: (message: Message) => boolean;
}

/** The longest deadline a request that may stay open is sent with. */
export const SHORT_DEADLINE_MS = 1_500;

// ---- paths -------------------------------------------------------------------------------------

/** Absolute and strictly below the scratch directory once `..` and `.` are resolved. */
export function insideScratch(path: string, scratch: string): boolean {
  // The agent refuses a NUL anywhere in a path; without it, the path must still be below scratch.
  const cleaned = path.replaceAll("\0", "");
  return cleaned.startsWith("/") && posix.resolve(cleaned).startsWith(`${posix.resolve(scratch)}/`);
}

/** Names prepareRpcScratch creates in scratch (a tree, a file, symlink loops), plus new ones. */
const SCRATCH_NAMES = [
  "dir",
  "dir/sub",
  "dir/sub/",
  "a",
  "b",
  "loop",
  "loop/x",
  "file",
  "new",
  "new/deeper/still",
  "x y",
  "ünï",
  "dir/../moved",
  "-rf",
  ".hidden",
  "*",
  "dir//sub",
  "./dir",
  "n".repeat(255),
  "n".repeat(256),
];

/** Creates the tree, file and symlink loops SCRATCH_NAMES refers to; safe to call again. */
export async function prepareRpcScratch(scratch: string): Promise<void> {
  await mkdir(posix.join(scratch, "dir", "sub"), { recursive: true });
  await writeFile(posix.join(scratch, "file"), "content\n");
  const link = (target: string, name: string) => symlink(target, posix.join(scratch, name)).catch(() => undefined);
  await link("loop", "loop");
  await link("b", "a");
  await link("a", "b");
}

export function scratchPath(ctx: FuzzContext): fc.Arbitrary<string> {
  const name = fc.string({ minLength: 1, maxLength: 16 }).filter((s) => !s.includes("/") && s !== "." && s !== "..");
  return fc
    .oneof(
      { weight: 3, arbitrary: fc.constantFrom(...SCRATCH_NAMES) },
      { weight: 1, arbitrary: name },
      { weight: 1, arbitrary: fc.tuple(name, name).map(([a, b]) => `dir/${a}/${b}`) },
    )
    .map((rel) => `${ctx.scratch}/${rel}`)
    .filter((path) => insideScratch(path, ctx.scratch));
}

/** Paths to read: scratch, the system, and the ones a resolver may trip on. */
export function anyPath(ctx: FuzzContext): fc.Arbitrary<string> {
  return fc.oneof(
    scratchPath(ctx),
    fc.constantFrom(
      "/",
      "/proc/self/status",
      "/dev/null",
      "/dev/zero",
      "/etc/hostname",
      "/nonexistent",
      "~",
      "~/",
      "~root",
      "",
      ".",
      "relative/x",
      "/a\0b",
      "//",
      `/${"p".repeat(5000)}`,
    ),
    awkwardString,
  );
}

// ---- processes ---------------------------------------------------------------------------------

/** sh -c scripts that may be run; `true` when the script waits on its input. */
export const SHELL_SCRIPTS: Readonly<Record<string, boolean>> = {
  "echo out; echo err >&2": false,
  "exit 3": false,
  "kill -9 $$": false,
  "yes | head -n 1000": false,
  "head -c 70000 /dev/zero": false,
  "sleep 0.05; echo done": false,
  "trap '' TERM; sleep 0.2": false,
  "printf 'no newline'": false,
  "read line; echo got:$line": true,
};

interface AllowedCommand {
  readonly names: readonly string[];
  readonly args: fc.Arbitrary<string[]>;
  readonly argsAllowed: (args: readonly string[]) => boolean;
  /** Runs until its input ends (or the deadline kills it). */
  readonly waitsForInput?: (args: readonly string[]) => boolean;
}

const SLEEPS = ["0", "0.05", "0.2"];
const scripts = Object.keys(SHELL_SCRIPTS);
const shellArgs = (args: readonly string[]): string | undefined =>
  args.length === 2 && args[0] === "-c" ? args[1] : args.length === 3 && args[0] === "-l" && args[1] === "-c" ? args[2] : undefined;

const ALLOWED_COMMANDS: readonly AllowedCommand[] = [
  { names: ["true", "/bin/true", "/usr/bin/true"], args: fc.array(awkwardString, { maxLength: 3 }), argsAllowed: () => true },
  { names: ["echo", "/bin/echo"], args: fc.array(awkwardString, { maxLength: 4 }), argsAllowed: () => true },
  { names: ["printf"], args: fc.array(awkwardString, { maxLength: 3 }).map((rest) => ["%s\n", ...rest]), argsAllowed: (args) => args[0] === "%s\n" },
  { names: ["cat", "/bin/cat"], args: fc.constant([]), argsAllowed: (args) => args.length === 0, waitsForInput: () => true },
  { names: ["sleep"], args: fc.constantFrom(...SLEEPS).map((s) => [s]), argsAllowed: (args) => args.length === 1 && SLEEPS.includes(args[0]!) },
  {
    names: ["head"],
    args: fc.integer({ min: 0, max: 1 << 20 }).map((n) => ["-c", String(n), "/dev/zero"]),
    argsAllowed: (args) => args.length === 3 && args[0] === "-c" && /^\d{1,7}$/.test(args[1]!) && Number(args[1]) <= 1 << 20 && args[2] === "/dev/zero",
  },
  {
    names: ["sh", "/bin/sh", "bash", "/bin/bash"],
    args: fc.tuple(fc.boolean(), fc.constantFrom(...scripts)).map(([login, script]) => (login ? ["-l", "-c", script] : ["-c", script])),
    argsAllowed: (args) => {
      const script = shellArgs(args);
      return script !== undefined && script in SHELL_SCRIPTS;
    },
    waitsForInput: (args) => SHELL_SCRIPTS[shellArgs(args) ?? ""] === true,
  },
];

/** Variables that change what a process loads or runs; never sent. */
const DENIED_ENV = new Set([
  "PATH",
  "IFS",
  "ENV",
  "BASH_ENV",
  "SHELLOPTS",
  "BASHOPTS",
  "PS4",
  "PROMPT_COMMAND",
  "GCONV_PATH",
  "NODE_OPTIONS",
  "HOSTALIASES",
  "LOCPATH",
  "NLSPATH",
  "CDPATH",
  "GLOBIGNORE",
]);

export function envNameAllowed(name: string): boolean {
  const bare = name.split("=")[0]!.trim();
  return !DENIED_ENV.has(bare) && !/^(LD_|BASH_FUNC_|MALLOC_)/.test(bare);
}

const envName = fc
  .oneof(
    { weight: 4, arbitrary: fc.constantFrom("FUZZ_A", "FUZZ_B", "LANG", "TERM", "HOME", "with space", "é") },
    { weight: 1, arbitrary: fc.constantFrom("", "A=B", "a\0b") },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  )
  .filter(envNameAllowed);
const envs = fc.dictionary(envName, awkwardString, { maxKeys: 4 });

function allowedCommand(cmd: string): AllowedCommand | undefined {
  return ALLOWED_COMMANDS.find((c) => c.names.includes(cmd));
}

/** Tags shared by every generated request, so that Connect, SendInput and SendSignal find processes. */
export const TAG_POOL = ["fuzz-a", "fuzz-b", "fuzz-c"];
const tag = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...TAG_POOL) }, { weight: 1, arbitrary: awkwardString });
const ptySide = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 300 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 10_000, 10_001, 65535, 65536, 2 ** 32 - 1) },
);

// ---- code execution ----------------------------------------------------------------------------

/** The only code that ever runs: bash, a built-in driver. `true` when it outlives a short deadline. */
export const BASH_SNIPPETS: Readonly<Record<string, boolean>> = {
  "echo hi": false,
  "echo $((6 * 7))": false,
  "echo oops >&2; false": false,
  "x=$((x + 1)); echo $x": false,
  "printf 'a\\nb'": false,
  "sleep 0.1": false,
  "exit 3": false,
  "sleep 5": true,
};

/** Language names the agent does not know: code sent with them never reaches a kernel. */
const unknownLanguage = fc
  .oneof(
    fc.constantFrom("cobol", "python4", "zz", "pyth on", "\0python", "bash\0"),
    fc.string({ maxLength: 12 }).map((s) => `zz-${s}`),
  )
  .filter((language) => !DEFAULT_LANGUAGES.has(language.trim().toLowerCase()) && language.trim() !== "");

/** Bytes that are not code in any language: a syntax error first, then noise. */
const notCode = fc.string({ unit: "binary", maxLength: 200 }).map((s) => `)]}>>> ${s}`);

function kernelLanguage(language: string): string | undefined {
  const name = language.trim().toLowerCase();
  return name === "" ? "python" : DEFAULT_LANGUAGES.get(name)?.language;
}

// ---- the rules -----------------------------------------------------------------------------------

/** Field values for every request type, for a fuzz context. */
export function requestOverrides(ctx: FuzzContext): MessageOverrides {
  const scratch = scratchPath(ctx);
  const cwd = fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constantFrom(ctx.scratch, `${ctx.scratch}/dir`, "/", "/tmp", "~") },
    { weight: 1, arbitrary: anyPath(ctx) },
  );
  const processConfig = fc
    .tuple(fc.constantFrom(...ALLOWED_COMMANDS), fc.option(envs, { nil: undefined }), cwd)
    .chain(([command, env, cwd]) =>
      fc
        .tuple(fc.constantFrom(...command.names), command.args)
        .map(([cmd, args]) => ({ cmd, args, ...(env ? { envs: env } : {}), ...(cwd === undefined ? {} : { cwd }) })),
    );
  const execute = fc.oneof(
    { weight: 6, arbitrary: fc.record({ language: unknownLanguage, code: notCode, contextId: fc.constantFrom("", "ctx-unknown") }) },
    {
      weight: 2,
      arbitrary: fc.record({
        language: fc.constantFrom("bash", "BASH", " bash "),
        code: fc.constantFrom(...Object.keys(BASH_SNIPPETS)),
        contextId: fc.constant(""),
      }),
    },
    { weight: 1, arbitrary: fc.record({ language: fc.constantFrom("python", "r", "java", ""), code: awkwardString, contextId: fc.uuid() }) },
  );
  return {
    fields: {
      "sandboxagent.StatRequest.path": anyPath(ctx),
      "sandboxagent.ListDirRequest.path": fc.oneof(scratch, anyPath(ctx)),
      "sandboxagent.ListDirRequest.depth": fc.constantFrom(0, 1, 2, 999, 2 ** 32 - 1),
      "sandboxagent.MakeDirRequest.path": scratch,
      "sandboxagent.MoveRequest.source": scratch,
      "sandboxagent.MoveRequest.destination": scratch,
      "sandboxagent.RemoveRequest.path": scratch,
      "sandboxagent.WatchDirRequest.path": scratch,
      "sandboxagent.CreateWatcherRequest.path": scratch,
      "sandboxagent.ProcessSelector.tag": tag,
      "sandboxagent.StartRequest.tag": fc.option(tag, { nil: undefined }),
      "sandboxagent.StartRequest.process": fc.option(processConfig, { nil: undefined, freq: 10 }),
      "sandboxagent.PTY.Size.cols": ptySide,
      "sandboxagent.PTY.Size.rows": ptySide,
      "sandboxagent.CreateContextRequest.language": fc.oneof({ weight: 5, arbitrary: unknownLanguage }, { weight: 1, arbitrary: fc.constant("bash") }),
      "sandboxagent.CreateContextRequest.cwd": fc.oneof(fc.constant(ctx.scratch), anyPath(ctx)),
    },
    messages: {
      "sandboxagent.ProcessConfig": processConfig,
      "sandboxagent.ExecuteRequest": fc
        .tuple(execute, fc.option(envs, { nil: undefined }))
        .map(([fields, envVars]) => ({ ...fields, ...(envVars ? { envVars } : {}) })),
    },
  };
}

function pathRule(fieldsOf: (message: Message) => readonly string[]): RpcRule {
  return {
    unsafe: (message, ctx) => {
      const outside = fieldsOf(message).find((path) => !insideScratch(path, ctx.scratch));
      return outside === undefined ? undefined : `path ${JSON.stringify(outside.slice(0, 80))} is outside the scratch directory`;
    },
  };
}

const RULES: Readonly<Record<string, RpcRule>> = {
  "sandboxagent.Filesystem/Stat": {},
  "sandboxagent.Filesystem/MakeDir": pathRule((m) => [(m as MakeDirRequest).path]),
  "sandboxagent.Filesystem/Move": pathRule((m) => [(m as MoveRequest).source, (m as MoveRequest).destination]),
  "sandboxagent.Filesystem/Remove": pathRule((m) => [(m as RemoveRequest).path]),
  "sandboxagent.Filesystem/ListDir": {
    // Reading is harmless, but a deep walk of / takes minutes: deep listings stay in scratch.
    unsafe: (m, ctx) => {
      const { path, depth } = m as ListDirRequest;
      return depth > 1 && !insideScratch(path, ctx.scratch) ? "deep listing outside the scratch directory" : undefined;
    },
  },
  "sandboxagent.Filesystem/WatchDir": { ...pathRule((m) => [(m as WatchDirRequest).path]), staysOpen: () => true },
  "sandboxagent.Filesystem/CreateWatcher": pathRule((m) => [(m as CreateWatcherRequest).path]),
  "sandboxagent.Filesystem/GetWatcherEvents": {},
  "sandboxagent.Filesystem/RemoveWatcher": {},
  "sandboxagent.Process/List": {},
  "sandboxagent.Process/Connect": { staysOpen: () => true },
  "sandboxagent.Process/Start": {
    unsafe: (m) => {
      const config = (m as StartRequest).process;
      if (config === undefined || config.cmd === "") return undefined; // refused: no command
      const command = allowedCommand(config.cmd);
      if (command === undefined) return `command ${JSON.stringify(config.cmd.slice(0, 40))} is not on the allow-list`;
      if (!command.argsAllowed(config.args)) return `arguments ${JSON.stringify(config.args).slice(0, 80)} are not allowed for ${config.cmd}`;
      const env = Object.keys(config.envs).find((name) => !envNameAllowed(name));
      return env === undefined ? undefined : `environment variable ${JSON.stringify(env)} is not allowed`;
    },
    staysOpen: (m) => {
      const config = (m as StartRequest).process;
      return config !== undefined && (allowedCommand(config.cmd)?.waitsForInput?.(config.args) ?? false);
    },
  },
  "sandboxagent.Process/Update": {},
  "sandboxagent.Process/StreamInput": {},
  "sandboxagent.Process/SendInput": {},
  "sandboxagent.Process/SendSignal": {},
  "sandboxagent.Process/CloseStdin": {},
  "sandboxagent.ExecutionService/Execute": {
    unsafe: (m) => {
      const { contextId, language, code, envVars } = m as ExecuteRequest;
      // Only an id CreateContext returned runs code, and no generated request knows one.
      if (contextId !== "") return undefined;
      const kernel = kernelLanguage(language);
      if (kernel === undefined) return undefined; // refused: unknown language
      if (kernel !== "bash" || !(code in BASH_SNIPPETS)) return `would run ${JSON.stringify(code.slice(0, 40))} in ${kernel}`;
      const env = Object.keys(envVars).find((name) => !envNameAllowed(name));
      return env === undefined ? undefined : `environment variable ${JSON.stringify(env)} is not allowed`;
    },
    staysOpen: (m) => {
      const { contextId, language } = m as ExecuteRequest;
      return contextId === "" && kernelLanguage(language) !== undefined;
    },
  },
  "sandboxagent.ContextService/CreateContext": {
    unsafe: (m) => {
      const kernel = kernelLanguage((m as CreateContextRequest).language);
      return kernel === undefined || kernel === "bash" ? undefined : `would start a ${kernel} kernel`;
    },
  },
  "sandboxagent.ContextService/DestroyContext": {},
};

export function methodKey(method: DescMethod): string {
  return `${ownTypeName(method.parent.typeName)}/${method.name}`;
}

/** Whether a rule was written for this RPC (an RPC without one is fuzzed under `unknownRpcRule`). */
export function hasRule(method: DescMethod): boolean {
  return methodKey(method) in RULES;
}

export function ruleFor(method: DescMethod): RpcRule {
  return RULES[methodKey(method)] ?? unknownRpcRule;
}

/** Overrides for an RPC without a rule: every string a path in scratch. */
export function unknownRpcOverrides(ctx: FuzzContext): MessageOverrides {
  return { strings: scratchPath(ctx) };
}

const unknownRpcRule: RpcRule = {
  unsafe: (message, ctx, desc) => {
    const outside = stringsOf(reflect(desc, message)).find((s) => !insideScratch(s, ctx.scratch));
    return outside === undefined ? undefined : `string ${JSON.stringify(outside.slice(0, 80))} of an RPC without a rule is outside scratch`;
  },
  staysOpen: () => true,
};

/** Every string a message holds, set or not (an unset string is "", which resolves to home). */
function stringsOf(message: ReflectMessage): string[] {
  const out: string[] = [];
  for (const field of message.fields) {
    if (field.oneof !== undefined && !message.isSet(field)) continue;
    switch (field.fieldKind) {
      case "scalar":
        if (typeof message.get(field) === "string") out.push(message.get(field) as string);
        break;
      case "message":
        if (message.isSet(field)) out.push(...stringsOf(message.get(field)));
        break;
      case "list":
        for (const item of message.get(field)) {
          if (typeof item === "string") out.push(item);
          else if (typeof item === "object" && item !== null && "fields" in item) out.push(...stringsOf(item as ReflectMessage));
        }
        break;
      case "map":
        for (const [key, value] of message.get(field)) {
          if (typeof key === "string") out.push(key);
          if (typeof value === "string") out.push(value);
          else if (typeof value === "object" && value !== null && "fields" in value) out.push(...stringsOf(value as ReflectMessage));
        }
        break;
      case "enum":
        break;
    }
  }
  return out;
}
