/**
 * A file being uploaded: written to a hidden temporary file (mode 0600) and renamed over its
 * target only once complete, so the target holds its previous content or the new one, never part
 * of it. Whatever fails, `discard` leaves nothing behind.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { chmod, copyFile, open, rename, rm, type FileHandle } from "node:fs/promises";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { errnoOf } from "../errors.js";
import { giveTo } from "../ownership.js";
import type { User } from "../users.js";
import { fsHttpError } from "./reply-error.js";

/** Leaves room for the prefix and suffix within NAME_MAX (255 bytes). */
const HINT_MAX_BYTES = 100;
/** Fewer, larger writes for big uploads; backpressure still reaches the client through the pipe. */
const WRITE_CHUNK_BYTES = 256 * 1024;

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

export class StagedFile {
  private committed = false;
  private written = 0;

  private constructor(
    private path: string,
    private readonly hint: string,
    private handle: FileHandle | undefined,
  ) {}

  /** Creates the empty temporary file in `dir`; `name` is the target's base name, as a hint. */
  static async create(dir: string, name: string): Promise<StagedFile> {
    const hint = hintFrom(name);
    const path = posix.join(dir, tempName(hint));
    try {
      const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      return new StagedFile(path, hint, handle);
    } catch (err) {
      throw fsHttpError(err, "create", path);
    }
  }

  /** Bytes written by `fill`. */
  get size(): number {
    return this.written;
  }

  /** Where the bytes are now (a temporary name until `commit`). */
  get location(): string {
    return this.path;
  }

  /** Streams `source` into the file; a slow disk slows the sender instead of filling memory. */
  async fill(source: Readable, shownTarget: string): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) throw new Error("staged file was already filled");
    this.handle = undefined; // the write stream closes it from now on, whatever happens
    try {
      const out = handle.createWriteStream({ highWaterMark: WRITE_CHUNK_BYTES });
      await pipeline(source, out);
      this.written = out.bytesWritten;
    } catch (err) {
      // Only errors with an errno are the disk's; the others come from the request and are
      // reported by whoever ended it.
      throw errnoOf(err) === undefined ? err : fsHttpError(err, "write", shownTarget);
    }
  }

  /** Moves the temporary file into `dir` (the target's), copying when `dir` is on another filesystem. */
  async moveInto(dir: string): Promise<void> {
    if (posix.dirname(this.path) === dir) return;
    const next = posix.join(dir, tempName(this.hint));
    try {
      await rename(this.path, next);
    } catch (err) {
      if (errnoOf(err) !== "EXDEV") throw fsHttpError(err, "rename", next);
      try {
        await copyFile(this.path, next, constants.COPYFILE_EXCL);
      } catch (copyErr) {
        await rm(next, { force: true });
        throw fsHttpError(copyErr, "write", next);
      }
      await rm(this.path, { force: true });
    }
    this.path = next;
  }

  /** Sets the final mode and owner while the file is still hidden, so it appears complete. */
  async finish(mode: number, owner: User): Promise<void> {
    try {
      await chmod(this.path, mode);
      await giveTo(this.path, owner);
    } catch (err) {
      throw fsHttpError(err, "chmod", this.path);
    }
  }

  /** Atomically replaces `target` with the finished file. */
  async commit(target: string): Promise<void> {
    try {
      await rename(this.path, target);
    } catch (err) {
      throw fsHttpError(err, "rename", target);
    }
    this.path = target;
    this.committed = true;
  }

  /**
   * Removes the temporary file; safe to call more than once, and a no-op after `commit`. Never
   * throws: it runs on the way out of every upload, and must not replace that upload's own answer.
   * If something else moved or replaced the file's directory meanwhile (ENOTDIR), the path no
   * longer leads to it, and the file went wherever its directory went.
   */
  async discard(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => undefined);
    if (this.committed) return;
    await rm(this.path, { force: true }).catch(() => undefined);
  }
}
