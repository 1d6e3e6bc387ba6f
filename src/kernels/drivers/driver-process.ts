/**
 * What both built-in drivers share about their process: started by the supervisor as the caller's
 * user in its own process group (so an interrupt or a kill reaches everything a cell started, and
 * the group dies with the driver and with the agent), and a private directory the agent writes
 * cells into.
 *
 * A driver speaks with the agent over its stdio only: anonymous socketpairs that exist in the agent
 * and the driver process alone, so no other user can reach them (the driver's own user could, as
 * they can reach anything of their own). Its private directory lives in the agent's runtime
 * directory (runtime-dir.ts), which goes when the agent exits, and after a crash at the next start.
 */
import { randomBytes } from "node:crypto";
import { chown, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Child, Exit } from "../../supervisor/child.js";
import { supervise } from "../../supervisor/supervisor.js";
import { baseEnvironment, launchAs } from "../../user-spawn.js";
import { isPrivileged, type User } from "../../users.js";
import { newRuntimeDirectory } from "../runtime-dir.js";

/** How much of a process's diagnostic output is kept to explain why it failed. */
const DIAGNOSTIC_TAIL_CHARS = 4096;

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

function processExit(exit: Exit): ProcessExit {
  if (exit.kind === "exited") return { code: exit.code, signal: null };
  // Pipe children report signals by name; only terminals give numbers, and drivers have none.
  return { code: null, signal: typeof exit.signal === "string" ? exit.signal : "SIGKILL" };
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
  /** Resolves once the process has exited and its pipes are drained (or given up on). */
  readonly exited: Promise<ProcessExit>;
  /** The child once forked; undefined when it could not start. Writes wait for it. */
  private readonly started: Promise<Child | undefined>;
  private child: Child | undefined;
  private done = false;
  private diagnostics = "";

  constructor(options: DriverProcessOptions) {
    // Through the launcher, which closes every descriptor but stdio (user-spawn.ts).
    const launch = launchAs(options.user, options.command, options.args, { pty: false });
    const env = { ...baseEnvironment(options.user), ...options.env };
    let reportExit: (exit: ProcessExit) => void = () => {};
    this.exited = new Promise<ProcessExit>((resolve) => {
      reportExit = resolve;
    });
    this.started = supervise(
      // Whatever a cell left running in the group (background jobs) goes with the process.
      { cmd: options.command, launch, env, cwd: options.cwd, io: { kind: "pipes", stdin: true }, killGroupOnExit: true },
      {
        onOutput: (stream, chunk) => (stream === "stderr" ? options.onStderr(chunk) : options.onStdout(chunk)),
        onExit: (exit) => {
          this.done = true;
          reportExit(processExit(exit));
        },
      },
    ).then(
      (child) => {
        this.child = child;
        return child;
      },
      (err: unknown) => {
        this.done = true;
        reportExit({ code: null, signal: null, spawnError: err instanceof Error ? err.message : String(err) });
        return undefined;
      },
    );
  }

  /** Known once the process has been forked (a driver session awaits that before it is handed out). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get hasExited(): boolean {
    return this.done;
  }

  write(data: string | Uint8Array): void {
    if (this.done) return;
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    // Writes to a process that just died fail with EPIPE; the exit reports the death.
    const send = (child: Child | undefined): void => void child?.write(bytes).catch(() => undefined);
    // Before the fork completes, writes queue behind it in call order.
    if (this.child !== undefined) send(this.child);
    else void this.started.then(send);
  }

  /** Signals the whole group; nothing once the process is gone. */
  signal(signal: NodeJS.Signals): void {
    if (this.done) return;
    if (this.child !== undefined) this.child.signal(signal);
    else void this.started.then((child) => child?.signal(signal));
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
    this.signal("SIGKILL");
    return this.exited;
  }
}

export function describeExit(exit: ProcessExit): string {
  if (exit.spawnError !== undefined) return `could not start: ${exit.spawnError}`;
  if (exit.signal !== null) return `killed by ${exit.signal}`;
  return `exited with status ${exit.code ?? "unknown"}`;
}
