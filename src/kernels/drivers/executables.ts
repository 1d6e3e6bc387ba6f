/** Finding the programs the built-in drivers need, on the agent's PATH and Debian's usual places. */
import { access, constants, realpath } from "node:fs/promises";
import { delimiter, dirname, join } from "node:path";

const STANDARD_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

function searchPath(): string[] {
  const fromEnv = (process.env.PATH ?? "").split(delimiter).filter((dir) => dir.startsWith("/"));
  return [...new Set([...fromEnv, ...STANDARD_PATH])];
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function findExecutable(name: string): Promise<string | undefined> {
  for (const dir of searchPath()) {
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export interface Jdk {
  readonly java: string;
  readonly javac: string;
}

/**
 * The JDK that provides jshell: $JAVA_HOME first, else the one `jshell` on PATH belongs to (Debian
 * links /usr/bin/jshell through alternatives into the JDK's bin directory, next to java and javac).
 */
export async function findJdk(): Promise<Jdk | undefined> {
  const bins: string[] = [];
  const home = process.env.JAVA_HOME;
  if (home?.startsWith("/")) bins.push(join(home, "bin"));
  const jshell = await findExecutable("jshell");
  if (jshell !== undefined) bins.push(dirname(await realpath(jshell).catch(() => jshell)));
  for (const bin of bins) {
    const java = join(bin, "java");
    const javac = join(bin, "javac");
    if ((await isExecutable(join(bin, "jshell"))) && (await isExecutable(java)) && (await isExecutable(javac))) return { java, javac };
  }
  return undefined;
}
