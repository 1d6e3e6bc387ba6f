import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { ListResponseSchema, ProcessInfoSchema, type ListRequest, type ListResponse } from "../../gen/sandboxagent/api_pb.js";
import { actingUser } from "./owner.js";
import type { ProcessTable } from "./table.js";

/** The caller's running processes, everybody's for root (exited ones kept for Connect are not listed). */
export function list(table: ProcessTable, _req: ListRequest, ctx: HandlerContext): ListResponse {
  const processes = table.runningOf(actingUser(ctx)).map((proc) => create(ProcessInfoSchema, { pid: proc.pid, tag: proc.tag, config: proc.config }));
  return create(ListResponseSchema, { processes });
}
