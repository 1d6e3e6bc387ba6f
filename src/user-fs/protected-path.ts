/**
 * Where a path leads for a caller about to write through it, following symlinks the way Linux's
 * fs.protected_symlinks would if it covered every directory that others can write: a symlink that
 * belongs to someone else, in a directory someone other than the caller (or root) can write, is
 * not followed. Without this, a user who plants `~/notes.txt -> /etc/passwd` in their own home
 * gets that file replaced by the next upload a more privileged caller makes there.
 *
 * For a non-root caller the walk runs on its file worker, so it also sees only what that user may.
 */
import { posix } from "node:path";
import type { FileAccess, FileStats } from "./access.js";

/** Linux's own limit on symlinks followed while resolving one path. */
const MAX_LINKS = 40;

export class ProtectedSymlinkError extends Error {
  readonly code = "EACCES";
}

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** Whether someone other than `uid` (and root) may add or replace entries in the directory. */
function writableByOthers(dir: FileStats, uid: number): boolean {
  return (dir.mode & 0o022) !== 0 || (dir.uid !== uid && dir.uid !== 0);
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === "ENOENT";

/**
 * The real path `path` names for writing. `followLast` says whether a symlink as the last component
 * leads on (writing a file's content) or is the thing acted on (rename, remove). Components that do
 * not exist yet are appended as they are: the operation creates them.
 */
export async function resolveForWriting(access: FileAccess, path: string, followLast: boolean): Promise<string> {
  // Fast path, one call: a path without symlinks is already where it leads.
  try {
    if ((await access.realpath(path)) === path) return path;
  } catch {
    // missing or unreadable parts: the walk below says what they are
  }
  const uid = access.user.uid;
  const pending = path.split("/").filter((name) => name !== "").reverse();
  let resolved = "/";
  let dirStats = await access.lstat("/");
  let links = 0;
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (name === ".") continue;
    if (name === "..") {
      resolved = posix.dirname(resolved);
      dirStats = await access.lstat(resolved);
      continue;
    }
    const candidate = posix.join(resolved, name);
    let st: FileStats;
    try {
      st = await access.lstat(candidate);
    } catch (err) {
      if (!isMissing(err)) throw err;
      return posix.join(candidate, ...pending.reverse());
    }
    const isLast = pending.length === 0;
    if (st.isSymbolicLink() && (!isLast || followLast)) {
      if (st.uid !== uid && writableByOthers(dirStats, uid)) {
        throw new ProtectedSymlinkError(
          `permission denied: ${candidate} is a symlink owned by uid ${st.uid} in a directory other users can write; it is not followed`,
        );
      }
      if (++links > MAX_LINKS) throw errnoError("ELOOP", `too many levels of symbolic links: ${path}`);
      const target = await access.readlink(candidate);
      pending.push(...target.split("/").filter((part) => part !== "").reverse());
      if (target.startsWith("/")) {
        resolved = "/";
        dirStats = await access.lstat("/");
      }
      continue;
    }
    if (isLast) return candidate;
    if (!st.isDirectory()) throw errnoError("ENOTDIR", `not a directory: ${candidate}`);
    resolved = candidate;
    dirStats = st;
  }
  return resolved;
}
