import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { StatResponseSchema, type StatRequest, type StatResponse } from "../../gen/sandboxagent/api_pb.js";
import { fsConnectError } from "../../errors.js";
import { fileAccessFor } from "../../user-fs/access.js";
import { callerOf } from "../caller.js";
import { entryInfo } from "./entry-info.js";
import { resolveFor } from "./resolve.js";

/** Stat reports a symlink itself (lstat), with its target, rather than what it points to. */
export async function stat(req: StatRequest, ctx: HandlerContext): Promise<StatResponse> {
  const user = callerOf(ctx);
  const path = resolveFor(req.path, user);
  try {
    return create(StatResponseSchema, { entry: await entryInfo(fileAccessFor(user), path) });
  } catch (err) {
    throw fsConnectError(err, "stat", path);
  }
}
