import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { ConnectResponseSchema, type ConnectRequest, type ConnectResponse } from "../../gen/sandboxagent/api_pb.js";
import { placeholderOf } from "../connect-fixes/preencoded.js";
import { followAs } from "./follow.js";
import { actingUser } from "./owner.js";
import type { ProcessTable } from "./table.js";

const PLACEHOLDER = placeholderOf(ConnectResponseSchema);

/**
 * Attaches to a running (or recently exited) process: `start{pid}`, its recent output from the
 * replay buffer, then live output and the end event. This stream's deadline only detaches it.
 */
export async function* connect(table: ProcessTable, req: ConnectRequest, ctx: HandlerContext): AsyncGenerator<ConnectResponse> {
  const proc = table.find(req.process, { exited: true, caller: actingUser(ctx) });
  yield* followAs(proc, ctx, (event) => create(ConnectResponseSchema, { event }), PLACEHOLDER);
}
