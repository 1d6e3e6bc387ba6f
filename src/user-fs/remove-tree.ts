/**
 * `rm -r` that cannot be led outside the tree. A recursive remove by path looks at an entry, sees
 * a directory, and then lists and deletes by path again; whoever can write a directory inside the
 * tree can swap it for a symlink in between, and the deletions follow the link (the classic rm -r
 * race; as root, anything on the machine). Here every directory is opened without following
 * links and its entries are named through /proc/self/fd/<fd>, so each step acts on the directory
 * that was looked at; a directory swapped for a link meanwhile is removed as the link it became.
 *
 * Used for callers acting with the agent's own credentials; a non-root caller's remove runs on
 * its file worker, where the kernel confines any such race to what that user may delete anyway.
 */
import { close, constants, lstat, open, readdir, rmdir, unlink } from "node:fs";
import { promisify } from "node:util";
import { errnoOf } from "../errors.js";
import type { FileAccess } from "./access.js";
import { FsPool } from "./fs-pool.js";
import type { Anchor } from "./protected-path.js";

const O_PATH = 0o10000000;
const openAsync = promisify(open);
const closeAsync = promisify(close);
const lstatAsync = promisify(lstat);
const readdirAsync = promisify(readdir);
const rmdirAsync = promisify(rmdir);
const unlinkAsync = promisify(unlink);

/** Enough calls in flight to keep libuv's threads busy on a large tree. */
const CONCURRENCY = 32;

/** Removes the entry `name` of the directory `dir` (a /proc/self/fd path), whatever it is. */
export async function removeTree(dir: string, name: string): Promise<void> {
  await removeEntry(new FsPool(CONCURRENCY), dir, name);
}

/**
 * `rm -r` of an anchored entry for `access`'s caller: through held directories with the agent's
 * credentials; a caller's own worker is confined by the kernel to what that user may delete.
 */
export async function removeAnchored(access: FileAccess, entry: Anchor): Promise<void> {
  if (access.asAgent) await removeTree(entry.dir, entry.name);
  else await access.rm(entry.at, { recursive: true, force: false });
}

/** An entry that went away meanwhile is removed already: the rest of the tree goes on. */
const gone = (err: unknown): undefined => {
  if (errnoOf(err) === "ENOENT") return undefined;
  throw err;
};

async function removeEntry(pool: FsPool, dir: string, name: string): Promise<void> {
  const at = `${dir}/${name}`;
  const st = await pool.run(() => lstatAsync(at)).catch(gone);
  if (st === undefined) return;
  if (!st.isDirectory()) {
    await pool.run(() => unlinkAsync(at)).catch(gone);
    return;
  }
  let fd: number;
  try {
    fd = await pool.run(() => openAsync(at, O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW));
  } catch (err) {
    // No longer a directory (swapped for a link or a file): remove what is there now.
    if (errnoOf(err) === "ELOOP" || errnoOf(err) === "ENOTDIR") return removeEntry(pool, dir, name);
    return gone(err);
  }
  try {
    const inside = `/proc/self/fd/${fd}`;
    const names = await pool.run(() => readdirAsync(inside));
    await Promise.all(names.map((child) => removeEntry(pool, inside, child)));
  } finally {
    await closeAsync(fd).catch(() => undefined);
  }
  await pool.run(() => rmdirAsync(at)).catch(gone);
}
