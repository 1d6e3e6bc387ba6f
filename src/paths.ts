/**
 * Path resolution for a caller: `~` and relative paths resolve against the user's home, and the
 * result is normalised. Symlinks are not resolved here; the file operations follow or report them.
 */
import { posix } from "node:path";
import type { User } from "./users.js";

export class PathError extends Error {}

/** Linux's PATH_MAX: longer paths cannot be opened anyway, so refuse them up front. */
const PATH_MAX = 4096;

export function resolvePath(path: string, user: User): string {
  if (path.includes("\0")) throw new PathError("path contains a NUL byte");
  let expanded = path;
  if (path === "" || path === "~") expanded = user.home;
  else if (path.startsWith("~/")) expanded = posix.join(user.home, path.slice(2));
  else if (path.startsWith("~")) throw new PathError(`cannot expand ${JSON.stringify(path)}: only ~ and ~/ are supported`);
  const resolved = posix.resolve(user.home, expanded);
  if (Buffer.byteLength(resolved) >= PATH_MAX) throw new PathError(`path is longer than ${PATH_MAX - 1} bytes`);
  return resolved;
}
