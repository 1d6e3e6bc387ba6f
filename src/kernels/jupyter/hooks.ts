/**
 * The few lines of code the agent runs silently inside a kernel, per kernel language: start-up
 * (the Python chart formatter), per-execution environment variables, and changing directory.
 *
 * Nothing a caller sent is ever pasted into this code. Values travel in a private JSON file that
 * the snippet reads and deletes; the only thing spliced into code is that file's path, which the
 * agent made itself (mkdtemp name + fixed file names), so JSON string syntax is a safe literal for it
 * in Python, R and JavaScript alike.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { KernelSpec } from "./kernelspecs.js";

export interface LanguageHooks {
  /** Run silently after every (re)start, before the kernel is handed out. */
  readonly startup?: () => string;
  /** Sets the variables in the JSON object stored at `file` (and deletes it), remembering old values. */
  readonly pushEnv?: (file: string) => string;
  /** Restores what the last pushEnv changed. */
  readonly popEnv?: string;
  /** Changes the working directory to the JSON string stored at `file`. */
  readonly chdir?: (file: string) => string;
  /**
   * The kernel shows the values of top-level expressions as display_data rather than
   * execute_result (IRkernel does); such displays count as results, so the last is the main one.
   */
  readonly valuesAsDisplays?: boolean;
  /**
   * How long to keep listening after IOPub went idle: Deno publishes `idle` and the cell's last
   * outputs from different tasks, so an output can arrive a fraction of a millisecond after it.
   */
  readonly settleMs?: number;
}

const literal = (path: string): string => JSON.stringify(path);

/** The Python start-up file sits next to this module: in src/, and in dist/ where the build copies it. */
function startupFile(): string {
  const path = fileURLToPath(new URL("./python/agent_startup.py", import.meta.url));
  if (!existsSync(path)) throw new Error(`agent_startup.py not found at ${path} (the build copies it next to the compiled module)`);
  return path;
}

let pythonStartup: string | undefined;

const python: LanguageHooks = {
  startup: () => {
    // Compiled in a namespace of its own so nothing it defines shows up among the user's variables.
    pythonStartup ??= readFileSync(startupFile(), "utf8");
    return `exec(compile(${JSON.stringify(pythonStartup)}, "<sandbox-agent startup>", "exec"), {"__name__": "_sandbox_agent_startup"})`;
  },
  pushEnv: (file) => `__import__("_sandbox_agent").push_env(${literal(file)})`,
  popEnv: `__import__("_sandbox_agent").pop_env()`,
  chdir: (file) => `__import__("_sandbox_agent").chdir_from(${literal(file)})`,
};

// Saved values live in an R option, which ls() does not list; NA marks "was unset".
const r: LanguageHooks = {
  valuesAsDisplays: true,
  pushEnv: (file) =>
    `local({ .v <- jsonlite::fromJSON(${literal(file)}, simplifyVector = FALSE); unlink(${literal(file)}); ` +
    `.old <- Sys.getenv(names(.v), unset = NA, names = TRUE); options(sandbox_agent.saved_env = as.list(.old)); ` +
    `if (length(.v) > 0) do.call(Sys.setenv, .v) })`,
  popEnv:
    `local({ .old <- getOption("sandbox_agent.saved_env"); for (.n in names(.old)) { ` +
    `if (is.na(.old[[.n]])) Sys.unsetenv(.n) else do.call(Sys.setenv, stats::setNames(list(.old[[.n]]), .n)) }; ` +
    `options(sandbox_agent.saved_env = NULL) })`,
  chdir: (file) => `local({ setwd(jsonlite::fromJSON(${literal(file)})) })`,
};

// Valid JavaScript and TypeScript alike (tslab type-checks): no annotations, Reflect for globals.
const SAVED = `"__sandboxAgentSavedEnv"`;
const node: LanguageHooks = {
  pushEnv: (file) =>
    `(() => { const fs = require("fs"); const v = JSON.parse(fs.readFileSync(${literal(file)}, "utf8")); fs.unlinkSync(${literal(file)}); ` +
    `const saved = {}; for (const k of Object.keys(v)) { Reflect.set(saved, k, k in process.env ? process.env[k] : null); process.env[k] = v[k]; } ` +
    `Reflect.set(globalThis, ${SAVED}, saved); })();`,
  popEnv:
    `(() => { const saved = Reflect.get(globalThis, ${SAVED}) || {}; for (const k of Object.keys(saved)) { ` +
    `const old = saved[k]; if (old === null) delete process.env[k]; else process.env[k] = old; } Reflect.deleteProperty(globalThis, ${SAVED}); })();`,
  chdir: (file) => `process.chdir(JSON.parse(require("fs").readFileSync(${literal(file)}, "utf8")));`,
};

const deno: LanguageHooks = {
  settleMs: 20,
  pushEnv: (file) =>
    `(() => { const v = JSON.parse(Deno.readTextFileSync(${literal(file)})); Deno.removeSync(${literal(file)}); ` +
    `const saved = {}; for (const k of Object.keys(v)) { Reflect.set(saved, k, Deno.env.get(k) ?? null); Deno.env.set(k, v[k]); } ` +
    `Reflect.set(globalThis, ${SAVED}, saved); })();`,
  popEnv:
    `(() => { const saved = Reflect.get(globalThis, ${SAVED}) || {}; for (const k of Object.keys(saved)) { ` +
    `const old = saved[k]; if (old === null) Deno.env.delete(k); else Deno.env.set(k, old); } Reflect.deleteProperty(globalThis, ${SAVED}); })();`,
  chdir: (file) => `Deno.chdir(JSON.parse(Deno.readTextFileSync(${literal(file)})));`,
};

/** Hooks by what the kernel runs, read from its kernelspec (the `language` field and argv). */
export function hooksFor(spec: KernelSpec): LanguageHooks {
  const program = spec.argv[0]?.split("/").pop() ?? "";
  if (spec.language === "python") return python;
  if (spec.language === "r") return r;
  if (program === "deno" || spec.argv.includes("deno")) return deno;
  if (spec.language === "javascript" || spec.language === "typescript") return node;
  return {};
}
