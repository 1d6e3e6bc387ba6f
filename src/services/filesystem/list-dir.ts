import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { posix } from "node:path";
import { ListDirResponseSchema, type EntryInfo, type ListDirRequest, type ListDirResponse } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, fsConnectError } from "../../errors.js";
import { fileAccessFor, type FileAccess } from "../../user-fs/access.js";
import { FsPool } from "../../user-fs/fs-pool.js";
import { callerOf } from "../caller.js";
import { buildEntry, linkInfo, memoizedNames, type Names } from "./entry-info.js";
import { resolveFor } from "./resolve.js";

/** libuv runs four file-system calls at a time by default; more queued keeps it fed. */
const CONCURRENCY = 64;

/**
 * Lists a directory `depth` levels deep (0 and 1 both mean direct children; the SDK sends 999 for
 * "recursive"). Entries come in pre-order, as `find` walks: each directory's children sorted by
 * name, each subdirectory followed by its own contents, with full paths. Symlinks are listed but
 * never followed, so a link cycle cannot loop. Below the top level, a directory that vanishes or
 * cannot be read during the walk is listed without its contents rather than failing the listing.
 */
export async function listDir(req: ListDirRequest, ctx: HandlerContext): Promise<ListDirResponse> {
  const user = callerOf(ctx);
  const path = resolveFor(req.path, user);
  const access = fileAccessFor(user);
  try {
    // stat, not lstat: a symlink to a directory names that directory, as `ls link/` does.
    if (!(await access.stat(path)).isDirectory()) {
      throw new ConnectError(`invalid path: list ${path}: not a directory`, Code.InvalidArgument);
    }
    const walk: Walk = { access, pool: new FsPool(CONCURRENCY, ctx.signal), names: memoizedNames() };
    const entries = await listLevels(walk, path, Math.max(1, req.depth));
    return create(ListDirResponseSchema, { entries });
  } catch (err) {
    throw fsConnectError(err, "list", path);
  }
}

interface Walk {
  readonly access: FileAccess;
  readonly pool: FsPool;
  readonly names: Names;
}

async function listLevels(walk: Walk, dir: string, levels: number): Promise<EntryInfo[]> {
  const paths = (await walk.pool.run(() => walk.access.readdir(dir))).sort().map((name) => posix.join(dir, name));
  const stats = await walk.access.lstatAll(paths, walk.pool);
  // Plain entries are built on the spot; only symlinks (one more lookup) and directories to
  // descend into wait for anything. Tens of thousands of needless promises cost more than the walk.
  const parts: Array<EntryInfo | Promise<EntryInfo[]>> = [];
  let waiting = false;
  for (let i = 0; i < paths.length; i++) {
    const path = paths[i]!;
    const st = stats[i]!;
    if (st instanceof Error) {
      // Deleted between readdir and lstat: simply no longer there.
      if (isGone(st)) continue;
      throw st;
    }
    if (st.isSymbolicLink()) {
      parts.push(walk.pool.run(() => linkInfo(walk.access, path)).then((link) => [buildEntry(path, st, walk.names, link)]));
      waiting = true;
    } else if (levels > 1 && st.isDirectory()) {
      const entry = buildEntry(path, st, walk.names);
      parts.push(listLevels(walk, path, levels - 1).then((below) => [entry, ...below], unreadable([entry])));
      waiting = true;
    } else {
      parts.push(buildEntry(path, st, walk.names));
    }
  }
  if (!waiting) return parts as EntryInfo[];
  return (await Promise.all(parts)).flat();
}

/** A subdirectory that cannot be walked is still listed, without its contents. */
function unreadable(listed: EntryInfo[]): (err: unknown) => EntryInfo[] {
  return (err) => {
    if (isGone(err) || errnoOf(err) === "EACCES" || errnoOf(err) === "EPERM") return listed;
    throw err;
  };
}

const isGone = (err: unknown): boolean => errnoOf(err) === "ENOENT" || errnoOf(err) === "ENOTDIR";
