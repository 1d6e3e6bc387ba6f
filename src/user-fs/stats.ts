/**
 * What the agent reads of a file's stats, whichever thread produced them: `node:fs` Stats satisfy
 * it as they are, and stats that crossed from a file worker (plain numbers) are rebuilt into it.
 */
import { constants, type Stats } from "node:fs";

export type FileStats = Pick<
  Stats,
  "isFile" | "isDirectory" | "isSymbolicLink" | "dev" | "ino" | "mode" | "uid" | "gid" | "size" | "mtimeMs" | "ctimeMs" | "atimeMs" | "atime" | "mtime"
>;

/** The numbers of a stats result, as they travel between threads. */
export interface StatsRecord {
  readonly dev: number;
  readonly ino: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

class RebuiltStats implements FileStats {
  readonly dev: number;
  readonly ino: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;

  constructor(r: StatsRecord) {
    this.dev = r.dev;
    this.ino = r.ino;
    this.mode = r.mode;
    this.uid = r.uid;
    this.gid = r.gid;
    this.size = r.size;
    this.atimeMs = r.atimeMs;
    this.mtimeMs = r.mtimeMs;
    this.ctimeMs = r.ctimeMs;
  }

  isFile(): boolean {
    return (this.mode & constants.S_IFMT) === constants.S_IFREG;
  }

  isDirectory(): boolean {
    return (this.mode & constants.S_IFMT) === constants.S_IFDIR;
  }

  isSymbolicLink(): boolean {
    return (this.mode & constants.S_IFMT) === constants.S_IFLNK;
  }

  get atime(): Date {
    return new Date(this.atimeMs);
  }

  get mtime(): Date {
    return new Date(this.mtimeMs);
  }
}

export const statsFrom = (record: StatsRecord): FileStats => new RebuiltStats(record);
