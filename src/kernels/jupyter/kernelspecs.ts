/**
 * Installed Jupyter kernelspecs: `<dir>/kernels/<name>/kernel.json` under the Jupyter data path
 * (JUPYTER_PATH first, then the user's, then the system's), the first one found for a name wins,
 * as `jupyter kernelspec list` shows them.
 */
import { readdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export interface KernelSpec {
  /** Directory name, e.g. "python3", "ir". */
  readonly name: string;
  readonly displayName: string;
  /** The kernelspec's own `language` field, lower-cased ("python", "r", "typescript"). */
  readonly language: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly interruptMode: "signal" | "message";
  readonly resourceDir: string;
}

/** Data directories in Jupyter's order of precedence. */
export function jupyterDataDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = (env.JUPYTER_PATH ?? "").split(":").filter((dir) => dir !== "");
  const userData = env.JUPYTER_DATA_DIR ?? join(env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "jupyter");
  return [...new Set([...fromEnv, userData, "/usr/local/share/jupyter", "/usr/share/jupyter"])];
}

function stringRecord(value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
}

async function readSpec(name: string, resourceDir: string): Promise<KernelSpec | undefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(resourceDir, "kernel.json"), "utf8"));
  } catch {
    return undefined; // not a kernelspec, or a broken one: `jupyter kernelspec list` skips those too
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const spec = raw as Record<string, unknown>;
  const argv = spec.argv;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((arg): arg is string => typeof arg === "string")) return undefined;
  return {
    name,
    displayName: typeof spec.display_name === "string" ? spec.display_name : name,
    language: typeof spec.language === "string" ? spec.language.toLowerCase() : "",
    argv,
    env: stringRecord(spec.env),
    interruptMode: spec.interrupt_mode === "message" ? "message" : "signal",
    resourceDir,
  };
}

/** Every installed kernelspec by name (names are case-insensitive in Jupyter; kept lower-case). */
export async function findKernelSpecs(dirs: readonly string[] = jupyterDataDirs()): Promise<Map<string, KernelSpec>> {
  const found = new Map<string, KernelSpec>();
  for (const dir of dirs) {
    const kernelsDir = join(dir, "kernels");
    let names: string[];
    try {
      names = await readdir(kernelsDir);
    } catch {
      continue;
    }
    for (const entry of names.sort()) {
      const name = entry.toLowerCase();
      if (found.has(name)) continue;
      const spec = await readSpec(name, join(kernelsDir, entry));
      if (spec !== undefined) found.set(name, spec);
    }
  }
  return found;
}
