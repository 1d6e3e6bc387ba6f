/**
 * Files and directories the agent creates belong to the caller, not to the agent: the one place
 * that gives them away. Without privileges (an agent not running as root) ownership stays as is.
 */
import { chown, lchown, mkdir } from "node:fs/promises";
import { posix } from "node:path";
import { isPrivileged, type User } from "./users.js";

export async function giveTo(path: string, user: User): Promise<void> {
  if (!isPrivileged()) return;
  await lchown(path, user.uid, user.gid);
}

/**
 * Creates `dir` and any missing parents, each new one owned by `user`. Returns the first directory
 * it created, or undefined when `dir` already existed.
 */
export async function mkdirOwned(dir: string, user: User): Promise<string | undefined> {
  const first = await mkdir(dir, { recursive: true });
  if (first !== undefined && isPrivileged()) {
    // mkdir reports the topmost directory it created; everything from there down to dir is new.
    for (let current = dir; ; current = posix.dirname(current)) {
      await chown(current, user.uid, user.gid);
      if (current === first || current === "/") break;
    }
  }
  return first;
}
