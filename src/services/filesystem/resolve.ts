/** The second beat of every Filesystem handler: the caller's path, resolved for the caller. */
import type { User } from "../../users.js";
import { invalidPath } from "../../errors.js";
import { resolvePath } from "../../paths.js";

/** Resolves `path` for `user`; a path that cannot be used becomes `invalid_argument`. */
export function resolveFor(path: string, user: User): string {
  try {
    return resolvePath(path, user);
  } catch (err) {
    throw invalidPath(err);
  }
}
