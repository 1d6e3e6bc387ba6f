import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { ExecuteRequest, ExecuteResponse } from "../../gen/sandboxagent/api_pb.js";
import type { Logger } from "../../log.js";
import { callerOf } from "../caller.js";
import type { ContextRegistry } from "./contexts.js";
import { FrameQueue } from "./frames.js";
import { runExecution } from "./run.js";

export interface ExecuteDeps {
  readonly contexts: ContextRegistry;
  /** Time limit for callers that send no Connect-Timeout-Ms; 0 for none. */
  readonly defaultTimeoutMs: number;
  readonly log?: Logger;
}

/** Names the kernel environments accept: no `=`, no NUL, not empty. Values: no NUL. */
function checkEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  for (const [name, value] of Object.entries(env)) {
    if (name === "" || name.includes("=") || name.includes("\0")) {
      throw new ConnectError(`invalid environment variable name ${JSON.stringify(name)}`, Code.InvalidArgument);
    }
    if (value.includes("\0")) throw new ConnectError(`environment variable ${name} contains a NUL byte`, Code.InvalidArgument);
  }
  return { ...env };
}

/**
 * Runs code in a context (the caller's default one for the language when no id is given) and
 * streams what it prints and shows. The execution goes on if the reader leaves: run.ts then
 * interrupts it, so the context is free for the next caller.
 */
export async function* execute(req: ExecuteRequest, ctx: HandlerContext, deps: ExecuteDeps): AsyncGenerator<ExecuteResponse> {
  const user = callerOf(ctx);
  const env = checkEnv(req.envVars);
  const context = req.contextId === "" ? await deps.contexts.defaultFor(req.language, user) : deps.contexts.get(req.contextId, user);
  const limitMs = ctx.timeoutMs() ?? (deps.defaultTimeoutMs > 0 ? deps.defaultTimeoutMs : undefined);
  const frames = new FrameQueue();
  runExecution(context, { code: req.code, env, signal: ctx.signal, limitMs, emit: (frame) => frames.push(frame), log: deps.log }).then(
    () => frames.end(),
    (err: unknown) => frames.end(err),
  );
  yield* frames.drain();
}
