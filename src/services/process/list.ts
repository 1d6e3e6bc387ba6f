import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { ListResponseSchema, ProcessInfoSchema, type ListRequest, type ListResponse } from "../../gen/sandboxagent/api_pb.js";
import { callerOf } from "../caller.js";
import type { ProcessTable } from "./table.js";

/** The running processes (exited ones kept for Connect are not listed). */
export function list(table: ProcessTable, _req: ListRequest, ctx: HandlerContext): ListResponse {
  callerOf(ctx);
  const processes = table.running().map((proc) => create(ProcessInfoSchema, { pid: proc.pid, tag: proc.tag, config: proc.config }));
  return create(ListResponseSchema, { processes });
}
