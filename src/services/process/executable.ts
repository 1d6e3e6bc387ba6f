/**
 * Finds the program a request names the way execvp would, as the user who will run it, so that a
 * command that cannot start is refused with a clear message before anything is spawned (a child
 * that fails to exec only leaves an exit status and a line of stderr behind).
 */
import { Code } from "@connectrpc/connect";
import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { posix } from "node:path";
import { errnoOf } from "../../errors.js";
import type { User } from "../../users.js";

export class SpawnError extends Error {
  constructor(
    message: string,
    readonly code: Code,
  ) {
    super(message);
  }
}

function mayExecute(st: Stats, user: User): boolean {
  if (user.uid === 0) return (st.mode & 0o111) !== 0;
  if (st.uid === user.uid) return (st.mode & 0o100) !== 0;
  if (user.groups.includes(st.gid)) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

type Probe = { readonly ok: true } | { readonly ok: false; readonly reason: "missing" | "directory" | "denied" };

async function probe(path: string, user: User): Promise<Probe> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (err) {
    const errno = errnoOf(err);
    return { ok: false, reason: errno === "EACCES" ? "denied" : "missing" };
  }
  if (st.isDirectory()) return { ok: false, reason: "directory" };
  if (!st.isFile() || !mayExecute(st, user)) return { ok: false, reason: "denied" };
  return { ok: true };
}

function failure(cmd: string, reason: "missing" | "directory" | "denied"): SpawnError {
  switch (reason) {
    case "missing":
      return new SpawnError(`fork/exec ${cmd}: no such file or directory`, Code.NotFound);
    case "directory":
      return new SpawnError(`fork/exec ${cmd}: is a directory`, Code.InvalidArgument);
    case "denied":
      return new SpawnError(`fork/exec ${cmd}: permission denied`, Code.PermissionDenied);
  }
}

/**
 * Checks that `cmd` can be executed by `user`: a path containing a slash is taken relative to the
 * working directory, a bare name is searched in PATH. Throws SpawnError with Go's wording.
 */
export async function checkExecutable(cmd: string, pathVar: string, cwd: string, user: User): Promise<void> {
  if (cmd.includes("/")) {
    const found = await probe(posix.resolve(cwd, cmd), user);
    if (!found.ok) throw failure(cmd, found.reason);
    return;
  }
  let denied = false;
  for (const dir of pathVar.split(":")) {
    const found = await probe(posix.resolve(cwd, dir === "" ? "." : dir, cmd), user);
    if (found.ok) return;
    if (found.reason === "denied") denied = true;
  }
  // execvp reports EACCES when it saw a match it could not run and found nothing better.
  if (denied) throw new SpawnError(`exec: ${JSON.stringify(cmd)}: permission denied`, Code.PermissionDenied);
  throw new SpawnError(`exec: ${JSON.stringify(cmd)}: executable file not found in $PATH`, Code.NotFound);
}
