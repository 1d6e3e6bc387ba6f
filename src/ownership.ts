/**
 * Files and directories the agent creates belong to the caller, not to the agent: the one place
 * that gives them away. Without privileges (an agent not running as root) ownership stays as is.
 */
import { lchown } from "node:fs/promises";
import { isPrivileged, type User } from "./users.js";

export async function giveTo(path: string, user: User): Promise<void> {
  if (!isPrivileged()) return;
  await lchown(path, user.uid, user.gid);
}
