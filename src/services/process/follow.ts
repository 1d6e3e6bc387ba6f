/**
 * What Start and Connect stream to a client: `start{pid}` at once, then the replay buffer, live
 * output and the end event, with keepalives while the stream is idle. The client leaving only
 * detaches it; the process runs on.
 */
import { ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { ProcessEvent } from "../../gen/sandboxagent/api_pb.js";
import { frameSlot } from "../connect-fixes/preencoded.js";
import { keepaliveIntervalMs } from "../keepalive.js";
import { KEEPALIVE, startEvent } from "./events.js";
import type { ManagedProcess } from "./managed-process.js";
import { outputFrame } from "./output-frame.js";

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

/**
 * follow() as the RPC's response messages. Where the call allows it, output goes as frames encoded
 * here and `placeholder` stands in for each (connect-fixes/preencoded.ts).
 */
export async function* followAs<R>(proc: ManagedProcess, ctx: HandlerContext, respond: (event: ProcessEvent) => R, placeholder: R): AsyncGenerator<R> {
  const slot = frameSlot(ctx);
  for await (const event of follow(proc, ctx)) {
    const output = event.event.case === "data" ? event.event.value.output : undefined;
    if (slot !== undefined && output?.case !== undefined) {
      slot.put(outputFrame(output.case, output.value));
      yield placeholder;
    } else {
      yield respond(event);
    }
  }
}
