/**
 * What both built-in drivers share about their process: started as the caller's user in its own
 * process group (so an interrupt or a kill reaches everything a cell started), a private
 * directory the agent writes cells into, and a last-resort kill of every driver process when the
 * agent exits.
 *
 * A driver speaks with the agent over its stdio only: anonymous socketpairs that exist in the agent
 * and the driver process alone, so no other user can reach them (the driver's own user could, as
 * they can reach anything of their own). Its private directory lives in the agent's runtime
 * directory (runtime-dir.ts), which goes when the agent exits, and after a crash at the next start.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chown, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { baseEnvironment, launchAs, launchIds, raiseOomScore } from "../../user-spawn.js";
import { isPrivileged, type User } from "../../users.js";
import { newRuntimeDirectory } from "../runtime-dir.js";

/** How much of a process's diagnostic output is kept to explain why it failed. */
const DIAGNOSTIC_TAIL_CHARS = 4096;
/**
 * After the process exits, how long its pipes may stay open (a dying grandchild still holding
 * them) before whatever arrived is taken as all there is.
 */
const PIPE_DRAIN_MS = 300;

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the process never started (spawn failed). */
  readonly spawnError?: string;
}

export interface DriverProcessOptions {
  readonly user: User;
  readonly cwd: string;
  /** Added over the user's base environment. */
  readonly env: Readonly<Record<string, string>>;
  readonly command: string;
  readonly args: readonly string[];
  readonly onStdout: (chunk: Buffer) => void;
  readonly onStderr: (chunk: Buffer) => void;
}

const live = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // ESRCH: the group is already gone.
  }
}

function cleanUpAtExit(): void {
  for (const pid of live) killGroup(pid);
  live.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", cleanUpAtExit);
}

/**
 * A new directory owned by the agent, traversable but not listable by others, removed at the
 * latest when the agent exits. Agent-owned matters: a user can read the files given to them in it
 * but can never swap one for a symlink that the agent would then write through.
 */
export function runtimeDirectory(prefix: string): Promise<string> {
  return newRuntimeDirectory(prefix, 0o711);
}

/** A directory of files handed to one driver process: written by the agent, readable only by its user. */
export class DriverFiles {
  private constructor(
    readonly dir: string,
    private readonly user: User,
  ) {}

  static async create(prefix: string, user: User): Promise<DriverFiles> {
    return new DriverFiles(await runtimeDirectory(prefix), user);
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Replaces `name` atomically with a new file only its user can read. */
  async write(name: string, data: string | Uint8Array): Promise<void> {
    const temp = this.path(`.${name}.${randomBytes(6).toString("hex")}`);
    await writeFile(temp, data, { mode: 0o600, flag: "wx" });
    try {
      if (isPrivileged() && this.user.uid !== process.getuid?.()) await chown(temp, this.user.uid, this.user.gid);
      await rename(temp, this.path(name));
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  async remove(name: string): Promise<void> {
    await rm(this.path(name), { force: true });
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Fails with a message that names the directory, instead of spawn's bare ENOENT. */
export async function checkWorkingDirectory(cwd: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(cwd)).isDirectory();
  } catch {
    throw new Error(`working directory ${cwd} does not exist`);
  }
  if (!isDirectory) throw new Error(`working directory ${cwd} is not a directory`);
}

/** One run of a driver's program. Its process group dies with it. */
export class DriverProcess {
  readonly pid: number | undefined;
  /** Resolves once the process has exited and its pipes are drained (or given up on). */
  readonly exited: Promise<ProcessExit>;
  private readonly child: ChildProcessWithoutNullStreams;
  private done = false;
  private diagnostics = "";

  constructor(options: DriverProcessOptions) {
    // Through the launcher, which closes every descriptor but stdio (user-spawn.ts).
    const launch = launchAs(options.user, options.command, options.args, { pty: false });
    const env = { ...baseEnvironment(options.user), ...options.env };
    this.child = spawn(launch.file, [...launch.args], { cwd: options.cwd, env, detached: true, stdio: ["pipe", "pipe", "pipe"], ...launchIds(launch) });
    this.pid = this.child.pid;
    const child = this.child;
    // Writes to a process that just died fail with EPIPE; the exit handler reports the death.
    child.stdin.on("error", () => undefined);
    child.stdout.on("data", options.onStdout);
    child.stderr.on("data", options.onStderr);

    const pipesClosed = Promise.all([
      new Promise<void>((resolve) => child.stdout.once("close", () => resolve())),
      new Promise<void>((resolve) => child.stderr.once("close", () => resolve())),
    ]);
    this.exited = new Promise<ProcessExit>((resolve) => {
      child.on("error", (err) => {
        if (this.pid !== undefined) return; // a later error about a started process: "exit" reports it
        this.done = true;
        resolve({ code: null, signal: null, spawnError: err.message });
      });
      child.once("exit", (code, signal) => {
        this.done = true;
        if (this.pid !== undefined) {
          // Whatever the cell left running in the group (background jobs) goes with the shell.
          killGroup(this.pid);
          live.delete(this.pid);
        }
        let timer: NodeJS.Timeout | undefined;
        const drained = new Promise<void>((r) => {
          timer = setTimeout(r, PIPE_DRAIN_MS);
        });
        void Promise.race([pipesClosed, drained]).then(() => {
          clearTimeout(timer);
          resolve({ code, signal });
        });
      });
    });
    if (this.pid !== undefined) {
      installExitHook();
      live.add(this.pid);
      raiseOomScore(this.pid);
    }
  }

  get hasExited(): boolean {
    return this.done;
  }

  write(data: string | Uint8Array): void {
    if (!this.done && this.child.stdin.writable) this.child.stdin.write(data);
  }

  /** Signals the whole group; nothing once the process is gone. */
  signal(signal: NodeJS.Signals): void {
    if (this.done || this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // ESRCH: exited meanwhile.
    }
  }

  /** Keeps the end of what the program itself said on a side channel, for error messages. */
  noteDiagnostic(text: string): void {
    this.diagnostics = (this.diagnostics + text).slice(-DIAGNOSTIC_TAIL_CHARS);
  }

  get diagnosticTail(): string {
    return this.diagnostics.trim();
  }

  async kill(): Promise<ProcessExit> {
    // Once the process has exited its group was killed already, and its pid may be reused.
    if (this.pid !== undefined && !this.done) killGroup(this.pid);
    return this.exited;
  }
}

export function describeExit(exit: ProcessExit): string {
  if (exit.spawnError !== undefined) return `could not start: ${exit.spawnError}`;
  if (exit.signal !== null) return `killed by ${exit.signal}`;
  return `exited with status ${exit.code ?? "unknown"}`;
}
