import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { lstat, rename } from "node:fs/promises";
import { posix } from "node:path";
import { MoveResponseSchema, type MoveRequest, type MoveResponse } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, fsConnectError } from "../../errors.js";
import { mkdirOwned } from "../../ownership.js";
import { callerOf } from "../caller.js";
import { moveAcrossFilesystems } from "./copy-tree.js";
import { entryInfo } from "./entry-info.js";
import { resolveFor } from "./resolve.js";

/**
 * rename(2) semantics (an existing file at the destination is replaced, an empty directory may be
 * replaced, anything else is an error), extended across file systems by copying. Missing parents
 * of the destination are created and owned by the caller, as envd does: the SDKs offer no option
 * for it, and "move into a new folder" is the common case.
 */
export async function move(req: MoveRequest, ctx: HandlerContext): Promise<MoveResponse> {
  const user = callerOf(ctx);
  // An empty path would mean the caller's home: moving it away is never what an unset variable meant.
  if (req.source.trim() === "" || req.destination.trim() === "") {
    throw new ConnectError("invalid path: move: a source and a destination are required", Code.InvalidArgument);
  }
  const source = resolveFor(req.source, user);
  const destination = resolveFor(req.destination, user);
  try {
    // Checked first so that a missing source does not leave new destination parents behind.
    await lstat(source);
    await mkdirOwned(posix.dirname(destination), user);
    await rename(source, destination).catch(async (err: unknown) => {
      if (errnoOf(err) !== "EXDEV") throw err;
      await moveAcrossFilesystems(source, destination);
    });
    return create(MoveResponseSchema, { entry: await entryInfo(destination) });
  } catch (err) {
    throw fsConnectError(err, `rename ${source}`, destination);
  }
}
