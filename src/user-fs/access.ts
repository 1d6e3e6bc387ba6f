/**
 * File operations on behalf of a caller, the one way the agent touches a caller's files.
 *
 * For a non-root caller every operation runs on a file worker that wears that user's uid, gid and
 * supplementary groups (workers.ts), so the kernel's own permission checks decide what succeeds,
 * files are created owned by the caller, and no path resolves through anything the caller could
 * not reach itself. Root callers (and an agent that cannot switch users) act with the agent's own
 * credentials, through `node:fs` directly: the common case pays nothing.
 */
import { open as openCallback } from "node:fs";
import * as fs from "node:fs/promises";
import { promisify } from "node:util";
import { isPrivileged, type User } from "../users.js";
import type { FsPool } from "./fs-pool.js";
import { errorFrom, type ErrorRecord, type OpName, type WorkerOps } from "./protocol.js";
import { statsFrom, type FileStats, type StatsRecord } from "./stats.js";
import { FileWorkerPool } from "./workers.js";
import { readMetadataAsAgent } from "./metadata.js";

export type { FileStats } from "./stats.js";

export interface FileAccess {
  readonly user: User;
  /** True when operations run with the agent's own credentials (a root caller). */
  readonly asAgent: boolean;
  /** open(2); the caller owns the returned descriptor (close-on-exec, as libuv opens everything). */
  open(path: string, flags: number, mode?: number): Promise<number>;
  lstat(path: string): Promise<FileStats>;
  stat(path: string): Promise<FileStats>;
  /**
   * lstat of every path, in order; each slot holds the stats or the error for that path. The
   * calls take their turns in `pool`, with the rest of the request's file work.
   */
  lstatAll(paths: readonly string[], pool: FsPool): Promise<Array<FileStats | NodeJS.ErrnoException>>;
  readdir(path: string): Promise<string[]>;
  readlink(path: string): Promise<string>;
  realpath(path: string): Promise<string>;
  /** mkdir(2), or with `recursive` mkdir -p returning the first directory it created. */
  mkdir(path: string, options: { readonly recursive: boolean; readonly mode?: number }): Promise<string | undefined>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { readonly recursive: boolean; readonly force: boolean }): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  copyFile(from: string, to: string, mode: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  utimes(path: string, atimeMs: number, mtimeMs: number): Promise<void>;
  lutimes(path: string, atimeMs: number, mtimeMs: number): Promise<void>;
  /** Succeeds when the caller may list `path` (opens it for reading, as `ls` would). */
  openDir(path: string): Promise<void>;
  /** The file's metadata (metadata.ts), as the caller may read it. */
  readMetadata(path: string): Promise<Record<string, string>>;
}

/** New directories get 0777 less the umask, as mkdir(1) gives them. */
const DIR_MODE = 0o777;

const openFd = promisify(openCallback);

function agentAccess(user: User): FileAccess {
  return {
    user,
    asAgent: true,
    // The callback API: a FileHandle would close its descriptor again when collected.
    open: (path, flags, mode) => openFd(path, flags, mode),
    lstat: (path) => fs.lstat(path),
    stat: (path) => fs.stat(path),
    lstatAll: (paths, pool) => pool.lstatAll(paths),
    readdir: (path) => fs.readdir(path),
    readlink: (path) => fs.readlink(path),
    realpath: (path) => fs.realpath(path),
    mkdir: (path, { recursive, mode = DIR_MODE }) => fs.mkdir(path, { recursive, mode }),
    rename: (from, to) => fs.rename(from, to),
    rm: (path, options) => fs.rm(path, options),
    symlink: (target, path) => fs.symlink(target, path),
    copyFile: (from, to, mode) => fs.copyFile(from, to, mode),
    chmod: (path, mode) => fs.chmod(path, mode),
    utimes: (path, atimeMs, mtimeMs) => fs.utimes(path, atimeMs / 1000, mtimeMs / 1000),
    lutimes: (path, atimeMs, mtimeMs) => fs.lutimes(path, atimeMs / 1000, mtimeMs / 1000),
    openDir: async (path) => (await fs.opendir(path)).close(),
    readMetadata: async (path) => readMetadataAsAgent(path),
  };
}

let pool: FileWorkerPool | undefined;
const workers = (): FileWorkerPool => (pool ??= new FileWorkerPool());

/** Ends the file workers that are not busy (an idle agent gives their memory back). */
export async function releaseIdleFileWorkers(): Promise<void> {
  await pool?.releaseIdle();
}

function userAccess(user: User): FileAccess {
  const run = <K extends OpName>(op: K, ...args: Parameters<WorkerOps[K]>): Promise<ReturnType<WorkerOps[K]>> => workers().run(user, op, ...args);
  return {
    user,
    asAgent: false,
    open: (path, flags, mode = 0o666) => run("open", path, flags, mode),
    lstat: async (path) => statsFrom(await run("lstat", path)),
    stat: async (path) => statsFrom(await run("stat", path)),
    // One message for the whole batch: per-entry round trips would cost more than the calls.
    lstatAll: async (paths, pool) =>
      (await pool.run(() => run("lstatAll", paths))).map((slot: { stats?: StatsRecord; error?: ErrorRecord }) =>
        slot.stats !== undefined ? statsFrom(slot.stats) : errorFrom(slot.error!),
      ),
    readdir: (path) => run("readdir", path),
    readlink: (path) => run("readlink", path),
    realpath: (path) => run("realpath", path),
    mkdir: (path, { recursive, mode = DIR_MODE }) => run("mkdir", path, recursive, mode),
    rename: (from, to) => run("rename", from, to),
    rm: (path, { recursive, force }) => run("rm", path, recursive, force),
    symlink: (target, path) => run("symlink", target, path),
    copyFile: (from, to, mode) => run("copyFile", from, to, mode),
    chmod: (path, mode) => run("chmod", path, mode),
    utimes: (path, atimeMs, mtimeMs) => run("utimes", path, atimeMs, mtimeMs),
    lutimes: (path, atimeMs, mtimeMs) => run("lutimes", path, atimeMs, mtimeMs),
    openDir: (path) => run("openDir", path),
    readMetadata: (path) => run("readMetadata", path),
  };
}

/** How the agent acts on files for `user`. */
export function fileAccessFor(user: User): FileAccess {
  const own = process.getuid?.();
  if (!isPrivileged() || user.uid === own) return agentAccess(user);
  return userAccess(user);
}

/** Stops the file workers (agent shutdown); they are started again on next use. */
export async function closeFileWorkers(): Promise<void> {
  const current = pool;
  pool = undefined;
  await current?.close();
}
