/**
 * A file being uploaded: written to a hidden temporary file (mode 0600) and renamed over its
 * target only once complete, so the target holds its previous content or the new one, never part
 * of it. Whatever fails, `discard` leaves nothing behind.
 *
 * The temporary file is created by the caller (through its FileAccess), so it is the caller's
 * from the first byte, and it is held open from creation to commit: its mode is set on that
 * descriptor, never by a path that someone who can write the directory could have swapped for a
 * symlink, and after the rename the target is checked to be the very file that was written. Its
 * directory is named through a handle held open (protected-path.ts), never by its path again.
 */
import { randomBytes } from "node:crypto";
import { close, constants, fchmod, fstat } from "node:fs";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { errnoOf } from "../errors.js";
import type { FileAccess } from "../user-fs/access.js";
import { copyDescriptor, FdWriter } from "../user-fs/fd-writer.js";
import type { Anchor, DirectoryHandle } from "../user-fs/protected-path.js";
import { fsHttpError, HttpError } from "./reply-error.js";
import { writeMetadata } from "../user-fs/metadata.js";

/** Leaves room for the prefix and suffix within NAME_MAX (255 bytes). */
const HINT_MAX_BYTES = 100;
/**
 * What may wait while a write is in flight, written next in one writev(2): fewer, larger writes for
 * big uploads; backpressure still reaches the client through the pipe.
 */
const WRITE_CHUNK_BYTES = 1024 * 1024;
/**
 * Read and write: a move to another file system copies from it. O_NOFOLLOW: the new name is never
 * a symlink someone planted under a name we were about to use.
 */
const CREATE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

const fchmodAsync = promisify(fchmod);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);

function hintFrom(name: string): string {
  // A name the upload goes on to refuse (a NUL byte) still needs a temporary file it can open.
  const usable = name.replace(/\0/g, "");
  let hint = usable === "" ? "file" : usable;
  while (Buffer.byteLength(hint) > HINT_MAX_BYTES) hint = hint.slice(0, -1);
  return hint;
}

/** `.<name>.upload-<random>`: hidden, recognisable, and unique without a lookup. */
function tempName(hint: string): string {
  return `.${hint}.upload-${randomBytes(6).toString("hex")}`;
}

async function createIn(access: FileAccess, dir: DirectoryHandle, hint: string): Promise<{ name: string; fd: number }> {
  const name = tempName(hint);
  try {
    return { name, fd: await access.open(`${dir.dir}/${name}`, CREATE_FLAGS, 0o600) };
  } catch (err) {
    throw fsHttpError(err, "create", posix.join(dir.shown, name));
  }
}

export class StagedFile {
  private committed = false;
  private written = 0;
  /** The writer of `fill`, until its last write has returned: the descriptor is closed only then. */
  private writer: FdWriter | undefined;

  private constructor(
    private readonly access: FileAccess,
    /** The directory the file is in now; the staged file owns it and closes it. */
    private dir: DirectoryHandle,
    private name: string,
    private readonly hint: string,
    private fd: number | undefined,
  ) {}

  /**
   * Creates the empty temporary file in `dir` as the caller, and takes `dir` over (closed with
   * the file); `name` is the target's base name, as a hint.
   */
  static async create(access: FileAccess, dir: DirectoryHandle, name: string): Promise<StagedFile> {
    const hint = hintFrom(name);
    try {
      const created = await createIn(access, dir, hint);
      return new StagedFile(access, dir, created.name, hint, created.fd);
    } catch (err) {
      await dir.close();
      throw err;
    }
  }

  /** The file as the kernel reaches it, through its directory's handle. */
  private get at(): string {
    return `${this.dir.dir}/${this.name}`;
  }

  /** Bytes written by `fill`. */
  get size(): number {
    return this.written;
  }

  private descriptor(): number {
    if (this.fd === undefined) throw new Error("staged file is already closed");
    return this.fd;
  }

  /** Streams `source` into the file; a slow disk slows the sender instead of filling memory. */
  async fill(source: Readable, shownTarget: string): Promise<void> {
    const out = new FdWriter(this.descriptor(), WRITE_CHUNK_BYTES);
    this.writer = out;
    try {
      await pipeline(source, out);
      this.written = out.bytesWritten;
    } catch (err) {
      // Only errors with an errno are the disk's; the others come from the request and are
      // reported by whoever ended it.
      throw errnoOf(err) === undefined ? err : fsHttpError(err, "write", shownTarget);
    }
  }

  /**
   * Moves the temporary file into the target's directory (copying when it is on another file
   * system), and takes that directory's handle over from `target` once it succeeds; when it
   * throws, the handle is still the caller's to close.
   */
  async moveInto(target: Anchor): Promise<void> {
    const into: DirectoryHandle = { dir: target.dir, shown: posix.dirname(target.shown), close: target.close };
    const name = tempName(this.hint);
    try {
      await this.access.rename(this.at, `${into.dir}/${name}`);
      await this.dir.close();
      this.dir = into;
      this.name = name;
      return;
    } catch (err) {
      if (errnoOf(err) !== "EXDEV") throw fsHttpError(err, "rename", posix.join(into.shown, name));
    }
    // Another file system: a new temporary file there, filled from the descriptor we hold.
    const copy = await createIn(this.access, into, this.hint);
    try {
      await copyDescriptor(this.descriptor(), copy.fd, WRITE_CHUNK_BYTES);
    } catch (err) {
      await closeAsync(copy.fd).catch(() => undefined);
      await this.access.rm(`${into.dir}/${copy.name}`, { recursive: false, force: true }).catch(() => undefined);
      throw fsHttpError(err, "write", posix.join(into.shown, copy.name));
    }
    await this.discard();
    this.dir = into;
    this.name = copy.name;
    this.fd = copy.fd;
  }

  /** Sets the final mode on the open file while it is still hidden, so it appears complete. */
  /** Gives the file its metadata (envd's `user.e2b.*` attributes) before it is put in place. */
  setMetadata(metadata: Readonly<Record<string, string>>): void {
    try {
      writeMetadata(this.descriptor(), metadata);
    } catch (err) {
      throw new HttpError(400, `cannot keep the file's metadata: ${(err as Error).message}`);
    }
  }

  async finish(mode: number): Promise<void> {
    try {
      await fchmodAsync(this.descriptor(), mode);
    } catch (err) {
      throw fsHttpError(err, "chmod", posix.join(this.dir.shown, this.name));
    }
  }

  /**
   * Atomically replaces `target` with the finished file. Someone who can write the directory could
   * have replaced the temporary name meanwhile; then what now stands at `target` is theirs, not
   * the upload, and the caller is told rather than shown a success.
   */
  async commit(target: Anchor): Promise<void> {
    if (target.dir !== this.dir.dir) throw new Error("commit into a directory the file was not moved into");
    try {
      await this.access.rename(this.at, target.at);
    } catch (err) {
      throw fsHttpError(err, "rename", target.shown);
    }
    this.name = target.name;
    this.committed = true;
    const [written, placed] = await Promise.all([fstatAsync(this.descriptor()), this.access.lstat(target.at).catch(() => undefined)]);
    await this.close();
    if (placed === undefined || placed.ino !== written.ino || placed.dev !== written.dev) {
      throw new HttpError(409, `${target.shown} was replaced by another file while the upload was being stored`);
    }
  }

  private async close(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    // A write of a failed fill may still be running: its descriptor must not be reused under it.
    await this.writer?.settled();
    await closeAsync(fd).catch(() => undefined);
  }

  /**
   * Removes the temporary file; safe to call more than once, and a no-op after `commit`. Never
   * throws: it runs on the way out of every upload, and must not replace that upload's own answer.
   * If something else moved or replaced the file's directory meanwhile (ENOTDIR), the path no
   * longer leads to it, and the file went wherever its directory went.
   */
  async discard(): Promise<void> {
    await this.close();
    if (!this.committed) await this.access.rm(this.at, { recursive: false, force: true }).catch(() => undefined);
    await this.dir.close();
  }
}
