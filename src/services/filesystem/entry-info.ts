/** Builds the EntryInfo message that every Filesystem RPC returns for a path. */
import { create } from "@bufbuild/protobuf";
import { TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Stats } from "node:fs";
import { lstat, readlink, stat } from "node:fs/promises";
import { posix } from "node:path";
import { EntryInfoSchema, FileType, type EntryInfo } from "../../gen/sandboxagent/api_pb.js";
import { groupName, userName } from "../../users.js";

const S_IFMT = 0o170000;
const TYPE_CHAR: Readonly<Record<number, string>> = {
  0o040000: "d", 0o120000: "l", 0o020000: "c", 0o060000: "b", 0o010000: "p", 0o140000: "s", 0o100000: "-",
};

/** `ls -l` style permissions, e.g. `-rw-r--r--`, `drwxr-xr-x`, `lrwxrwxrwx`, with s/t bits. */
export function permissionString(mode: number): string {
  const bit = (mask: number, ch: string): string => (mode & mask ? ch : "-");
  const special = (exec: number, flag: number, on: string): string =>
    mode & flag ? (mode & exec ? on : on.toUpperCase()) : mode & exec ? "x" : "-";
  return (
    (TYPE_CHAR[mode & S_IFMT] ?? "?") +
    bit(0o400, "r") + bit(0o200, "w") + special(0o100, 0o4000, "s") +
    bit(0o040, "r") + bit(0o020, "w") + special(0o010, 0o2000, "s") +
    bit(0o004, "r") + bit(0o002, "w") + special(0o001, 0o1000, "t")
  );
}

/** Stats times are fractional milliseconds; Timestamp wants whole seconds and integral nanos. */
export function timestampFromStatsMs(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.max(0, Math.round((ms - seconds * 1000) * 1e6)));
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos });
}

function fileType(st: Stats | undefined): FileType {
  if (st === undefined) return FileType.UNSPECIFIED;
  if (st.isDirectory()) return FileType.DIRECTORY;
  return FileType.FILE;
}

/**
 * EntryInfo from an lstat result. A symlink reports its target in `symlinkTarget` and the type of
 * what it points to (unspecified when the link is dangling); mode and permissions are the link's own.
 */
export async function entryFromStats(path: string, st: Stats): Promise<EntryInfo> {
  let symlinkTarget: string | undefined;
  let typeSource: Stats | undefined = st;
  if (st.isSymbolicLink()) {
    symlinkTarget = await readlink(path).catch(() => undefined);
    typeSource = await stat(path).catch(() => undefined);
  }
  return create(EntryInfoSchema, {
    name: posix.basename(path) || "/",
    type: fileType(typeSource),
    path,
    size: BigInt(st.size),
    mode: st.mode & 0o7777,
    permissions: permissionString(st.mode),
    owner: userName(st.uid),
    group: groupName(st.gid),
    modifiedTime: timestampFromStatsMs(st.mtimeMs),
    symlinkTarget,
  });
}

export async function entryInfo(path: string): Promise<EntryInfo> {
  return entryFromStats(path, await lstat(path));
}
