/**
 * Where kernels and drivers keep their private files: connection files, hand-off files and the
 * kernels' Unix sockets. One directory per agent process under a base no other user can write to,
 * so no name in it can be squatted or swapped:
 *
 *   /run/sandbox-agent/kernels/            root, 0711 (a privileged agent; tmpfs, never aged by tmp cleaners)
 *     agent-<pid>-<start>-XXXXXX/          the agent, 0711: traversable, not listable
 *       kernel-XXXXXX/                     the kernel's user, 0700: its connection file and sockets
 *       bash-XXXXXX/                       the agent, 0711: files handed to one driver process
 *
 * An agent that cannot create /run/sandbox-agent (not root, read-only /run) uses the system's
 * temporary directory instead: the per-agent directory is made with mkdtemp there, so its name
 * cannot be taken in advance either.
 *
 * The per-agent directory goes when the agent exits. The pid and start time in its name let a later
 * agent tell the directory of a crashed run from that of an agent still running, and remove it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { chmod, lstat, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTime } from "../proc-stat.js";
import { isPrivileged } from "../users.js";

const SYSTEM_PARENT = "/run/sandbox-agent";
const SYSTEM_BASE = join(SYSTEM_PARENT, "kernels");

interface Base {
  readonly path: string;
  /** Every per-agent directory's name starts with this, followed by `<pid>-<start>-`. */
  readonly prefix: string;
}

const HAVE_PROC = startTime(process.pid) !== undefined;

function alive(pid: number, start: string): boolean {
  if (HAVE_PROC) return startTime(pid) === start;
  // Without /proc a pid that answers is taken as alive: its start time cannot be compared.
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * A directory only the agent's user can write to, created if missing. An existing one that is a
 * symlink, belongs to someone else or is writable by others is refused: everything below it
 * would be in the hands of whoever controls it.
 */
async function ensureOwnDirectory(path: string): Promise<void> {
  try {
    await mkdir(path, { mode: 0o711 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const st = await lstat(path);
  if (!st.isDirectory() || st.uid !== process.getuid?.()) throw new Error(`${path} is not a directory of the agent's own`);
  if ((st.mode & 0o022) !== 0) await chmod(path, 0o711);
}

let basePromise: Promise<Base> | undefined;

function base(): Promise<Base> {
  basePromise ??= (async () => {
    if (isPrivileged()) {
      try {
        await ensureOwnDirectory(SYSTEM_PARENT);
        await ensureOwnDirectory(SYSTEM_BASE);
        return { path: SYSTEM_BASE, prefix: "agent-" };
      } catch {
        // No usable /run: the temporary directory, with a name nobody can take in advance.
      }
    }
    return { path: tmpdir(), prefix: "sandbox-agent-kernels-" };
  })();
  return basePromise;
}

let agentDir: Promise<string> | undefined;
let agentDirPath: string | undefined;

function removeAtExit(): void {
  if (agentDirPath !== undefined) rmSync(agentDirPath, { recursive: true, force: true });
}

/** This agent's directory, made on first use and removed when the process exits. */
export function agentRuntimeDirectory(): Promise<string> {
  agentDir ??= (async () => {
    const { path, prefix } = await base();
    // mkdtemp is synchronous here so that no exit can come between creating it and knowing it.
    const dir = mkdtempSync(join(path, `${prefix}${process.pid}-${startTime(process.pid) ?? "0"}-`));
    agentDirPath = dir;
    process.once("exit", removeAtExit);
    // Others may pass through to the directories given to them, but not list what is here.
    await chmod(dir, 0o711);
    return dir;
  })();
  return agentDir;
}

/**
 * A new directory in this agent's, owned by the agent with `mode`. Whoever it is for gets it
 * afterwards (chown), once the agent has put in it what must not be tampered with.
 */
export async function newRuntimeDirectory(prefix: string, mode: number): Promise<string> {
  const dir = await mkdtemp(join(await agentRuntimeDirectory(), `${prefix}-`));
  await chmod(dir, mode);
  return dir;
}

const AGENT_DIR_NAME = /^(\d+)-(\d+)-[A-Za-z0-9]{6}$/;

/**
 * Removes what agents that are gone left behind (a crash, a SIGKILL, a power cut before /run was
 * emptied). Directories of agents still running, this one's included, are left alone. Returns the
 * paths removed.
 */
export async function removeStaleRuntimeDirectories(): Promise<string[]> {
  const { path, prefix } = await base();
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = await readdir(path);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const match = AGENT_DIR_NAME.exec(name.slice(prefix.length));
    if (match === null) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || alive(pid, match[2]!)) continue;
    const dir = join(path, name);
    try {
      // Only a real directory of the agent's own user: in a shared /tmp, someone else's look-alike
      // is not ours to remove. rm never follows the symlinks a kernel's user may have put inside.
      const st = await lstat(dir);
      if (!st.isDirectory() || st.uid !== uid) continue;
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // Gone meanwhile, or not removable: the next start tries again.
    }
  }
  return removed;
}

/** The directory holding every running agent's runtime directory (what an operator inspects after a crash). */
export async function runtimeBase(): Promise<string> {
  return (await base()).path;
}
