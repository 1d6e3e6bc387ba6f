/** The messages between the agent and its file workers (worker.mjs). */
import type { StatsRecord } from "./stats.js";

/** What worker.mjs performs, by name: each is the `node:fs` call of the same name, synchronous. */
export interface WorkerOps {
  open(path: string, flags: number, mode: number): number;
  lstat(path: string): StatsRecord;
  stat(path: string): StatsRecord;
  lstatAll(paths: readonly string[]): Array<{ stats?: StatsRecord; error?: ErrorRecord }>;
  readdir(path: string): string[];
  readlink(path: string): string;
  realpath(path: string): string;
  mkdir(path: string, recursive: boolean, mode: number): string | undefined;
  rename(from: string, to: string): void;
  rm(path: string, recursive: boolean, force: boolean): void;
  symlink(target: string, path: string): void;
  copyFile(from: string, to: string, mode: number): void;
  chmod(path: string, mode: number): void;
  utimes(path: string, atimeMs: number, mtimeMs: number): void;
  lutimes(path: string, atimeMs: number, mtimeMs: number): void;
  openDir(path: string): void;
  /** native/fs-creds: the `user.e2b.*` attributes of `path` itself (metadata.ts). */
  readMetadata(path: string): Record<string, string>;
  whoami(): [number, number];
}

export type OpName = keyof WorkerOps;

export interface Request<K extends OpName = OpName> {
  readonly id: number;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  readonly op: K;
  readonly args: Parameters<WorkerOps[K]>;
}

export interface ErrorRecord {
  readonly message: string;
  readonly code: string | undefined;
  readonly errno: number | undefined;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
}

export type Reply = { readonly id: number; readonly value: unknown; readonly error?: undefined } | { readonly id: number; readonly error: ErrorRecord };

/** An error as `node:fs` would have thrown it, rebuilt from its record. */
export function errorFrom(record: ErrorRecord): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(record.message);
  if (record.code !== undefined) err.code = record.code;
  if (record.errno !== undefined) err.errno = record.errno;
  if (record.syscall !== undefined) err.syscall = record.syscall;
  if (record.path !== undefined) err.path = record.path;
  return err;
}
