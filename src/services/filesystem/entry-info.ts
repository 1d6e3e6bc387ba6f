/** Builds the EntryInfo message that every Filesystem RPC returns for a path. */
import { create } from "@bufbuild/protobuf";
import { TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { posix } from "node:path";
import { EntryInfoSchema, FileType, type EntryInfo } from "../../gen/sandboxagent/api_pb.js";
import type { FileAccess, FileStats } from "../../user-fs/access.js";
import { groupName, userName } from "../../users.js";

const S_IFMT = 0o170000;
const TYPE_CHAR: Readonly<Record<number, string>> = {
  0o040000: "d",
  0o120000: "l",
  0o020000: "c",
  0o060000: "b",
  0o010000: "p",
  0o140000: "s",
  0o100000: "-",
};

const permissionsByMode = new Map<number, string>();

/** `ls -l` style permissions, e.g. `-rw-r--r--`, `drwxr-xr-x`, `lrwxrwxrwx`, with s/t bits. */
export function permissionString(mode: number): string {
  // A listing repeats a handful of modes thousands of times; there are at most 2^16 of them.
  let text = permissionsByMode.get(mode);
  if (text === undefined) {
    text = formatPermissions(mode);
    permissionsByMode.set(mode, text);
  }
  return text;
}

function formatPermissions(mode: number): string {
  const bit = (mask: number, ch: string): string => (mode & mask ? ch : "-");
  const special = (exec: number, flag: number, on: string): string => (mode & flag ? (mode & exec ? on : on.toUpperCase()) : mode & exec ? "x" : "-");
  return (
    (TYPE_CHAR[mode & S_IFMT] ?? "?") +
    bit(0o400, "r") +
    bit(0o200, "w") +
    special(0o100, 0o4000, "s") +
    bit(0o040, "r") +
    bit(0o020, "w") +
    special(0o010, 0o2000, "s") +
    bit(0o004, "r") +
    bit(0o002, "w") +
    special(0o001, 0o1000, "t")
  );
}

/** Stats times are fractional milliseconds; Timestamp wants whole seconds and integral nanos. */
export function timestampFromStatsMs(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.max(0, Math.round((ms - seconds * 1000) * 1e6)));
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos });
}

/** Owner and group names for ids. */
export interface Names {
  readonly user: (uid: number) => string;
  readonly group: (gid: number) => string;
}

const liveNames: Names = { user: userName, group: groupName };

/**
 * Names remembered for the length of one call. Each lookup in users.ts checks whether
 * /etc/passwd changed (two stat calls); a listing of thousands of entries owned by a handful of
 * users should pay that once per id, not once per entry.
 */
export function memoizedNames(): Names {
  const users = new Map<number, string>();
  const groups = new Map<number, string>();
  const memo =
    (cache: Map<number, string>, lookup: (id: number) => string) =>
    (id: number): string => {
      let name = cache.get(id);
      if (name === undefined) {
        name = lookup(id);
        cache.set(id, name);
      }
      return name;
    };
  return { user: memo(users, userName), group: memo(groups, groupName) };
}

function fileType(st: FileStats | undefined): FileType {
  if (st === undefined) return FileType.UNSPECIFIED;
  if (st.isDirectory()) return FileType.DIRECTORY;
  return FileType.FILE;
}

/** What a symlink points to: its text, and the stats of its final target (none when dangling). */
export interface LinkInfo {
  readonly target: string | undefined;
  readonly targetStats: FileStats | undefined;
}

export async function linkInfo(access: FileAccess, path: string): Promise<LinkInfo> {
  const [target, targetStats] = await Promise.all([access.readlink(path).catch(() => undefined), access.stat(path).catch(() => undefined)]);
  return { target, targetStats };
}

/**
 * EntryInfo from an lstat result (and, for a symlink, its LinkInfo). A symlink reports its target
 * in `symlinkTarget` and the type of what it points to (unspecified when the link is dangling);
 * mode, size and permissions are the link's own, as `ls -l` shows them.
 */
export function buildEntry(path: string, st: FileStats, names: Names = liveNames, link?: LinkInfo): EntryInfo {
  return create(EntryInfoSchema, {
    name: posix.basename(path) || "/",
    type: fileType(st.isSymbolicLink() ? link?.targetStats : st),
    path,
    size: BigInt(st.size),
    mode: st.mode & 0o7777,
    permissions: permissionString(st.mode),
    owner: names.user(st.uid),
    group: names.group(st.gid),
    modifiedTime: timestampFromStatsMs(st.mtimeMs),
    symlinkTarget: st.isSymbolicLink() ? link?.target : undefined,
  });
}

export async function entryInfo(access: FileAccess, path: string): Promise<EntryInfo> {
  const st = await access.lstat(path);
  return buildEntry(path, st, liveNames, st.isSymbolicLink() ? await linkInfo(access, path) : undefined);
}
