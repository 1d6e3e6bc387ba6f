import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { StatResponseSchema, type StatRequest, type StatResponse } from "../../gen/sandboxagent/api_pb.js";
import { fsConnectError } from "../../errors.js";
import { resolvePath } from "../../paths.js";
import { callerOf } from "../caller.js";
import { entryInfo } from "./entry-info.js";

export async function stat(req: StatRequest, ctx: HandlerContext): Promise<StatResponse> {
  let path = req.path;
  try {
    path = resolvePath(req.path, callerOf(ctx));
    return create(StatResponseSchema, { entry: await entryInfo(path) });
  } catch (err) {
    throw fsConnectError(err, "stat", path);
  }
}
