/**
 * The tree watcher against real inotify: what it reports for trees that appear, move in, move out
 * and go away, and that it holds one watch per directory (none per file) and gives them all back.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TreeWatcher, type TreeEventName } from "../../../src/services/filesystem/tree-watcher.js";
import { eventually, tempDir } from "../../helpers/agent.js";
import { inotifyWatchCount } from "../../helpers/filesystem.js";

let dir: { path: string; cleanup: () => Promise<void> };
let outside: { path: string; cleanup: () => Promise<void> };
let watcher: TreeWatcher | undefined;
let seen: string[];
let errors: unknown[];

beforeEach(async () => {
  dir = await tempDir("agent-tree-watch-");
  outside = await tempDir("agent-tree-outside-");
  seen = [];
  errors = [];
});
afterEach(async () => {
  watcher?.close();
  watcher = undefined;
  await dir.cleanup();
  await outside.cleanup();
});

async function open(recursive = true): Promise<TreeWatcher> {
  const st = await stat(dir.path);
  watcher = await TreeWatcher.open(dir.path, st, recursive, {
    event: (name: TreeEventName, absolute: string) => seen.push(`${name} ${absolute.slice(dir.path.length) || "/"}`),
    error: (err) => errors.push(err),
  });
  return watcher;
}

const has = (...events: string[]) => eventually(() => events.every((event) => seen.includes(event)));

describe("TreeWatcher (real inotify)", () => {
  it("holds one watch per directory, none per file, and gives every one back on close", async () => {
    for (let i = 0; i < 20; i++) {
      mkdirSync(join(dir.path, `d${i}`, "sub"), { recursive: true });
      for (let f = 0; f < 10; f++) writeFileSync(join(dir.path, `d${i}`, "sub", `f${f}`), "x");
    }
    const before = inotifyWatchCount();
    const w = await open();
    expect(w.size).toBe(1 + 20 * 2);
    expect(inotifyWatchCount() - before).toBe(1 + 20 * 2);
    expect(seen).toEqual([]); // what was there before the watch is not reported
    w.close();
    expect(inotifyWatchCount()).toBe(before);
  });

  it("reports a tree made at once, down to the file made before its directory was watched", async () => {
    await open();
    mkdirSync(join(dir.path, "a", "b", "c"), { recursive: true });
    writeFileSync(join(dir.path, "a", "b", "c", "f"), "data");
    await has("addDir /a", "addDir /a/b", "addDir /a/b/c", "add /a/b/c/f");
    // Parents before children, as they were made.
    expect(seen.indexOf("addDir /a")).toBeLessThan(seen.indexOf("addDir /a/b"));
    expect(seen.indexOf("addDir /a/b")).toBeLessThan(seen.indexOf("addDir /a/b/c"));
    // And the new directories are watched: a later write deep down is seen.
    writeFileSync(join(dir.path, "a", "b", "c", "f"), "more data");
    await has("change /a/b/c/f");
  });

  it("reports a write, a chmod and a removal of a file that predates the watch", async () => {
    writeFileSync(join(dir.path, "old"), "1");
    await open();
    await writeFile(join(dir.path, "old"), "22");
    await has("change /old");
    await rm(join(dir.path, "old"));
    await has("unlink /old");
  });

  it("reports a tree moved out as removed, everything in it included, and stops watching it", async () => {
    mkdirSync(join(dir.path, "moving", "inner"), { recursive: true });
    writeFileSync(join(dir.path, "moving", "inner", "f"), "x");
    const w = await open();
    await rename(join(dir.path, "moving"), join(outside.path, "moved"));
    await has("unlinkDir /moving", "unlinkDir /moving/inner", "unlink /moving/inner/f");
    expect(w.size).toBe(1);
    // What happens to it where it went is not ours to report.
    writeFileSync(join(outside.path, "moved", "inner", "g"), "y");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen.some((event) => event.includes("/g"))).toBe(false);
  });

  it("reports a tree moved in as added, everything in it included, and watches it", async () => {
    mkdirSync(join(outside.path, "incoming", "inner"), { recursive: true });
    writeFileSync(join(outside.path, "incoming", "inner", "f"), "x");
    const w = await open();
    await rename(join(outside.path, "incoming"), join(dir.path, "arrived"));
    await has("addDir /arrived", "addDir /arrived/inner", "add /arrived/inner/f");
    expect(w.size).toBe(3);
  });

  it("watches only the directory itself unless recursive", async () => {
    mkdirSync(join(dir.path, "sub"));
    const w = await open(false);
    expect(w.size).toBe(1);
    writeFileSync(join(dir.path, "sub", "deep"), "x");
    await mkdir(join(dir.path, "new"));
    await has("addDir /new");
    expect(seen.some((event) => event.includes("deep"))).toBe(false);
    expect(w.size).toBe(1);
  });

  it("reports the root's removal as unlinkDir of the root, and lets go of everything", async () => {
    mkdirSync(join(dir.path, "sub"));
    const before = inotifyWatchCount();
    await open();
    await rm(dir.path, { recursive: true });
    await has("unlinkDir /");
    await eventually(() => inotifyWatchCount() <= before);
    expect(errors).toEqual([]);
  });

  it("reports the root replaced by another directory of the same name", async () => {
    await open();
    await rename(dir.path, `${dir.path}.old`);
    await mkdir(dir.path);
    await has("unlinkDir /");
    await rm(`${dir.path}.old`, { recursive: true });
  });
});
