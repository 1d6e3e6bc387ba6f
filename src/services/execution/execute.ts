import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { environmentProblem } from "../../env-vars.js";
import type { ExecuteRequest, ExecuteResponse } from "../../gen/sandboxagent/api_pb.js";
import type { Logger } from "../../log.js";
import type { SandboxSettings } from "../../sandbox-settings.js";
import { callerOf } from "../caller.js";
import type { ContextRegistry, ExecutionContext } from "./contexts.js";
import { FrameQueue } from "./frames.js";
import { ResultStream } from "./results.js";
import { runExecution } from "./run.js";

export interface ExecuteDeps {
  readonly contexts: ContextRegistry;
  /** Time limit for callers that send no Connect-Timeout-Ms; 0 for none. */
  readonly defaultTimeoutMs: number;
  readonly log?: Logger;
  readonly settings: SandboxSettings;
}

function checkEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const problem = environmentProblem(env);
  if (problem !== undefined) throw new ConnectError(problem, Code.InvalidArgument);
  return { ...env };
}

/**
 * The variables an execution gets: the sandbox's reach kernels started before POST /init set them
 * (the warm pool's) through each execution, under the request's own, where the kernel can take them.
 */
export function executionEnv(context: ExecutionContext, settings: SandboxSettings, requested: Record<string, string>): Record<string, string> {
  return context.kernel.supportsEnv ? { ...settings.envVars, ...requested } : requested;
}

/**
 * Runs code in a context (the caller's default one for the language when no id is given) and
 * streams what it prints and shows. The execution goes on if the reader leaves: run.ts then
 * interrupts it, so the context is free for the next caller.
 */
export async function* execute(req: ExecuteRequest, ctx: HandlerContext, deps: ExecuteDeps): AsyncGenerator<ExecuteResponse> {
  const user = callerOf(ctx);
  const requested = checkEnv(req.envVars);
  const context = req.contextId === "" ? await deps.contexts.defaultFor(req.language, user) : deps.contexts.get(req.contextId, user);
  const env = executionEnv(context, deps.settings, requested);
  const limitMs = ctx.timeoutMs() ?? (deps.defaultTimeoutMs > 0 ? deps.defaultTimeoutMs : undefined);
  const frames = new FrameQueue();
  runExecution(context, { code: req.code, env, signal: ctx.signal, limitMs, sink: new ResultStream((frame) => frames.push(frame)), log: deps.log }).then(
    () => frames.end(),
    (err: unknown) => frames.end(err),
  );
  yield* frames.drain();
}
