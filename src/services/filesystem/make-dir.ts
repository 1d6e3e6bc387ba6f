import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { MakeDirResponseSchema, type MakeDirRequest, type MakeDirResponse } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, fsConnectError } from "../../errors.js";
import { fileAccessFor } from "../../user-fs/access.js";
import { resolveForWriting } from "../../user-fs/protected-path.js";
import { callerOf } from "../caller.js";
import { entryInfo } from "./entry-info.js";
import { resolveFor } from "./resolve.js";

/**
 * Creates a directory and its missing parents, made by the caller (so they are the caller's). The
 * SDKs treat "it was already there" as a failure they can report, so an existing directory is
 * `already_exists`; a file in the way is `invalid_argument` (asking again will not help).
 */
export async function makeDir(req: MakeDirRequest, ctx: HandlerContext): Promise<MakeDirResponse> {
  const user = callerOf(ctx);
  const path = resolveFor(req.path, user);
  const access = fileAccessFor(user);
  try {
    // mkdir -p answers both questions at once, without a check-then-create race: it returns
    // undefined when the directory existed, and fails with EEXIST when something else is there.
    const created = await access.mkdir(await resolveForWriting(access, path, true), { recursive: true });
    if (created === undefined) {
      throw new ConnectError(`directory already exists: mkdir ${path}: file exists`, Code.AlreadyExists);
    }
    return create(MakeDirResponseSchema, { entry: await entryInfo(access, path) });
  } catch (err) {
    if (errnoOf(err) === "EEXIST") {
      throw new ConnectError(`invalid path: mkdir ${path}: exists and is not a directory`, Code.InvalidArgument);
    }
    throw fsConnectError(err, "mkdir", path);
  }
}
