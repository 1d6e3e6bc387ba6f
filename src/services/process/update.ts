import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { UpdateResponseSchema, type UpdateRequest, type UpdateResponse } from "../../gen/sandboxagent/api_pb.js";
import { TerminalClosedError } from "../../supervisor/child.js";
import { MAX_PTY_SIDE } from "./limits.js";
import { actingUser } from "./owner.js";
import type { ProcessTable } from "./table.js";

/** Resizes a process's terminal; the kernel tells the foreground job with SIGWINCH. */
export function update(table: ProcessTable, req: UpdateRequest, ctx: HandlerContext): UpdateResponse {
  const proc = table.find(req.process, { exited: false, caller: actingUser(ctx) });
  const size = req.pty?.size;
  if (size === undefined) throw new ConnectError("nothing to update: give pty.size", Code.InvalidArgument);
  if (size.cols === 0 || size.rows === 0) throw new ConnectError(`invalid terminal size ${size.cols}x${size.rows}`, Code.InvalidArgument);
  if (size.cols > MAX_PTY_SIDE || size.rows > MAX_PTY_SIDE)
    throw new ConnectError(`terminal size ${size.cols}x${size.rows} is too large`, Code.InvalidArgument);
  if (proc.kind !== "pty") throw new ConnectError(`process ${proc.pid} has no terminal to resize`, Code.FailedPrecondition);
  try {
    proc.resize(size.cols, size.rows);
  } catch (err) {
    if (err instanceof TerminalClosedError) throw new ConnectError(err.message, Code.FailedPrecondition);
    throw err;
  }
  return create(UpdateResponseSchema);
}
