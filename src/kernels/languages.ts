/**
 * Which kernel runs a language: the names callers send (`python`, `nodejs`, `deno`, …) mapped to
 * kernelspec names to try in order, then to any kernelspec declaring the language, then to a
 * built-in driver. Users extend or override the table with a JSON file (option `languagesFile`):
 *
 *   { "julia": { "kernelspecs": ["julia-1.10"] },
 *     "python": { "kernelspecs": ["my-venv", "python3"] },
 *     "py": "python" }
 *
 * An object entry replaces the built-in entry of that name; a string makes the name an alias.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../config.js";

export type BuiltinDriver = "bash" | "jshell";

export interface LanguageEntry {
  /** The language a default context belongs to: `python` and `python3` share one. */
  readonly language: string;
  /** Kernelspec names to try, in order. */
  readonly kernelspecs: readonly string[];
  /** Kernelspec `language` fields that also qualify when none of the named ones is installed. */
  readonly kernelLanguages: readonly string[];
  /** Driver the agent runs itself when no kernelspec qualifies. */
  readonly builtin?: BuiltinDriver;
}

export type LanguageTable = ReadonlyMap<string, LanguageEntry>;

const entry = (language: string, kernelspecs: string[], kernelLanguages: string[], builtin?: BuiltinDriver): LanguageEntry => ({
  language,
  kernelspecs,
  kernelLanguages,
  builtin,
});

const python = entry("python", ["python3", "python"], ["python"]);
const r = entry("r", ["ir"], ["r"]);
const javascript = entry("javascript", ["jslab", "javascript", "nodejs"], ["javascript"]);
const typescript = entry("typescript", ["deno", "tslab"], ["typescript"]);
const deno = entry("deno", ["deno"], []);
const java = entry("java", ["java", "ijava"], ["java"], "jshell");
const bash = entry("bash", ["bash"], ["bash"], "bash");

/** The names the SDKs send, and a few obvious spellings. */
export const DEFAULT_LANGUAGES: LanguageTable = new Map([
  ["python", python],
  ["python3", python],
  ["r", r],
  ["javascript", javascript],
  ["js", javascript],
  ["node", javascript],
  ["nodejs", javascript],
  ["typescript", typescript],
  ["ts", typescript],
  ["deno", deno],
  ["java", java],
  ["ijava", java],
  ["bash", bash],
]);

/** A bad languages file is a configuration error: the agent refuses to start with its message. */
export class LanguageTableError extends ConfigError {}

function stringList(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === "string")) {
    throw new LanguageTableError(`${where} must be a list of strings`);
  }
  return value.map((item) => item.toLowerCase());
}

/** The built-in table with the file's entries laid over it. */
export function loadLanguageTable(file: string | undefined): LanguageTable {
  if (file === undefined) return DEFAULT_LANGUAGES;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new LanguageTableError(`cannot read languages file ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new LanguageTableError(`languages file ${file} must hold a JSON object`);
  }
  const table = new Map(DEFAULT_LANGUAGES);
  const aliases: Array<[string, string]> = [];
  for (const [rawName, value] of Object.entries(parsed)) {
    const name = rawName.toLowerCase();
    if (typeof value === "string") {
      aliases.push([name, value.toLowerCase()]);
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new LanguageTableError(`languages file ${file}: "${rawName}" must be an object or the name of another language`);
    }
    const spec = value as Record<string, unknown>;
    const builtin = spec.builtin;
    if (builtin !== undefined && builtin !== "bash" && builtin !== "jshell") {
      throw new LanguageTableError(`languages file ${file}: "${rawName}".builtin must be "bash" or "jshell"`);
    }
    table.set(
      name,
      entry(
        name,
        stringList(spec.kernelspecs, `languages file ${file}: "${rawName}".kernelspecs`),
        stringList(spec.kernelLanguages, `languages file ${file}: "${rawName}".kernelLanguages`),
        builtin,
      ),
    );
  }
  for (const [alias, target] of aliases) {
    const resolved = table.get(target);
    if (resolved === undefined) throw new LanguageTableError(`languages file ${file}: "${alias}" names unknown language "${target}"`);
    table.set(alias, resolved);
  }
  return table;
}
