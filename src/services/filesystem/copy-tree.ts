/**
 * A move between file systems, where rename(2) fails with EXDEV: copy the tree next to the
 * destination, rename it into place, then remove the source (what mv(1) does). The copy keeps
 * modes, owners, timestamps and symlinks as they are (links are recreated, never followed).
 * Hard links within the tree become separate files, as with `cp -R` without `-P --preserve=links`.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lchown } from "node:fs/promises";
import { posix } from "node:path";
import { describeFsError } from "../../errors.js";
import type { FileAccess, FileStats } from "../../user-fs/access.js";
import type { Anchor } from "../../user-fs/protected-path.js";
import { FsPool } from "../../user-fs/fs-pool.js";
import { isPrivileged } from "../../users.js";

/** Several files copy at once; the kernel does the byte work (copy_file_range) either way. */
const CONCURRENCY = 8;

/** Both sides are held open by the caller (protected-path.ts) until this returns. */
export async function moveAcrossFilesystems(access: FileAccess, source: Anchor, destination: Anchor): Promise<void> {
  // Staged under a hidden sibling name: a failed copy never leaves a half-tree at the
  // destination, and the final rename has exactly rename(2)'s rules for what it may replace.
  const staging = `${destination.dir}/.${destination.name}.moving-${randomBytes(6).toString("hex")}`;
  try {
    await copyTree(access, new FsPool(CONCURRENCY), source.at, staging).catch((err: unknown) => {
      throw err instanceof ConnectError ? new ConnectError(err.rawMessage.replace(source.at, source.shown), err.code) : err;
    });
    await access.rename(staging, destination.at);
  } catch (err) {
    await access.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  try {
    await access.rm(source.at, { recursive: true, force: false });
  } catch (err) {
    const { code, message } = describeFsError(err, "remove", source.shown);
    throw new ConnectError(`copied ${source.shown} to ${destination.shown}, but could not remove the source: ${message}`, code);
  }
}

async function copyTree(access: FileAccess, pool: FsPool, source: string, target: string): Promise<void> {
  const st = await access.lstat(source);
  if (st.isDirectory()) {
    // Owner-only until its contents and real mode are in place.
    await access.mkdir(target, { recursive: false, mode: 0o700 });
    const names = await access.readdir(source);
    await Promise.all(names.map((name) => copyTree(access, pool, posix.join(source, name), posix.join(target, name))));
  } else if (st.isSymbolicLink()) {
    await pool.run(async () => access.symlink(await access.readlink(source), target));
  } else if (st.isFile()) {
    await pool.run(() => access.copyFile(source, target, constants.COPYFILE_EXCL));
  } else {
    throw new ConnectError(
      `invalid argument: move ${source}: cannot copy a device, socket or FIFO to another file system`,
      Code.InvalidArgument,
    );
  }
  await preserveMetadata(access, target, st);
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
