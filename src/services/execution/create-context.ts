import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { ContextSchema, type Context, type CreateContextRequest } from "../../gen/sandboxagent/api_pb.js";
import { callerOf } from "../caller.js";
import type { ContextRegistry } from "./contexts.js";

/** Language and cwd are echoed exactly as sent: the SDKs compare them with what they asked for. */
export async function createContext(req: CreateContextRequest, ctx: HandlerContext, contexts: ContextRegistry): Promise<Context> {
  const user = callerOf(ctx);
  const context = await contexts.create(req.language, req.cwd, user);
  if (ctx.signal.aborted) {
    // Nobody will ever learn this context's id: do not keep its kernel running.
    await contexts.destroy(context.id, user);
    throw new ConnectError("the caller went away while the context was being created", Code.Canceled);
  }
  return create(ContextSchema, {
    id: context.id,
    language: req.language,
    cwd: req.cwd,
    createdAt: timestampFromDate(context.createdAt),
  });
}
