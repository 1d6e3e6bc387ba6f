/**
 * A Jupyter kernel as a Kernel: a process (launcher.ts) plus a ZeroMQ session (session.ts), ready
 * once it answers kernel_info on shell and IOPub, watched through its process exit and heartbeat,
 * and prepared with its language's start-up hook after every (re)start.
 */
import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../log.js";
import { giveTo } from "../../ownership.js";
import { reaped } from "../../proc-stat.js";
import {
  KernelDiedError,
  type ExecuteOptions,
  type ExecuteOutcome,
  type Kernel,
  type KernelEvent,
  type KernelFactory,
  type KernelOptions,
  type KernelState,
} from "../kernel.js";
import { hooksFor, type LanguageHooks } from "./hooks.js";
import type { KernelSpec } from "./kernelspecs.js";
import { launchKernel, type KernelExit, type KernelProcess } from "./launcher.js";
import { KernelSession, type RequestHandlers } from "./session.js";
import type { JsonObject, JupyterMessage } from "./wire.js";

/** R and Java kernels take seconds to start on a busy machine; Python about half a second. */
const READY_TIMEOUT_MS = 60_000;
const KERNEL_INFO_RETRY_MS = 1_000;
const IOPUB_CONFIRM_MS = 500;
/** Generous: a kernel on a loaded two-core machine can be slow to echo and still be fine. */
const HEARTBEAT_INTERVAL_MS = 3_000;
const HEARTBEAT_TIMEOUT_MS = 3_000;
const HEARTBEAT_MISSES_ALLOWED = 3;
const INTERRUPT_REPLY_MS = 2_000;
const ABORTED_RETRIES = 3;
const ABORTED_RETRY_MS = 250;

export class KernelStartError extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function describeExit(exit: KernelExit): string {
  const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code ?? "unknown"}`;
  return `the kernel process ${how}`;
}

function lastLines(text: string, count = 15): string {
  return text.trim().split("\n").slice(-count).join("\n");
}

/** Where a running kernel is: process and session change on every restart, the rest stays. */
interface Incarnation {
  readonly process: KernelProcess;
  readonly session: KernelSession;
}

export interface JupyterKernelOptions extends KernelOptions {
  readonly spec: KernelSpec;
  readonly log?: Logger;
}

export class JupyterKernel implements Kernel {
  readonly name: string;
  private readonly hooks: LanguageHooks;
  private current: Incarnation | undefined;
  private stateNow: KernelState = "starting";
  private cwd: string;
  private stopped = false;
  private readonly deathListeners: Array<(reason: string) => void> = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private interruptRequested = false;

  private constructor(private readonly options: JupyterKernelOptions) {
    this.name = options.spec.name;
    this.hooks = hooksFor(options.spec);
    this.cwd = options.cwd;
  }

  static async start(options: JupyterKernelOptions): Promise<JupyterKernel> {
    const kernel = new JupyterKernel(options);
    await kernel.boot();
    return kernel;
  }

  get state(): KernelState {
    return this.stateNow;
  }

  get pid(): number | undefined {
    return this.current?.process.pid;
  }

  /** Whether per-execution environment variables can be applied in this kernel's language. */
  get supportsEnv(): boolean {
    return this.hooks.pushEnv !== undefined && this.hooks.popEnv !== undefined;
  }

  get canChangeDirectory(): boolean {
    return this.hooks.chdir !== undefined;
  }

  onDeath(listener: (reason: string) => void): void {
    this.deathListeners.push(listener);
  }

  async catchUp(): Promise<void> {
    const incarnation = this.current;
    if (incarnation === undefined || !reaped(incarnation.process.pid)) return;
    // exitedOnItsOwn was chained on `exited` first, so it has run when this await returns.
    await incarnation.process.exited;
  }

  private async boot(): Promise<void> {
    this.stateNow = "starting";
    if (this.stopped) {
      this.stateNow = "dead";
      throw new KernelStartError("kernel shut down while starting");
    }
    const child = await launchKernel({
      spec: this.options.spec,
      user: this.options.user,
      cwd: this.cwd,
      env: this.options.env,
      bindTimeoutMs: READY_TIMEOUT_MS,
    });
    const session = new KernelSession(child.connection, this.options.user.name, (err) =>
      this.options.log?.debug({ kernel: this.name, err: err.message }, "kernel protocol error"),
    );
    session.open();
    try {
      await this.waitReady(child, session);
      const incarnation = { process: child, session };
      this.current = incarnation;
      void child.exited.then((exit) => this.exitedOnItsOwn(incarnation, describeExit(exit)));
      await this.runStartup(session);
      if (this.stopped) throw new KernelStartError("kernel shut down while starting");
      if (this.current !== incarnation) throw new KernelStartError(`${this.name} kernel died while starting`);
      this.stateNow = "idle";
      this.scheduleHeartbeat(incarnation, 0);
    } catch (err) {
      session.close();
      await child.destroy();
      if (this.current?.process === child) this.current = undefined;
      this.stateNow = "dead";
      throw err;
    }
  }

  private async waitReady(child: KernelProcess, session: KernelSession): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const exited = child.exited.then((exit) => exit);
    while (Date.now() < deadline && !this.stopped) {
      let confirmIopub: () => void = () => undefined;
      const iopubSeen = new Promise<"iopub">((resolve) => (confirmIopub = () => resolve("iopub")));
      const { msgId, reply } = session.request("shell", "kernel_info_request", {}, { onIopub: () => confirmIopub() });
      reply.catch(() => undefined);
      const first = await Promise.race([reply.then(() => "reply" as const), sleep(KERNEL_INFO_RETRY_MS).then(() => "wait" as const), exited]);
      if (typeof first === "object") {
        session.release(msgId);
        const output = lastLines(first.output);
        throw new KernelStartError(`${this.name} kernel failed to start: ${describeExit(first)}${output ? `\n${output}` : ""}`);
      }
      if (first === "reply") {
        // The reply proves shell works; an IOPub message for it proves we are subscribed in time.
        const confirmed = await Promise.race([iopubSeen, sleep(IOPUB_CONFIRM_MS).then(() => "late" as const)]);
        session.release(msgId);
        if (confirmed === "iopub") return;
      } else {
        session.release(msgId);
      }
    }
    throw new KernelStartError(`${this.name} kernel did not become ready within ${READY_TIMEOUT_MS / 1000} s`);
  }

  private async runStartup(session: KernelSession): Promise<void> {
    const code = this.hooks.startup?.();
    if (code === undefined) return;
    try {
      await this.silent(session, code);
    } catch (err) {
      // The kernel still runs code; it only lacks the extras (chart data) the start-up adds.
      this.options.log?.warn({ kernel: this.name, err: (err as Error).message }, "kernel start-up code failed");
    }
  }

  /**
   * Misses count only once the kernel has answered a heartbeat: one that never implemented the
   * heartbeat channel is left alone rather than killed.
   */
  private scheduleHeartbeat(incarnation: Incarnation, misses: number, answered = false): void {
    if (this.current !== incarnation || this.stopped) return;
    this.heartbeatTimer = setTimeout(async () => {
      if (this.current !== incarnation || incarnation.session.closed) return;
      const alive = await incarnation.session.ping(HEARTBEAT_TIMEOUT_MS);
      const missed = alive || !answered ? 0 : misses + 1;
      if (missed > HEARTBEAT_MISSES_ALLOWED) {
        // Alive as a process but deaf: as good as dead. Killing it lets the exit path report it.
        this.options.log?.warn({ kernel: this.name, pid: incarnation.process.pid }, "kernel stopped answering heartbeats; killing it");
        incarnation.process.signal("SIGKILL");
        return;
      }
      this.scheduleHeartbeat(incarnation, missed, answered || alive);
    }, HEARTBEAT_INTERVAL_MS);
    this.heartbeatTimer.unref();
  }

  private exitedOnItsOwn(incarnation: Incarnation, reason: string): void {
    if (this.current !== incarnation || this.stopped) return; // restarted or shut down on purpose
    this.current = undefined;
    this.stateNow = "dead";
    incarnation.session.close(new KernelDiedError(reason));
    void incarnation.process.destroy();
    for (const listener of this.deathListeners) listener(reason);
  }

  private live(): Incarnation {
    if (this.current === undefined || this.stateNow === "dead") throw new KernelDiedError("the kernel is not running");
    return this.current;
  }

  /** Runs agent code that the user never sees: no output, no history, no execution count. */
  private async silent(session: KernelSession, code: string): Promise<void> {
    const reply = await this.executeRequest(session, {
      code,
      silent: true,
      store_history: false,
      user_expressions: {},
      allow_stdin: false,
      stop_on_error: false,
    });
    if (reply.content.status !== "ok") {
      throw new Error(`${String(reply.content.ename ?? "error")}: ${String(reply.content.evalue ?? reply.content.status)}`);
    }
  }

  /**
   * An execute_request, asked again when the kernel aborted it without being interrupted: tslab
   * refuses every request for a moment after a failed cell (yunabe/tslab#19), whatever
   * stop_on_error says. An interrupted cell is never asked again (IRkernel answers those "abort").
   */
  private async executeRequest(session: KernelSession, content: JsonObject, handlers?: RequestHandlers): Promise<JupyterMessage> {
    this.interruptRequested = false;
    for (let attempt = 0; ; attempt++) {
      const { reply } = await session.complete("shell", "execute_request", content, handlers);
      const status = reply.content.status;
      if ((status !== "abort" && status !== "aborted") || this.interruptRequested || attempt >= ABORTED_RETRIES) return reply;
      await sleep(ABORTED_RETRY_MS);
      if (this.interruptRequested) return reply;
    }
  }

  /** Writes a value for a hook to read: private to the kernel's user, deleted by the hook. */
  private async handOff(incarnation: Incarnation, value: unknown): Promise<string> {
    const file = join(incarnation.process.dir, `handoff-${randomBytes(8).toString("hex")}.json`);
    // The directory is the kernel user's: "wx" never writes through a link that stands in the way.
    await writeFile(file, JSON.stringify(value), { mode: 0o600, flag: "wx" });
    await giveTo(file, this.options.user);
    return file;
  }

  /** Moves a running kernel (one taken from the warm pool) to a context's directory. */
  async changeDirectory(cwd: string): Promise<void> {
    const chdir = this.hooks.chdir;
    if (chdir === undefined) throw new Error(`cannot change the directory of a running ${this.name} kernel`);
    const incarnation = this.live();
    const file = await this.handOff(incarnation, cwd);
    try {
      await this.silent(incarnation.session, chdir(file));
      this.cwd = cwd;
    } finally {
      await rm(file, { force: true });
    }
  }

  async execute(code: string, options: ExecuteOptions): Promise<ExecuteOutcome> {
    const incarnation = this.live();
    const { session } = incarnation;
    const names = Object.keys(options.env);
    if (names.length > 0 && !this.supportsEnv) {
      throw new Error(`environment variables are not supported by the ${this.name} kernel`);
    }
    this.stateNow = "busy";
    let envFile: string | undefined;
    try {
      if (names.length > 0) {
        envFile = await this.handOff(incarnation, options.env);
        await this.silent(session, this.hooks.pushEnv!(envFile));
      }
      let reportedError = false;
      let stderr = "";
      const handlers: RequestHandlers = {
        onIopub: (message) => {
          const event = toKernelEvent(message, this.hooks.valuesAsDisplays === true);
          if (event === undefined) return;
          if (event.kind === "error") reportedError = true;
          if (event.kind === "stderr") stderr = (stderr + event.text).slice(-STDERR_KEPT_FOR_ERRORS);
          options.onEvent(event);
        },
        onStdin: (message) => this.refuseInput(session, message, options.onEvent),
        settleMs: this.hooks.settleMs,
      };
      const reply = await this.executeRequest(
        session,
        { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: false },
        handlers,
      );
      const raw = reply.content.status;
      const status = raw === "ok" ? "ok" : raw === "aborted" || raw === "abort" ? "aborted" : "error";
      if (status === "error" && !reportedError) options.onEvent(errorFromReply(reply.content, stderr));
      const executionCount = typeof reply.content.execution_count === "number" ? reply.content.execution_count : 0;
      if (names.length > 0) {
        await this.silent(session, this.hooks.popEnv!).catch((err: Error) =>
          this.options.log?.warn({ kernel: this.name, err: err.message }, "could not restore environment variables"),
        );
      }
      return { status, executionCount };
    } finally {
      if (envFile !== undefined) await rm(envFile, { force: true });
      if (this.stateNow === "busy" && this.current === incarnation) this.stateNow = "idle";
    }
  }

  /**
   * Kernels are asked with allow_stdin=false, so well-behaved ones raise an error themselves. One
   * that asks anyway gets an empty line back (so it does not hang) and the caller hears about it.
   */
  private refuseInput(session: KernelSession, message: JupyterMessage, onEvent: (event: KernelEvent) => void): void {
    if (message.header.msg_type !== "input_request") return;
    onEvent({
      kind: "input_request",
      prompt: typeof message.content.prompt === "string" ? message.content.prompt : "",
      password: message.content.password === true,
    });
    void session.replyStdin(message, "input_reply", { value: "" }).catch(() => undefined);
  }

  async interrupt(): Promise<void> {
    const incarnation = this.current;
    if (incarnation === undefined) return;
    this.interruptRequested = true;
    if (this.options.spec.interruptMode === "message") {
      const { msgId, reply } = incarnation.session.request("control", "interrupt_request", {});
      await Promise.race([reply, sleep(INTERRUPT_REPLY_MS)]).catch(() => undefined);
      incarnation.session.release(msgId);
    } else {
      incarnation.process.signal("SIGINT");
    }
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new KernelDiedError("the kernel was shut down");
    await this.stopCurrent(new KernelDiedError("the kernel was restarted"));
    await this.boot();
  }

  private async stopCurrent(reason: Error): Promise<void> {
    clearTimeout(this.heartbeatTimer);
    const incarnation = this.current;
    this.current = undefined;
    this.stateNow = "dead";
    if (incarnation === undefined) return;
    incarnation.session.close(reason);
    await incarnation.process.destroy();
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.stopCurrent(new KernelDiedError("the kernel was shut down"));
  }
}

/** How much of a failing cell's stderr is kept to describe an error the kernel did not report. */
const STDERR_KEPT_FOR_ERRORS = 16 * 1024;
const ERROR_LINE = /^((?:[A-Za-z_$][\w$.]*)?(?:Error|Exception))(?: \[[^\]]*\])?: (.*)$/m;

/**
 * Some kernels (tslab) fail a cell with no `error` message, only stderr and an error reply. The
 * caller still gets an error: from the reply's ename/evalue if present, else from the first
 * `SomeError: message` line on stderr, else the first line of stderr.
 */
export function errorFromReply(content: JsonObject, stderr: string): KernelEvent {
  const traceback = Array.isArray(content.traceback) ? content.traceback.map(String) : stderr === "" ? [] : [stderr];
  if (typeof content.ename === "string" && content.ename !== "") {
    return { kind: "error", name: content.ename, value: typeof content.evalue === "string" ? content.evalue : "", traceback };
  }
  const match = ERROR_LINE.exec(stderr);
  if (match !== null) return { kind: "error", name: match[1]!, value: match[2]!, traceback };
  const firstLine = stderr
    .split("\n")
    .find((line) => line.trim() !== "")
    ?.trim();
  return { kind: "error", name: "Error", value: firstLine ?? "the kernel reported a failure without details", traceback };
}

function text(value: unknown): string {
  if (typeof value === "string") return value;
  // nbformat allows multi-line strings as lists of lines; some kernels send them that way.
  if (Array.isArray(value)) return value.map(String).join("");
  return "";
}

const isImage = (mime: string): boolean => mime.startsWith("image/") || mime === "application/pdf";

/**
 * IOPub vocabulary to KernelEvent; status and execute_input carry nothing for the caller. With
 * `valuesAsDisplays`, an anonymous display without images is the value of an expression.
 */
export function toKernelEvent(message: JupyterMessage, valuesAsDisplays = false): KernelEvent | undefined {
  const content: JsonObject = message.content;
  const data = (typeof content.data === "object" && content.data !== null ? content.data : {}) as Record<string, unknown>;
  const transient = (typeof content.transient === "object" && content.transient !== null ? content.transient : {}) as Record<string, unknown>;
  const displayId = typeof transient.display_id === "string" ? transient.display_id : undefined;
  switch (message.header.msg_type) {
    case "stream":
      return { kind: content.name === "stderr" ? "stderr" : "stdout", text: text(content.text) };
    case "execute_result":
      return { kind: "result", data, executionCount: typeof content.execution_count === "number" ? content.execution_count : 0 };
    case "display_data":
      if (valuesAsDisplays && displayId === undefined && !Object.keys(data).some(isImage)) {
        return { kind: "result", data, executionCount: 0 };
      }
      return { kind: "display", data, displayId };
    case "update_display_data":
      return { kind: "display", data, displayId, update: true };
    case "error":
      return {
        kind: "error",
        name: typeof content.ename === "string" ? content.ename : "Error",
        value: typeof content.evalue === "string" ? content.evalue : "",
        traceback: Array.isArray(content.traceback) ? content.traceback.map(String) : [],
      };
    case "clear_output":
      return { kind: "clear", wait: content.wait === true };
    default:
      return undefined;
  }
}

/** A KernelFactory for one kernelspec. */
export function jupyterFactory(spec: KernelSpec, log?: Logger): KernelFactory & { readonly spec: KernelSpec } {
  return {
    spec,
    description: `${spec.name} (Jupyter: ${spec.displayName})`,
    create: (options) => JupyterKernel.start({ ...options, spec, log }),
  };
}
