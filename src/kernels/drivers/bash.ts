/**
 * The built-in bash kernel: one persistent `bash --noprofile --norc` per context, so variables,
 * functions, aliases, options and the working directory carry over from cell to cell.
 *
 * Framing. The agent writes each cell to a file and sends the shell one fixed control line that
 * sources it (user code never travels inside a command line) with stdin from /dev/null (so `read`
 * cannot eat the control channel), then prints a marker that is random per execution, followed by
 * the cell's status, on both stdout and stderr: each stream is complete when its marker arrives.
 * The markers go to copies of the original descriptors, so a cell that redirects its own output
 * (`exec >file`) cannot swallow them.
 *
 * Environment. Per-execution variables go in a NUL-separated KEY=VALUE file read with `read -d ''`
 * and exported by the shell itself; their previous values (or their absence) are restored after
 * the cell, and the file is removed. Values are data all the way: never parsed as code.
 *
 * Interrupt. SIGINT goes to the shell's process group, so a foreground program the cell runs stops
 * as it would at a terminal. The cell itself runs in the shell (it must, to keep its state), and a
 * non-interactive shell would otherwise just go on with the cell's next command; so the shell's INT
 * trap makes it unwind: with `extdebug`, a DEBUG trap returning 2 acts as `return` in any function
 * or sourced file, which unwinds the cell, however deep in its functions, up to the control line.
 * A signal that arrives before the shell has begun the cell (still reading the control line) would
 * find nothing to unwind, so the agent first writes the execution's token to an `interrupt` file,
 * which the shell checks once it has marked itself busy: one of the two always catches the cell.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { environmentProblem } from "../../env-vars.js";
import type { KernelOptions } from "../kernel.js";
import { DriverKernel, type BuiltinDriverFactory, type CellOutcome, type CellRequest, type DriverSession } from "./driver-kernel.js";
import { checkWorkingDirectory, DriverFiles, DriverProcess, describeExit, type ProcessExit } from "./driver-process.js";
import { findExecutable } from "./executables.js";
import { SentinelScanner } from "./sentinel.js";

/** Single-quoted for the shell; only ever used on paths the agent itself made. */
const shellQuote = (text: string): string => `'${text.replaceAll("'", `'\\''`)}'`;

const INIT_SCRIPT = readFileSync(new URL("./programs/bash-driver.sh", import.meta.url), "utf8");

/** Sent once at start (programs/bash-driver.sh), after the driver's directory. */
function initScript(dir: string): string {
  return `__sa_dir=${shellQuote(dir)}\n${INIT_SCRIPT}`;
}

/** The control line for one cell: fixed text apart from the agent's own random token. */
const controlLine = (token: string, withEnv: boolean): string =>
  `__sa_pre ${token} ${withEnv ? 1 : 0}; builtin source "$__sa_dir/cell.sh" </dev/null; __sa_post ${token}\n`;

const newToken = (): string => randomBytes(12).toString("hex");
const markerFor = (token: string): string => `\x1eSA${token}:`;

export interface BashDriverConfig {
  /** The bash to run; found on PATH when not given. */
  readonly bash?: string;
}

class BashSession implements DriverSession {
  private readonly stdout = new SentinelScanner();
  private readonly stderr = new SentinelScanner();
  private readonly process: DriverProcess;
  /** The running execution's token, while there is one. */
  private token: string | undefined;

  private constructor(
    bash: string,
    options: KernelOptions,
    private readonly files: DriverFiles,
  ) {
    this.process = new DriverProcess({
      user: options.user,
      cwd: options.cwd,
      env: options.env,
      command: bash,
      args: ["--noprofile", "--norc"],
      onStdout: (chunk) => this.stdout.push(chunk),
      onStderr: (chunk) => this.stderr.push(chunk),
    });
  }

  static async start(bash: string, options: KernelOptions): Promise<BashSession> {
    await checkWorkingDirectory(options.cwd);
    const files = await DriverFiles.create("bash", options.user);
    const session = new BashSession(bash, options, files);
    try {
      await session.ready();
      return session;
    } catch (err) {
      await session.kill();
      throw err;
    }
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get exited(): Promise<ProcessExit> {
    return this.process.exited;
  }

  get hasExited(): boolean {
    return this.process.hasExited;
  }

  private async ready(): Promise<void> {
    const token = newToken();
    const finished = this.awaitMarkers(
      token,
      (text) => this.process.noteDiagnostic(text),
      (text) => this.process.noteDiagnostic(text),
    );
    this.process.write(initScript(this.files.dir));
    this.process.write(`__sa_post ${token}\n`);
    const outcome = await finished;
    if (outcome.kind === "exited") {
      const said = this.process.diagnosticTail;
      throw new Error(`bash ${describeExit(outcome.exit)}${said === "" ? "" : `: ${said}`}`);
    }
  }

  /** Routes both streams to one execution until both markers arrive, or the process ends. */
  private awaitMarkers(
    token: string,
    onStdout: (text: string) => void,
    onStderr: (text: string) => void,
  ): Promise<{ kind: "done"; status: string } | { kind: "exited"; exit: ProcessExit }> {
    const marker = markerFor(token);
    return new Promise((resolve) => {
      let status: string | undefined;
      let pending = 2;
      const end = (): void => {
        if (--pending === 0) resolve({ kind: "done", status: status ?? "" });
      };
      this.stdout.arm(marker, onStdout, (s) => {
        status = s;
        end();
      });
      this.stderr.arm(marker, onStderr, () => end());
      void this.process.exited.then((exit) => {
        if (pending === 0) return;
        this.stdout.flush();
        this.stderr.flush();
        pending = 0;
        resolve({ kind: "exited", exit });
      });
    });
  }

  async run(request: CellRequest): Promise<CellOutcome> {
    const withEnv = Object.keys(request.env).length > 0;
    const token = newToken();
    this.token = token;
    let outcome: Awaited<ReturnType<BashSession["awaitMarkers"]>>;
    try {
      await this.files.write("cell.sh", request.code);
      if (withEnv) {
        const records = Object.entries(request.env).map(([name, value]) => `${name}=${value}\0`);
        await this.files.write("env", records.join(""));
      }
      const finished = this.awaitMarkers(
        token,
        (text) => request.onEvent({ kind: "stdout", text }),
        (text) => request.onEvent({ kind: "stderr", text }),
      );
      this.process.write(controlLine(token, withEnv));
      outcome = await finished;
    } finally {
      this.token = undefined;
      // The values may be secrets: they stay on disk no longer than the cell runs.
      if (withEnv) await this.files.remove("env").catch(() => undefined);
      await this.files.remove("interrupt").catch(() => undefined);
    }
    if (outcome.kind === "exited") return outcome;
    const status = Number.parseInt(outcome.status, 10);
    if (status === 0) return { kind: "done", status: "ok" };
    if (request.interrupted()) {
      request.onEvent({ kind: "error", name: "Interrupted", value: "the execution was interrupted", traceback: [] });
    } else {
      request.onEvent({ kind: "error", name: "CommandError", value: `exit status ${Number.isNaN(status) ? outcome.status : status}`, traceback: [] });
    }
    return { kind: "done", status: "error" };
  }

  async interrupt(): Promise<void> {
    const token = this.token;
    if (token === undefined) return;
    await this.files.write("interrupt", `${token}\n`).catch(() => undefined);
    if (this.token === token) this.process.signal("SIGINT");
  }

  async kill(): Promise<void> {
    await this.process.kill();
    await this.files.dispose();
  }
}

class BashKernel extends DriverKernel {
  readonly name = "builtin-bash";

  constructor(
    private readonly bash: string,
    private readonly options: KernelOptions,
  ) {
    super();
  }

  protected startSession(): Promise<DriverSession> {
    return BashSession.start(this.bash, this.options);
  }

  protected environmentProblem(env: Readonly<Record<string, string>>): string | undefined {
    return environmentProblem(env, { shellNames: true });
  }

  protected exitError(code: number): { name: string; value: string } {
    return { name: "ShellExited", value: `exit status ${code}: the shell exited; the next execution starts a new one (state is lost)` };
  }
}

export function createBashDriverFactory(config: BashDriverConfig = {}): BuiltinDriverFactory {
  const locate = async (): Promise<string | undefined> => config.bash ?? (await findExecutable("bash"));
  return {
    description: "bash (built-in)",
    available: async () => (await locate()) !== undefined,
    async create(options: KernelOptions) {
      const bash = await locate();
      if (bash === undefined) throw new Error("bash is not installed");
      const kernel = new BashKernel(bash, options);
      await kernel.start();
      return kernel;
    },
  };
}
