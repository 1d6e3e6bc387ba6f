/**
 * The official @scalebox/sdk driving the Filesystem service of a real agent, through a local
 * control-plane stand-in: files.list/makeDir/move/remove/exists/stat, watchDir and createWatcher.
 */
import { chmodSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, tempDir, type TestAgent } from "../../helpers/agent.js";
import { startSdkSession, type SdkSandbox, type SdkSession } from "../../helpers/sdk.js";
import { watchersOpen } from "../../helpers/filesystem.js";

let session: SdkSession;
let agent: TestAgent;
let dir: { path: string; cleanup: () => Promise<void> };
let sbx: SdkSandbox;

/** Long enough for the test on a busy machine; the watch is released when it runs out. */
const WATCH_TIMEOUT_MS = 10_000;

beforeAll(async () => {
  // The SDK's abort of a watch can be lost to a garbage collection in undici (watch-dir.ts); the
  // agent then ends the stream itself at its default, set here to the SDK's timeout.
  session = await startSdkSession({ watchDefaultTimeoutMs: WATCH_TIMEOUT_MS });
  ({ agent, sandbox: sbx } = session);
  dir = await tempDir("agent-sdk-fs-");
});
afterAll(async () => {
  await session?.close();
  await dir?.cleanup();
});

let counter = 0;
function fresh(name = "sdk"): string {
  const path = `${dir.path}/${name}-${++counter}`;
  mkdirSync(path);
  return path;
}

describe("sdk files", () => {
  it("list: direct children by default, the whole tree when recursive, symlinks not followed", async () => {
    const base = fresh("list");
    mkdirSync(`${base}/sub/deeper`, { recursive: true });
    writeFileSync(`${base}/top.txt`, "top");
    writeFileSync(`${base}/sub/deeper/leaf.txt`, "leaf");
    symlinkSync("..", `${base}/sub/up`);

    const flat = await sbx.files.list(base);
    expect(flat.map((e) => [e.name, e.type])).toEqual([
      ["sub", "directory"],
      ["top.txt", "file"],
    ]);
    expect(flat.find((e) => e.name === "top.txt")).toMatchObject({ size: 3, path: `${base}/top.txt`, owner: "root", permissions: "-rw-r--r--" });

    const all = await sbx.files.list(base, { recursive: true });
    expect(all.map((e) => e.path.slice(base.length))).toEqual(["/sub", "/sub/deeper", "/sub/deeper/leaf.txt", "/sub/up", "/top.txt"]);
    expect(all.find((e) => e.name === "up")?.symlinkTarget).toBe("..");
  });

  it("makeDir: creates and returns the directory; an existing one is an error", async () => {
    const base = fresh("mkdir");
    const made = await sbx.files.makeDir(`${base}/a/b`);
    expect(made).toEqual({ name: "b", type: "directory", path: `${base}/a/b` });
    expect(statSync(`${base}/a/b`).isDirectory()).toBe(true);
    await expect(sbx.files.makeDir(`${base}/a/b`)).rejects.toThrow(/already exists/);
  });

  it("makeDir as another user: the new directories belong to that user", async () => {
    const base = fresh("mkdir-user");
    // nobody makes them itself, so it needs the right to: a directory it can write, in a tree it can enter.
    chmodSync(dir.path, 0o711);
    chmodSync(base, 0o777);
    await sbx.files.makeDir(`${base}/mine/too`, { user: "nobody" });
    expect(statSync(`${base}/mine`).uid).toBe(65534);
    expect(statSync(`${base}/mine/too`).uid).toBe(65534);
    expect(statSync(base).uid).toBe(0);
  });

  it("move, stat, exists and remove", async () => {
    const base = fresh("move");
    writeFileSync(`${base}/from.txt`, "moving");
    const moved = await sbx.files.move(`${base}/from.txt`, `${base}/to/here.txt`);
    expect(moved).toEqual({ name: "here.txt", type: "file", path: `${base}/to/here.txt` });
    expect(readFileSync(`${base}/to/here.txt`, "utf8")).toBe("moving");
    expect(await sbx.files.exists(`${base}/from.txt`)).toBe(false);
    expect(await sbx.files.exists(`${base}/to/here.txt`)).toBe(true);

    const info = await sbx.files.stat(`${base}/to/here.txt`);
    expect(info).toMatchObject({ name: "here.txt", type: "file", size: 6, owner: "root", group: "root", permissions: "-rw-r--r--" });
    expect(info.modifiedAt.getTime()).toBe(Math.floor(statSync(`${base}/to/here.txt`).mtimeMs / 1000) * 1000);

    await expect(sbx.files.move(`${base}/from.txt`, `${base}/elsewhere`)).rejects.toThrow(/not found/);
    await sbx.files.remove(`${base}/to`);
    expect(await sbx.files.exists(`${base}/to`)).toBe(false);
    // Removing what is not there succeeds: the platform's backend relies on it.
    await sbx.files.remove(`${base}/to`);
    expect(await sbx.files.exists(`${base}/to`)).toBe(false);
  });

  it("watchDir: streams events with nested names when recursive", async () => {
    const base = fresh("watch");
    mkdirSync(`${base}/sub`);
    const events: Array<{ type: string; name: string; path?: string }> = [];
    const before = await watchersOpen(agent);
    const reading = (async () => {
      // The SDK cannot cancel a watch: connect-es client streams have no return(), so leaving the
      // loop keeps the call open until its request timeout aborts it. A short one ends it soon.
      for await (const event of sbx.files.watchDir(base, { recursive: true, requestTimeoutMs: WATCH_TIMEOUT_MS })) {
        events.push(event);
        if (event.name === "done.txt") break;
      }
    })();
    // The SDK swallows the start message, so probe until the watch reports something.
    let probes = 0;
    await eventually(
      () => {
        writeFileSync(`${base}/probe-${++probes}`, "");
        return events.length > 0;
      },
      10_000,
      100,
    );
    writeFileSync(`${base}/sub/a.txt`, "a");
    await eventually(() => events.some((e) => e.name === "sub/a.txt" && e.type === "create"));
    writeFileSync(`${base}/sub/a.txt`, "aa", { flag: "a" });
    await eventually(() => events.some((e) => e.name === "sub/a.txt" && e.type === "write"));
    writeFileSync(`${base}/done.txt`, "");
    await reading;
    expect(events.find((e) => e.name === "sub/a.txt")?.path).toBe(`${base}/sub/a.txt`);
    // When the SDK's timeout aborts the call, the agent lets go of the watch.
    await eventually(async () => (await watchersOpen(agent)) === before, WATCH_TIMEOUT_MS * 2);
  });

  it("createWatcher: polls events, then removes the watcher", async () => {
    const base = fresh("poll");
    const watcher = await sbx.files.createWatcher(base, { recursive: false });
    expect(watcher.id).not.toBe("");
    writeFileSync(`${base}/polled.txt`, "");
    const seen: Array<{ type: string; name: string }> = [];
    await eventually(async () => {
      seen.push(...(await watcher.getEvents()));
      return seen.some((e) => e.name === "polled.txt" && e.type === "create");
    });
    await watcher.remove();
    await expect(watcher.getEvents()).rejects.toThrow(/not found/);
  });
});
