/**
 * A move between file systems, where rename(2) fails with EXDEV: copy the tree next to the
 * destination, rename it into place, then remove the source (what mv(1) does). The copy keeps
 * modes, owners (for root), timestamps and symlinks as they are (links are recreated, never followed).
 * Hard links within the tree become separate files, as with `cp -R` without `-P --preserve=links`.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { close, constants, fstat } from "node:fs";
import { lchown } from "node:fs/promises";
import { posix } from "node:path";
import { promisify } from "node:util";
import { describeFsError } from "../../errors.js";
import type { FileAccess, FileStats } from "../../user-fs/access.js";
import { copyDescriptor } from "../../user-fs/fd-writer.js";
import { FsPool } from "../../user-fs/fs-pool.js";
import type { Anchor } from "../../user-fs/protected-path.js";
import { removeAnchored } from "../../user-fs/remove-tree.js";
import { isPrivileged } from "../../users.js";

/** Several files copy at once. */
const CONCURRENCY = 8;
const COPY_BUFFER_BYTES = 256 * 1024;
/** Linux's O_PATH (node:fs does not export it). */
const O_PATH = 0o10000000;
const closeAsync = promisify(close);
const fstatAsync = promisify(fstat);

/** Both sides are held open by the caller (protected-path.ts) until this returns. */
export async function moveAcrossFilesystems(access: FileAccess, source: Anchor, destination: Anchor): Promise<void> {
  // Staged under a hidden sibling name: a failed copy never leaves a half-tree at the
  // destination, and the final rename has exactly rename(2)'s rules for what it may replace.
  const staging = `${destination.dir}/.${destination.name}.moving-${randomBytes(6).toString("hex")}`;
  try {
    await copyTree(access, new FsPool(CONCURRENCY), { dir: source.dir, name: source.name, shown: source.shown }, staging);
    await access.rename(staging, destination.at);
  } catch (err) {
    await access.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  try {
    await removeAnchored(access, source);
  } catch (err) {
    const { code, message } = describeFsError(err, "remove", source.shown);
    throw new ConnectError(`copied ${source.shown} to ${destination.shown}, but could not remove the source: ${message}`, code);
  }
}

interface SourceEntry {
  /** The directory holding the entry, as a path that always leads to it (/proc/self/fd/<fd>). */
  readonly dir: string;
  readonly name: string;
  readonly shown: string;
}

function unsupported(shown: string): ConnectError {
  return new ConnectError(`invalid argument: move ${shown}: cannot copy a device, socket or FIFO to another file system`, Code.InvalidArgument);
}

/**
 * Copies one entry. The source is read through held directories and descriptors opened without
 * following links, so someone who can write inside the source tree cannot swap a directory or
 * file for a link and have the copy read what it points to.
 */
async function copyTree(access: FileAccess, pool: FsPool, source: SourceEntry, target: string): Promise<void> {
  const at = `${source.dir}/${source.name}`;
  const st = await access.lstat(at);
  if (st.isDirectory()) {
    const fd = await access.open(at, O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      // Owner-only until its contents and real mode are in place.
      await access.mkdir(target, { recursive: false, mode: 0o700 });
      const inside = `/proc/self/fd/${fd}`;
      const names = await access.readdir(inside);
      await Promise.all(names.map((name) => copyTree(access, pool, { dir: inside, name, shown: posix.join(source.shown, name) }, posix.join(target, name))));
    } finally {
      await closeAsync(fd).catch(() => undefined);
    }
  } else if (st.isSymbolicLink()) {
    await pool.run(async () => access.symlink(await access.readlink(at), target));
  } else if (st.isFile()) {
    await pool.run(() => copyFileContent(access, at, source.shown, target));
  } else {
    throw unsupported(source.shown);
  }
  await preserveMetadata(access, target, st);
}

async function copyFileContent(access: FileAccess, from: string, shown: string, to: string): Promise<void> {
  // O_NONBLOCK: a FIFO swapped in under the name cannot hang the open; it is refused below.
  const input = await access.open(from, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fstatAsync(input)).isFile()) throw unsupported(shown);
    const output = await access.open(to, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await copyDescriptor(input, output, COPY_BUFFER_BYTES);
    } finally {
      await closeAsync(output).catch(() => undefined);
    }
  } finally {
    await closeAsync(input).catch(() => undefined);
  }
}

async function preserveMetadata(access: FileAccess, target: string, st: FileStats): Promise<void> {
  // Owners are kept only by a root caller; anyone else's copies are theirs, as with cp(1). chown
  // before chmod: changing the owner clears set-user-ID and set-group-ID bits. The copy is new
  // and under a name only the caller made, in a directory the caller just created.
  if (access.asAgent && isPrivileged()) await lchown(target, st.uid, st.gid);
  if (st.isSymbolicLink()) {
    await access.lutimes(target, st.atimeMs, st.mtimeMs);
    return;
  }
  await access.chmod(target, st.mode & 0o7777);
  // Last, because creating a directory's children changed its modification time.
  await access.utimes(target, st.atimeMs, st.mtimeMs);
}
