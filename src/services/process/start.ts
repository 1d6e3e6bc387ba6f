import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { StartResponseSchema, type StartRequest, type StartResponse } from "../../gen/sandboxagent/api_pb.js";
import { SpawnError } from "./executable.js";
import { followAs } from "./follow.js";
import type { ManagedProcess } from "./managed-process.js";
import { actingUser } from "./owner.js";
import { planStart } from "./plan.js";
import type { ProcessTable } from "./table.js";
import type { SandboxSettings } from "../../sandbox-settings.js";
import { placeholderOf } from "../connect-fixes/preencoded.js";

const PLACEHOLDER = placeholderOf(StartResponseSchema);

/** The limit as the client stated it (the deadline's remaining time is a millisecond or so less). */
function timeLimitMs(ctx: HandlerContext): number | undefined {
  const stated = ctx.requestHeader.get("connect-timeout-ms");
  if (stated !== null && /^\d{1,10}$/.test(stated)) return Number(stated);
  return ctx.timeoutMs();
}

/**
 * Starts a process and streams its events. The request's deadline (`Connect-Timeout-Ms`) is the
 * command's time limit: the process group is killed when it passes, whether or not the client is
 * still there, and the stream ends with the end event followed by `deadline_exceeded`. A client
 * that leaves earlier only detaches.
 */
export async function* start(table: ProcessTable, settings: SandboxSettings, req: StartRequest, ctx: HandlerContext): AsyncGenerator<StartResponse> {
  const limitMs = timeLimitMs(ctx);
  const plan = await planStart(req, actingUser(ctx), settings);
  // A client that gave up while the checks ran would never learn the pid: start nothing for it.
  if (ctx.signal.aborted) throw ctx.signal.reason instanceof ConnectError ? ctx.signal.reason : new ConnectError("cancelled", Code.Canceled);
  let proc: ManagedProcess;
  try {
    proc = await table.start(plan);
  } catch (err) {
    if (err instanceof SpawnError) throw new ConnectError(err.message, err.code);
    throw err;
  }
  // Measured again after spawning: the time the checks took counts against the limit.
  const remainingMs = ctx.timeoutMs();
  if (limitMs !== undefined && remainingMs !== undefined) proc.limitTime(limitMs, remainingMs);

  yield* followAs(proc, ctx, (event) => create(StartResponseSchema, { event }), PLACEHOLDER);

  const timedOut = proc.timedOutAfterMs;
  if (timedOut !== undefined && !ctx.signal.aborted) {
    throw new ConnectError(`command exceeded its time limit of ${timedOut} ms and was killed`, Code.DeadlineExceeded);
  }
}
