/**
 * A move between file systems, where rename(2) fails with EXDEV: copy the tree next to the
 * destination, rename it into place, then remove the source (what mv(1) does). The copy keeps
 * modes, owners, timestamps and symlinks as they are (links are recreated, never followed).
 * Hard links within the tree become separate files, as with `cp -R` without `-P --preserve=links`.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { chmod, copyFile, lchown, lstat, lutimes, mkdir, readdir, readlink, rename, rm, symlink, utimes } from "node:fs/promises";
import { posix } from "node:path";
import { describeFsError } from "../../errors.js";
import { isPrivileged } from "../../users.js";
import { FsPool } from "./fs-pool.js";

/** Several files copy at once; the kernel does the byte work (copy_file_range) either way. */
const CONCURRENCY = 8;

export async function moveAcrossFilesystems(source: string, destination: string): Promise<void> {
  // Staged under a hidden sibling name: a failed copy never leaves a half-tree at the
  // destination, and the final rename has exactly rename(2)'s rules for what it may replace.
  const staging = posix.join(
    posix.dirname(destination),
    `.${posix.basename(destination)}.moving-${randomBytes(6).toString("hex")}`,
  );
  try {
    await copyTree(new FsPool(CONCURRENCY), source, staging);
    await rename(staging, destination);
  } catch (err) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  try {
    await rm(source, { recursive: true });
  } catch (err) {
    const { code, message } = describeFsError(err, "remove", source);
    throw new ConnectError(`copied ${source} to ${destination}, but could not remove the source: ${message}`, code);
  }
}

async function copyTree(pool: FsPool, source: string, target: string): Promise<void> {
  const st = await lstat(source);
  if (st.isDirectory()) {
    // Owner-only until its contents and real mode are in place.
    await mkdir(target, { mode: 0o700 });
    const names = await readdir(source);
    await Promise.all(names.map((name) => copyTree(pool, posix.join(source, name), posix.join(target, name))));
  } else if (st.isSymbolicLink()) {
    await pool.run(async () => symlink(await readlink(source), target));
  } else if (st.isFile()) {
    await pool.run(() => copyFile(source, target, constants.COPYFILE_EXCL));
  } else {
    throw new ConnectError(
      `invalid argument: move ${source}: cannot copy a device, socket or FIFO to another file system`,
      Code.InvalidArgument,
    );
  }
  await preserveMetadata(target, st);
}

async function preserveMetadata(target: string, st: Stats): Promise<void> {
  // chown before chmod: changing the owner clears set-user-ID and set-group-ID bits.
  if (isPrivileged()) await lchown(target, st.uid, st.gid);
  if (st.isSymbolicLink()) {
    await lutimes(target, st.atime, st.mtime);
    return;
  }
  await chmod(target, st.mode & 0o7777);
  // Last, because creating a directory's children changed its modification time.
  await utimes(target, st.atime, st.mtime);
}
