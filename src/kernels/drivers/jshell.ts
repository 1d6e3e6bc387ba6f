/**
 * The built-in Java kernel: one JVM per context running a small launcher (jshell-launcher.ts) over
 * the jdk.jshell API, so imports, variables, methods and classes carry over from cell to cell.
 *
 * Framing. The agent and the launcher exchange binary frames (frames.ts) on the JVM's stdin and
 * stdout; user code's System.out and System.err are replaced by streams that travel as their own
 * frame types, so they stay apart from each other and from the protocol. A cell is split into
 * snippets as jshell does, run until the first error, and answered with the value of its trailing
 * expression (a `result`, like Jupyter's execute_result), a compile error (`CompilationError`) or
 * an exception (its class name, message and stack), then a done frame.
 *
 * Environment. JShell runs the code in the launcher's own JVM (local execution engine), where the
 * launcher writes the per-execution variables into the map behind System.getenv() (which child
 * processes inherit too) and restores them after the cell. The values arrive as frame data: they
 * are never part of the code jshell compiles.
 *
 * Interrupt. A stop frame makes the launcher call JShell.stop(), which stops the running snippet
 * (a busy loop or a sleep alike) and keeps the state.
 *
 * The launcher is compiled once per JDK into a cache directory; the JVM starts in under a second
 * and a kernel is created started, so contexts are ready when created.
 */
import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { TextDecoder } from "node:util";
import { environmentProblem } from "../../env-vars.js";
import { runToEnd } from "../../supervisor/run.js";
import type { KernelOptions } from "../kernel.js";
import { DriverKernel, type BuiltinDriverFactory, type CellOutcome, type CellRequest, type DriverSession } from "./driver-kernel.js";
import { checkWorkingDirectory, DriverProcess, describeExit, runtimeDirectory, type ProcessExit } from "./driver-process.js";
import { findJdk, type Jdk } from "./executables.js";
import { decodeStrings, encodeFrame, encodeStrings, FrameError, FrameReader, type Frame } from "./frames.js";
import { LAUNCHER_CLASS, LAUNCHER_SOURCE } from "./jshell-launcher.js";

/**
 * Serial GC: a smaller, faster-starting JVM, which suits one JVM per context. The java.util opening
 * is what lets the launcher write the environment map.
 */
const JVM_OPTIONS = ["-XX:+UseSerialGC", "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8", "--add-opens", "java.base/java.util=ALL-UNNAMED"];

export interface JShellDriverConfig {
  /** The JDK to use; found from JAVA_HOME or the `jshell` on PATH when not given. */
  readonly jdk?: Jdk;
  /** Where the compiled launcher is cached across agent runs. */
  readonly cacheDir?: string;
}

function defaultCacheDir(): string {
  if (process.getuid?.() === 0) return "/var/cache/sandbox-agent";
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg?.startsWith("/") ? xdg : join(homedir(), ".cache"), "sandbox-agent");
}

/**
 * Only a directory the agent itself owns and nobody else can write is trusted to hold classes
 * that every Java kernel (root's included) will load.
 */
async function isTrusted(path: string): Promise<boolean> {
  try {
    const st = await lstat(path);
    return st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** javac refused the launcher: no other cache location would change that. */
class LauncherCompileError extends Error {}

async function compileInto(dir: string, jdk: Jdk): Promise<void> {
  const source = join(dir, `${LAUNCHER_CLASS}.java`);
  await writeFile(source, LAUNCHER_SOURCE, { mode: 0o644 });
  let failure: string | undefined;
  try {
    const ran = await runToEnd(jdk.javac, ["-nowarn", "-d", dir, source], { cwd: dir, timeoutMs: 120_000 });
    if (ran.timedOut) failure = "javac took longer than 120 s";
    else if (ran.exit.kind !== "exited" || ran.exit.code !== 0)
      failure = ran.stderr.trim() || ran.stdout.trim() || `javac ended with ${JSON.stringify(ran.exit)}`;
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  }
  if (failure !== undefined) throw new LauncherCompileError(`cannot compile the jshell launcher with ${jdk.javac}: ${failure}`);
  // Kernels run as other users: they must be able to read the classes.
  await chmod(dir, 0o755);
  for (const name of await readdir(dir)) await chmod(join(dir, name), 0o644);
}

/** The compiled launcher's directory, compiled at most once per JDK and launcher version. */
async function compiledLauncher(jdk: Jdk, cacheRoot: string): Promise<string> {
  const key = createHash("sha256").update(LAUNCHER_SOURCE).update("\0").update(jdk.javac).digest("hex").slice(0, 16);
  const target = join(cacheRoot, `jshell-launcher-${key}`);
  const classFile = `${LAUNCHER_CLASS}.class`;
  const ready = async (): Promise<boolean> => (await isTrusted(target)) && (await readdir(target)).includes(classFile);
  try {
    if (await ready()) return target;
    await mkdir(cacheRoot, { recursive: true, mode: 0o755 });
    if (!(await isTrusted(cacheRoot))) throw new Error(`${cacheRoot} is writable by others`);
    const temp = await mkdtemp(join(cacheRoot, ".build-"));
    try {
      await compileInto(temp, jdk);
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      // Another agent may have won the race to the same target.
      if (!(await ready())) throw err;
    }
    return target;
  } catch (err) {
    if (err instanceof LauncherCompileError) throw err;
    // No usable cache (read-only or foreign): compile for this agent run only.
    const temp = await runtimeDirectory("jshell-launcher");
    await compileInto(temp, jdk);
    return temp;
  }
}

class JShellSession implements DriverSession {
  private readonly frames = new FrameReader();
  private readonly process: DriverProcess;
  private onFrame: ((frame: Frame) => void) | undefined;
  private readonly readyFrame: Promise<void>;

  private constructor(jdk: Jdk, classDir: string, options: KernelOptions) {
    let readyResolve!: () => void;
    this.readyFrame = new Promise((resolve) => {
      readyResolve = resolve;
    });
    this.onFrame = (frame) => {
      if (frame.type === "K") {
        this.onFrame = undefined;
        readyResolve();
      }
    };
    this.process = new DriverProcess({
      user: options.user,
      cwd: options.cwd,
      env: options.env,
      command: jdk.java,
      args: [...JVM_OPTIONS, "-cp", classDir, LAUNCHER_CLASS],
      onStdout: (chunk) => this.receive(chunk),
      // The JVM's own messages (warnings, crash reports): kept to explain a death, not user output.
      onStderr: (chunk) => this.process.noteDiagnostic(chunk.toString("utf8")),
    });
  }

  static async start(jdk: Jdk, classDir: string, options: KernelOptions): Promise<JShellSession> {
    await checkWorkingDirectory(options.cwd);
    const session = new JShellSession(jdk, classDir, options);
    const outcome = await Promise.race([session.readyFrame.then(() => undefined), session.process.exited]);
    if (outcome !== undefined) {
      const said = session.process.diagnosticTail;
      throw new Error(`java ${describeExit(outcome)}${said === "" ? "" : `: ${said}`}`);
    }
    return session;
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

  private receive(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.frames.push(chunk);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      // A stream that is not frames cannot be resynchronised: end the JVM, which reports the death.
      this.process.noteDiagnostic(`protocol error: ${err.message}`);
      void this.process.kill();
      return;
    }
    // Frames between executions (a thread the cell left printing) belong to no execution.
    for (const frame of frames) this.onFrame?.(frame);
  }

  run(request: CellRequest): Promise<CellOutcome> {
    return new Promise((resolve) => {
      const stdout = new TextDecoder("utf-8");
      const stderr = new TextDecoder("utf-8");
      const emit = (kind: "stdout" | "stderr", text: string): void => {
        if (text !== "") request.onEvent({ kind, text });
      };
      const flush = (): void => {
        emit("stdout", stdout.decode());
        emit("stderr", stderr.decode());
      };
      let settled = false;
      const settle = (outcome: CellOutcome): void => {
        if (settled) return;
        settled = true;
        this.onFrame = undefined;
        flush();
        resolve(outcome);
      };
      this.onFrame = (frame) => {
        switch (frame.type) {
          case "O":
            emit("stdout", stdout.decode(frame.payload, { stream: true }));
            break;
          case "E":
            emit("stderr", stderr.decode(frame.payload, { stream: true }));
            break;
          case "R": {
            const [text = ""] = decodeStrings(frame.payload);
            request.onEvent({ kind: "result", data: { "text/plain": text }, executionCount: request.executionCount });
            break;
          }
          case "F": {
            flush();
            const [name = "Error", value = "", ...traceback] = decodeStrings(frame.payload);
            request.onEvent({ kind: "error", name, value, traceback });
            break;
          }
          case "D": {
            const [, status] = decodeStrings(frame.payload);
            settle({ kind: "done", status: status === "ok" ? "ok" : "error" });
            break;
          }
          default:
            break;
        }
      };
      void this.process.exited.then((exit) => settle({ kind: "exited", exit }));
      const fields = [String(request.executionCount), request.code];
      for (const [name, value] of Object.entries(request.env)) fields.push(name, value);
      this.process.write(encodeFrame("X", encodeStrings(fields)));
    });
  }

  async interrupt(): Promise<void> {
    this.process.write(encodeFrame("S", Buffer.alloc(0)));
  }

  async kill(): Promise<void> {
    await this.process.kill();
  }
}

class JShellKernel extends DriverKernel {
  readonly name = "builtin-jshell";

  constructor(
    private readonly jdk: Jdk,
    private readonly classDir: string,
    private readonly options: KernelOptions,
  ) {
    super();
  }

  protected startSession(): Promise<DriverSession> {
    return JShellSession.start(this.jdk, this.classDir, this.options);
  }

  protected environmentProblem(env: Readonly<Record<string, string>>): string | undefined {
    return environmentProblem(env);
  }

  protected exitError(code: number): { name: string; value: string } {
    return { name: "SystemExit", value: `exit status ${code}: the JVM exited; the next execution starts a new one (state is lost)` };
  }
}

export function createJShellDriverFactory(config: JShellDriverConfig = {}): BuiltinDriverFactory {
  let jdk: Promise<Jdk | undefined> | undefined;
  let launcher: Promise<string> | undefined;
  const locate = (): Promise<Jdk | undefined> => {
    jdk ??= config.jdk !== undefined ? Promise.resolve(config.jdk) : findJdk();
    return jdk;
  };
  const factory: BuiltinDriverFactory = {
    description: "java (built-in jshell)",
    available: async () => (await locate()) !== undefined,
    async create(options: KernelOptions) {
      const found = await locate();
      if (found === undefined) {
        jdk = undefined; // installed later, perhaps: look again next time
        throw new Error("jshell is not installed (a JDK, e.g. Debian's default-jdk-headless, provides it)");
      }
      launcher ??= compiledLauncher(found, config.cacheDir ?? defaultCacheDir());
      let classDir: string;
      try {
        classDir = await launcher;
      } catch (err) {
        launcher = undefined;
        throw err;
      }
      const kernel = new JShellKernel(found, classDir, options);
      await kernel.start();
      return kernel;
    },
  };
  return factory;
}
