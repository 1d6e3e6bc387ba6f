import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { MoveResponseSchema, type MoveRequest, type MoveResponse } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, fsConnectError } from "../../errors.js";
import { fileAccessFor } from "../../user-fs/access.js";
import { anchorForWriting } from "../../user-fs/protected-path.js";
import { callerOf } from "../caller.js";
import { moveAcrossFilesystems } from "./copy-tree.js";
import { entryInfo } from "./entry-info.js";
import { resolveFor } from "./resolve.js";

/**
 * rename(2) semantics (an existing file at the destination is replaced, an empty directory may be
 * replaced, anything else is an error), extended across file systems by copying. Missing parents
 * of the destination are created by the caller, as envd does: the SDKs offer no option for it,
 * and "move into a new folder" is the common case. Everything runs with the caller's own access,
 * and neither side's directories are reached through a symlink the caller must not follow.
 */
export async function move(req: MoveRequest, ctx: HandlerContext): Promise<MoveResponse> {
  const user = callerOf(ctx);
  // An empty path would mean the caller's home: moving it away is never what an unset variable meant.
  if (req.source.trim() === "" || req.destination.trim() === "") {
    throw new ConnectError("invalid path: move: a source and a destination are required", Code.InvalidArgument);
  }
  const asked = resolveFor(req.source, user);
  const destinationAsked = resolveFor(req.destination, user);
  const access = fileAccessFor(user);
  try {
    const source = await anchorForWriting(access, asked, { followLast: false, makeParents: false });
    try {
      // Checked first so that a missing source does not leave new destination parents behind.
      await access.lstat(source.at);
      const destination = await anchorForWriting(access, destinationAsked, { followLast: false, makeParents: true });
      try {
        await access.rename(source.at, destination.at).catch(async (err: unknown) => {
          if (errnoOf(err) !== "EXDEV") throw err;
          await moveAcrossFilesystems(access, source, destination);
        });
      } finally {
        await destination.close();
      }
    } finally {
      await source.close();
    }
    return create(MoveResponseSchema, { entry: await entryInfo(access, destinationAsked) });
  } catch (err) {
    throw fsConnectError(err, `rename ${asked}`, destinationAsked);
  }
}
