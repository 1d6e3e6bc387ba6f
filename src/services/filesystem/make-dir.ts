import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { MakeDirResponseSchema, type MakeDirRequest, type MakeDirResponse } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, fsConnectError } from "../../errors.js";
import { fileAccessFor } from "../../user-fs/access.js";
import { anchorForWriting } from "../../user-fs/protected-path.js";
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
    // The parents are made on the way; the last mkdir answers "was it there" without a
    // check-then-create race, and what stands there says which refusal it is.
    const anchor = await anchorForWriting(access, path, { followLast: true, makeParents: true });
    try {
      await access.mkdir(anchor.at, { recursive: false });
    } catch (err) {
      if (errnoOf(err) !== "EEXIST") throw err;
      const there = await access.stat(anchor.at).catch(() => undefined);
      if (there?.isDirectory()) throw new ConnectError(`directory already exists: mkdir ${path}: file exists`, Code.AlreadyExists);
      throw new ConnectError(`invalid path: mkdir ${path}: exists and is not a directory`, Code.InvalidArgument);
    } finally {
      await anchor.close();
    }
    return create(MakeDirResponseSchema, { entry: await entryInfo(access, path) });
  } catch (err) {
    if (errnoOf(err) === "EEXIST") {
      throw new ConnectError(`invalid path: mkdir ${path}: exists and is not a directory`, Code.InvalidArgument);
    }
    throw fsConnectError(err, "mkdir", path);
  }
}
