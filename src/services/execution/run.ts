/**
 * One execution on a context, from waiting its turn to its last frame, with the control rules:
 *
 * - Executions on a context run one at a time, in order (queue.ts). The time limit counts from the
 *   request, so waiting in line uses it up too; a caller that leaves while waiting never runs.
 * - When the time limit passes or the caller goes away, the kernel is interrupted. If the code has
 *   not stopped within a grace period the kernel is restarted (its state is lost). Either way the
 *   caller (if still there) gets an `error` event named ExecutionTimeoutError saying which, and the
 *   stream then ends normally: the SDK keeps the output it received and reports the error, where
 *   an end-of-stream error would make it drop everything.
 * - A kernel that dies during the execution ends it with a DeadKernelError event; the next
 *   execution starts a new kernel. A kernel that died between executions is restarted before the
 *   next one, which is told on stderr that earlier state is gone. A kernel a caller restarts
 *   (ContextRegistry.restart) ends the execution with a ContextRestarting event.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { KernelDiedError, type ExecuteOutcome } from "../../kernels/kernel.js";
import type { Logger } from "../../log.js";
import type { ExecutionContext } from "./contexts.js";
import type { ExecutionSink } from "./results.js";

/** How long an interrupted execution gets to stop before its kernel is restarted. */
export const INTERRUPT_GRACE_MS = 2_000;

export interface RunOptions {
  readonly code: string;
  readonly env: Readonly<Record<string, string>>;
  /** Aborted when the caller goes away, or (connect-es does this) when its own deadline passes. */
  readonly signal: AbortSignal;
  /** Time limit in ms from now; undefined for none. */
  readonly limitMs: number | undefined;
  /** Where the execution's events go, in the caller's wire format. */
  readonly sink: ExecutionSink;
  readonly log?: Logger;
}

type Stop = "timeout" | "cancelled";

function isDeadline(reason: unknown): boolean {
  return reason instanceof ConnectError && reason.code === Code.DeadlineExceeded;
}

/** Settles with why the execution must stop: its time limit or its caller leaving. */
function watchStop(signal: AbortSignal, limitMs: number | undefined): { stopped: Promise<Stop>; controller: AbortController; dispose: () => void } {
  const controller = new AbortController();
  let settle: (stop: Stop) => void = () => undefined;
  const stopped = new Promise<Stop>((resolve) => {
    settle = (stop) => {
      if (!controller.signal.aborted) controller.abort(stop);
      resolve(stop);
    };
  });
  const onAbort = (): void => settle(isDeadline(signal.reason) ? "timeout" : "cancelled");
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  const timer = limitMs === undefined ? undefined : setTimeout(() => settle("timeout"), Math.max(0, limitMs));
  return {
    stopped,
    controller,
    dispose: () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    },
  };
}

const sleep = (ms: number): Promise<"grace"> => new Promise((resolve) => setTimeout(() => resolve("grace"), ms));

function limitText(limitMs: number | undefined): string {
  return limitMs === undefined ? "" : ` of ${limitMs} ms`;
}

export async function runExecution(context: ExecutionContext, options: RunOptions): Promise<void> {
  const results = options.sink;
  const watch = watchStop(options.signal, options.limitMs);
  const { kernel } = context;
  let release: (() => void) | undefined;
  try {
    if (Object.keys(options.env).length > 0 && !kernel.supportsEnv) {
      throw new ConnectError(`envVars are not supported for language ${JSON.stringify(context.language)} (kernel ${kernel.name})`, Code.FailedPrecondition);
    }
    try {
      release = await context.queue.acquire(watch.controller.signal);
    } catch {
      const stop = await watch.stopped;
      if (stop === "timeout") {
        results.error(
          "ExecutionTimeoutError",
          `the time limit${limitText(options.limitMs)} passed while waiting for earlier executions in this context; the code did not run`,
          "",
        );
      }
      return;
    }
    if (context.destroyed) throw new ConnectError(`context ${context.id} was destroyed`, Code.NotFound);

    await kernel.catchUp();
    const deathNotice = context.takeDeathNotice();
    if (kernel.state === "dead") {
      context.countRestart();
      await kernel.restart().catch((err: Error) => {
        throw new ConnectError(`cannot restart the ${kernel.name} kernel: ${err.message}`, Code.Unavailable);
      });
      if (deathNotice !== undefined) {
        results.stderr(`[sandbox-agent] ${deathNotice}; a new kernel was started and earlier state is lost\n`);
      }
    }

    const restartsBefore = context.restarts;
    const startedAt = new Date();
    const execution = kernel.execute(options.code, { env: options.env, onEvent: results.onEvent });
    const first = await Promise.race([
      execution.then(
        () => "done" as const,
        () => "done" as const,
      ),
      watch.stopped,
    ]);

    let stop: Stop | undefined;
    let restarted = false;
    if (first !== "done") {
      stop = first;
      await kernel.interrupt().catch(() => undefined);
      const settled = await Promise.race([
        execution.then(
          () => "done" as const,
          () => "done" as const,
        ),
        sleep(INTERRUPT_GRACE_MS),
      ]);
      if (settled === "grace") {
        restarted = true;
        options.log?.info({ context: context.id, kernel: kernel.name }, "execution ignored an interrupt; restarting its kernel");
        context.countRestart();
        await kernel.restart().catch((err: Error) => options.log?.warn({ context: context.id, err: err.message }, "kernel restart failed"));
      }
    }

    let outcome: ExecuteOutcome | undefined;
    let died: Error | undefined;
    try {
      outcome = await execution;
    } catch (err) {
      died = err as Error;
    }
    const finishedAt = new Date();

    if (outcome?.status === "ok" && !results.refusedInput) {
      results.finishOk({ startedAt, finishedAt, executionCount: outcome.executionCount });
      return;
    }
    results.finishFailed(outcome?.executionCount);
    const listening = !options.signal.aborted;
    const limit = `the execution exceeded its time limit${limitText(options.limitMs)}`;
    if (context.destroyed) {
      results.error("ContextDestroyedError", `context ${context.id} was destroyed during the execution`, "");
    } else if (died instanceof KernelDiedError && context.restarts !== restartsBefore) {
      // E2B's name for it; its kernel is already running again, without the earlier state.
      results.error("ContextRestarting", `context ${context.id} was restarted during the execution: its variables and imports are lost`, "");
    } else if (died !== undefined && !(died instanceof KernelDiedError)) {
      throw died instanceof ConnectError ? died : new ConnectError(died.message, Code.Internal);
    } else if (stop === "timeout") {
      let value: string;
      if (restarted) value = `${limit} and did not stop when interrupted, so its kernel was restarted: variables and imports of this context are lost`;
      else if (died !== undefined)
        value = `${limit}; when interrupted, ${died.message}, so the next execution starts a new kernel: variables and imports of this context are lost`;
      else value = `${limit} and was interrupted; the context keeps its state`;
      results.error("ExecutionTimeoutError", value, "");
      // A caller still reading has been told; one that left hears about it at its next execution.
      if (listening) context.takeDeathNotice();
    } else if (died !== undefined && stop === undefined) {
      context.takeDeathNotice();
      results.error("DeadKernelError", `${died.message} during the execution; the next execution starts a new kernel, and earlier state is lost`, "");
    } else if (outcome?.status === "aborted") {
      results.error("ExecutionAbortedError", "the kernel aborted the execution without running it", "");
    }
  } finally {
    watch.dispose();
    release?.();
  }
}
