/**
 * What Start and Connect stream to a client: `start{pid}` at once, then the replay buffer, live
 * output and the end event, with keepalives while the stream is idle. The client leaving only
 * detaches it; the process runs on.
 */
import { ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { ProcessEvent } from "../../gen/sandboxagent/api_pb.js";
import { KEEPALIVE, startEvent } from "./events.js";
import type { ManagedProcess } from "./managed-process.js";
import { keepaliveIntervalMs } from "../keepalive.js";

export async function* follow(proc: ManagedProcess, ctx: HandlerContext): AsyncGenerator<ProcessEvent> {
  // Subscribing before the first yield: nothing the process writes meanwhile can be missed.
  const subscriber = proc.output.subscribe();
  const keepalive = setInterval(() => subscriber.keepalive(KEEPALIVE), keepaliveIntervalMs(ctx.requestHeader));
  try {
    yield startEvent(proc.pid);
    yield* subscriber.events(ctx.signal);
  } finally {
    clearInterval(keepalive);
    subscriber.close();
  }
  // This stream's own deadline passed (a client that left sees nothing either way).
  if (ctx.signal.aborted && ctx.signal.reason instanceof ConnectError) throw ctx.signal.reason;
}
