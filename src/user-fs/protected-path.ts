/**
 * Where a write lands, decided once and then held: the directory that will hold the entry is
 * opened (O_PATH) and every later step names the entry through `/proc/self/fd/<fd>/<name>`, which
 * the kernel resolves to that very directory however the path changes meanwhile. A check of the
 * path followed by a write by path would leave a window in which someone who can write a
 * directory along it swaps a component for a symlink (a `mkdir -p` by root through a link planted
 * after the check creates directories wherever the link points).
 *
 * Symlinks met on the way are followed only when they belong to the caller or to root. Linux's
 * fs.protected_symlinks refuses others' links in sticky world-writable directories; a write made
 * for someone is the same confused deputy wherever the link is: a user who plants
 * `~/notes.txt -> /etc/passwd` would otherwise get that file replaced by the next upload a more
 * privileged caller makes there, and a link moved into a root directory would keep leading on.
 *
 * For a non-root caller every step runs on its file worker, so it also sees only what that user
 * may. A thread may open /proc/self/fd of its own process whatever its file-system credentials.
 */
import { close } from "node:fs";
import { posix } from "node:path";
import { promisify } from "node:util";
import { errnoOf } from "../errors.js";
import type { FileAccess, FileStats } from "./access.js";

/** Linux's O_PATH (node:fs does not export it): a handle on a place in the tree, not for I/O. */
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const O_NOFOLLOW = 0o400000;
const DIR_HANDLE = O_PATH | O_DIRECTORY;
/** Linux's own limit on symlinks followed while resolving one path. */
const MAX_LINKS = 40;
/** A component swapped under the walk is looked at again, a few times, then the write is refused. */
const MAX_RETRIES = 8;

const closeFd = promisify(close);
const viaFd = (fd: number): string => `/proc/self/fd/${fd}`;

export class ProtectedSymlinkError extends Error {
  readonly code = "EACCES";
}

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** A directory held open, and the entry in it that an operation acts on. */
export interface Anchor {
  /** The directory, as a path that always leads to it: `/proc/self/fd/<fd>`. */
  readonly dir: string;
  readonly name: string;
  /** `dir/name`: the entry, for the operation itself. */
  readonly at: string;
  /** The real path of the entry as resolved, for messages and replies. */
  readonly shown: string;
  readonly close: () => Promise<void>;
}

export interface AnchorOptions {
  /** Whether a symlink as the last component leads on (writing a file's content) or is acted on (rename, remove). */
  readonly followLast: boolean;
  /** Create missing directories on the way (as the caller): mkdir -p. */
  readonly makeParents: boolean;
}

/** Closes `fd` on the first call only: a handle closed twice would close a number reused meanwhile. */
function closeOnce(fd: number): () => Promise<void> {
  let closed: Promise<void> | undefined;
  return () => (closed ??= closeFd(fd).catch(() => undefined));
}

function anchorAt(fd: number, dirShown: string, name: string): Anchor {
  const dir = viaFd(fd);
  return { dir, name, at: `${dir}/${name}`, shown: posix.join(dirShown, name), close: closeOnce(fd) };
}

/**
 * Fast path: when the directory, opened by its path, really is at that path (no symlink on the
 * way), the handle is already the answer: two calls whatever the depth.
 */
async function openPlainly(access: FileAccess, dirPath: string): Promise<number | undefined> {
  let fd: number;
  try {
    fd = await access.open(dirPath, DIR_HANDLE);
  } catch {
    return undefined;
  }
  try {
    if ((await access.readlink(viaFd(fd))) === dirPath) return fd;
  } catch {
    // fall through to the walk
  }
  await closeFd(fd).catch(() => undefined);
  return undefined;
}

async function lstatOrMissing(access: FileAccess, path: string): Promise<FileStats | undefined> {
  try {
    return await access.lstat(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
}

/** The entry `path` names for a write by `access`'s caller, with its directory held open. */
export async function anchorForWriting(access: FileAccess, path: string, options: AnchorOptions): Promise<Anchor> {
  const normal = posix.normalize(path);
  if (normal === "/") throw errnoError("EISDIR", "is a directory: /");
  const parent = posix.dirname(normal);
  const last = posix.basename(normal);
  const plain = await openPlainly(access, parent);
  if (plain !== undefined) {
    const anchor = anchorAt(plain, parent, last);
    const st = options.followLast ? await lstatOrMissing(access, anchor.at).catch(() => undefined) : undefined;
    if (st === undefined || !st.isSymbolicLink()) return anchor;
    await anchor.close();
  }
  return walk(access, normal, options);
}

/** Component by component, each directory opened relative to the one before it. */
async function walk(access: FileAccess, path: string, options: AnchorOptions): Promise<Anchor> {
  const uid = access.user.uid;
  const pending = path
    .split("/")
    .filter((name) => name !== "")
    .reverse();
  let fd = await access.open("/", DIR_HANDLE);
  let shown = "/";
  let links = 0;
  let retries = 0;
  const moveTo = async (next: number, nextShown: string): Promise<void> => {
    await closeFd(fd).catch(() => undefined);
    fd = next;
    shown = nextShown;
  };
  try {
    while (pending.length > 0) {
      const name = pending.pop()!;
      if (name === ".") continue;
      const here = `${viaFd(fd)}/${name}`;
      if (name === "..") {
        await moveTo(await access.open(here, DIR_HANDLE), posix.dirname(shown));
        continue;
      }
      const isLast = pending.length === 0;
      const st = await lstatOrMissing(access, here);
      if (st === undefined) {
        if (isLast) return anchorAt(fd, shown, name);
        if (!options.makeParents) throw errnoError("ENOENT", `no such file or directory: ${posix.join(shown, name)}`);
        // Made by the caller, then looked at again like any other component.
        await access.mkdir(here, { recursive: false }).catch((err: unknown) => {
          if (errnoOf(err) !== "EEXIST") throw err;
        });
        pending.push(name);
        continue;
      }
      if (st.isSymbolicLink() && (!isLast || options.followLast)) {
        if (st.uid !== uid && st.uid !== 0) {
          throw new ProtectedSymlinkError(
            `permission denied: ${posix.join(shown, name)} is a symlink owned by uid ${st.uid}; a write does not follow another user's link`,
          );
        }
        if (++links > MAX_LINKS) throw errnoError("ELOOP", `too many levels of symbolic links: ${path}`);
        const target = await access.readlink(here);
        pending.push(
          ...target
            .split("/")
            .filter((part) => part !== "")
            .reverse(),
        );
        if (target.startsWith("/")) await moveTo(await access.open("/", DIR_HANDLE), "/");
        continue;
      }
      if (isLast) return anchorAt(fd, shown, name);
      if (!st.isDirectory()) throw errnoError("ENOTDIR", `not a directory: ${posix.join(shown, name)}`);
      let next: number;
      try {
        next = await access.open(here, DIR_HANDLE | O_NOFOLLOW);
      } catch (err) {
        // Replaced between the look and the open (by a symlink, a file, nothing): look again.
        const code = errnoOf(err);
        if ((code === "ELOOP" || code === "ENOTDIR" || code === "ENOENT") && ++retries <= MAX_RETRIES) {
          pending.push(name);
          continue;
        }
        throw err;
      }
      await moveTo(next, posix.join(shown, name));
    }
    // The last link led to a directory: the entry is that directory itself, as `.` in it (a
    // mkdir there finds it exists, a write finds a directory).
    return { ...anchorAt(fd, shown, "."), shown };
  } catch (err) {
    await closeFd(fd).catch(() => undefined);
    throw err;
  }
}

/** A directory held open: `dir` always leads to it. */
export interface DirectoryHandle {
  readonly dir: string;
  readonly shown: string;
  readonly close: () => Promise<void>;
}

/**
 * The directory `path` names, or else the closest one above it that exists, held open: where a
 * file can be created now for a write whose directory may not exist yet.
 */
export async function nearestDirectory(access: FileAccess, path: string): Promise<DirectoryHandle> {
  for (let dir = posix.normalize(path); ; dir = posix.dirname(dir)) {
    // A cheap look first: anchoring a path that is not there walks it from the root, and doing
    // that once per missing level of a deep path would cost the square of its depth.
    if (
      dir !== "/" &&
      !(await access.stat(dir).then(
        (st) => st.isDirectory(),
        () => false,
      ))
    )
      continue;
    if (dir === "/") {
      const fd = await access.open("/", DIR_HANDLE);
      return { dir: viaFd(fd), shown: "/", close: closeOnce(fd) };
    }
    let entry: Anchor;
    try {
      entry = await anchorForWriting(access, dir, { followLast: true, makeParents: false });
    } catch (err) {
      if (errnoOf(err) === "ENOENT" || errnoOf(err) === "ENOTDIR") continue;
      throw err;
    }
    try {
      const fd = await access.open(entry.at, DIR_HANDLE | O_NOFOLLOW);
      return { dir: viaFd(fd), shown: entry.shown, close: closeOnce(fd) };
    } catch (err) {
      if (errnoOf(err) !== "ENOENT" && errnoOf(err) !== "ENOTDIR" && errnoOf(err) !== "ELOOP") throw err;
    } finally {
      await entry.close();
    }
  }
}
