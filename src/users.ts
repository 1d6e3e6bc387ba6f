/**
 * Linux users and groups, read from /etc/passwd and /etc/group. The tables are cached and re-read
 * when the files change, so users added inside a running sandbox are seen without a restart.
 */
import { readFileSync, statSync } from "node:fs";

export interface User {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
  /** Supplementary group ids, the primary gid included. */
  readonly groups: readonly number[];
}

interface Tables {
  readonly byName: ReadonlyMap<string, User>;
  readonly userNames: ReadonlyMap<number, string>;
  readonly groupNames: ReadonlyMap<number, string>;
}

const files = { passwd: "/etc/passwd", group: "/etc/group" };
let cached: { key: string; tables: Tables } | undefined;

function fileKey(): string {
  const stamp = (path: string): string => {
    try {
      const st = statSync(path);
      return `${st.mtimeMs}:${st.size}`;
    } catch {
      return "missing";
    }
  };
  return `${stamp(files.passwd)}|${stamp(files.group)}`;
}

function readLines(path: string): string[][] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => line.split(":"));
}

function load(): Tables {
  const groupNames = new Map<number, string>();
  const membersOf = new Map<string, number[]>();
  for (const [name, , gidText, members] of readLines(files.group)) {
    const gid = Number(gidText);
    if (name === undefined || !Number.isInteger(gid)) continue;
    if (!groupNames.has(gid)) groupNames.set(gid, name);
    for (const member of (members ?? "").split(",")) {
      if (member === "") continue;
      const list = membersOf.get(member) ?? [];
      list.push(gid);
      membersOf.set(member, list);
    }
  }
  const byName = new Map<string, User>();
  const userNames = new Map<number, string>();
  for (const [name, , uidText, gidText, , home, shell] of readLines(files.passwd)) {
    const uid = Number(uidText);
    const gid = Number(gidText);
    if (name === undefined || !Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    const groups = [...new Set([gid, ...(membersOf.get(name) ?? [])])];
    byName.set(name, { name, uid, gid, home: home || "/", shell: shell || "/bin/sh", groups });
    if (!userNames.has(uid)) userNames.set(uid, name);
  }
  return { byName, userNames, groupNames };
}

/** Whether the files were checked in this turn of the event loop (see tables). */
let checkedThisTurn = false;

/**
 * The tables as the files are now. The files are checked (two stats) once per turn of the event
 * loop, not on every lookup: a Stat looks up three names, a request's whole work mostly runs in
 * one turn, and what a caller changed before sending its request is seen. A name not found is
 * checked again at once (`recheck`), so a user added a moment ago is never refused.
 */
function tables(recheck = false): Tables {
  if (cached !== undefined && checkedThisTurn && !recheck) return cached.tables;
  const key = fileKey();
  if (cached === undefined || cached.key !== key) cached = { key, tables: load() };
  if (!checkedThisTurn) {
    checkedThisTurn = true;
    setImmediate(() => {
      checkedThisTurn = false;
    });
  }
  return cached.tables;
}

export function lookupUser(name: string): User | undefined {
  // A miss in a turn that has not checked the files yet was just checked by tables().
  const checkedBefore = checkedThisTurn;
  return tables().byName.get(name) ?? (checkedBefore ? tables(true).byName.get(name) : undefined);
}

/** The user name for a uid, or the number itself as text (as `ls -l` shows unknown owners). */
export function userName(uid: number): string {
  return tables().userNames.get(uid) ?? String(uid);
}

export function groupName(gid: number): string {
  return tables().groupNames.get(gid) ?? String(gid);
}

/** Whether this agent may give files away and start processes as other users. */
export const isPrivileged = (): boolean => process.getuid?.() === 0;
