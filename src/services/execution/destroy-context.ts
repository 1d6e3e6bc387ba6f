import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { DestroyContextResponseSchema, type DestroyContextRequest, type DestroyContextResponse } from "../../gen/sandboxagent/api_pb.js";
import { callerOf } from "../caller.js";
import type { ContextRegistry } from "./contexts.js";

/** Shuts the context's kernel down; an execution still running in it ends with an error event. */
export async function destroyContext(req: DestroyContextRequest, ctx: HandlerContext, contexts: ContextRegistry): Promise<DestroyContextResponse> {
  await contexts.destroy(req.contextId, callerOf(ctx));
  return create(DestroyContextResponseSchema, { success: true });
}
