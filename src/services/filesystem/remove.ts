import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { RemoveResponseSchema, type RemoveRequest, type RemoveResponse } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, fsConnectError } from "../../errors.js";
import { fileAccessFor } from "../../user-fs/access.js";
import { anchorForWriting } from "../../user-fs/protected-path.js";
import { removeAnchored } from "../../user-fs/remove-tree.js";
import { callerOf } from "../caller.js";
import { resolveFor } from "./resolve.js";

/**
 * `rm -rf`, as the caller: directories go with their contents, symlinks are removed rather than
 * followed, and a path that is not there is removed already (envd's os.RemoveAll; the platform's
 * backend and the SDK's `files.remove` rely on it). Anything else that fails is reported.
 */
export async function remove(req: RemoveRequest, ctx: HandlerContext): Promise<RemoveResponse> {
  const user = callerOf(ctx);
  // Elsewhere an empty path means the caller's home; here one unset variable in a client would
  // wipe it. Like rm's --preserve-root, refuse that and `/`.
  if (req.path.trim() === "") throw new ConnectError("invalid path: remove: a path is required", Code.InvalidArgument);
  const asked = resolveFor(req.path, user);
  if (asked === "/") throw new ConnectError("invalid path: remove /: refusing to remove the root directory", Code.InvalidArgument);
  const access = fileAccessFor(user);
  try {
    const anchor = await anchorForWriting(access, asked, { followLast: false, makeParents: false });
    try {
      await removeAnchored(access, anchor);
    } finally {
      await anchor.close();
    }
    return create(RemoveResponseSchema, {});
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return create(RemoveResponseSchema, {});
    throw fsConnectError(err, "remove", asked);
  }
}
