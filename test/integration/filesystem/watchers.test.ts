/**
 * Polled watchers (CreateWatcher / GetWatcherEvents / RemoveWatcher), and what happens when
 * events outrun a consumer, with an agent configured for a tiny buffer and the shortest idle time.
 */
import { Code, type Client } from "@connectrpc/connect";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Filesystem, type FilesystemEvent } from "../../../src/gen/sandboxagent/api_pb.js";
import { COALESCE_WINDOW_MS } from "../../../src/services/filesystem/coalesce.js";
import { AUTH, client, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { EventType, expectConnectError, inotifyWatchesOn, WatchStream, watchersOpen } from "../../helpers/filesystem.js";

const MAX_EVENTS = 5;
const IDLE_MS = 1000;

let agent: TestAgent;
let dir: { path: string; cleanup: () => Promise<void> };
let fs: Client<typeof Filesystem>;
const call = { headers: AUTH };

beforeAll(async () => {
  agent = await startTestAgent({ watcherMaxEvents: MAX_EVENTS, watcherIdleMs: IDLE_MS });
  dir = await tempDir("agent-fs-watchers-");
  fs = client(Filesystem, agent.url);
});
afterEach(async () => {
  // Every test removes its watchers or lets them expire: none may outlive it.
  await eventually(async () => (await watchersOpen(agent)) === 0);
});
afterAll(async () => {
  await agent?.close();
  await dir?.cleanup();
});

let counter = 0;
function fresh(name = "watchers"): string {
  const path = `${dir.path}/${name}-${++counter}`;
  mkdirSync(path);
  return path;
}

const named = (events: FilesystemEvent[]): Array<[string, EventType]> => events.map((e) => [e.name, e.type]);

/** Polls until `done` holds over everything received so far; returns all of it. */
async function pollUntil(watcherId: string, done: (events: FilesystemEvent[]) => boolean): Promise<FilesystemEvent[]> {
  const all: FilesystemEvent[] = [];
  await eventually(async () => {
    all.push(...(await fs.getWatcherEvents({ watcherId }, call)).events);
    return done(all);
  });
  return all;
}

describe("polled watchers", () => {
  it("carry each event's entry when asked (include_entry), read when polled", async () => {
    const base = fresh();
    const { watcherId } = await fs.createWatcher({ path: base, recursive: true, includeEntry: true }, call);
    writeFileSync(`${base}/with-entry.txt`, "12345");
    const events = await pollUntil(watcherId, (all) => all.some((e) => e.type === EventType.WRITE));
    const write = events.find((e) => e.name === "with-entry.txt" && e.type === EventType.WRITE);
    expect(write?.entry).toMatchObject({ name: "with-entry.txt", path: `${base}/with-entry.txt`, size: 5n });
    const plain = await fs.createWatcher({ path: base, recursive: false }, call);
    writeFileSync(`${base}/without.txt`, "x");
    const others = await pollUntil(plain.watcherId, (all) => all.some((e) => e.name === "without.txt"));
    expect(others.every((e) => e.entry === undefined)).toBe(true);
    await fs.removeWatcher({ watcherId }, call);
    await fs.removeWatcher({ watcherId: plain.watcherId }, call);
  });

  it("buffer events until polled, drain them, and stop on RemoveWatcher", async () => {
    const base = fresh();
    mkdirSync(`${base}/sub`);
    const { watcherId } = await fs.createWatcher({ path: base, recursive: true }, call);
    expect(watcherId).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    expect((await fs.getWatcherEvents({ watcherId }, call)).events).toEqual([]);

    writeFileSync(`${base}/one.txt`, "1");
    writeFileSync(`${base}/sub/two.txt`, "2");
    // Each new file with bytes is a CREATE and then a WRITE: wait for both files' events.
    const events = await pollUntil(watcherId, (all) =>
      ["one.txt", "sub/two.txt"].every((name) => all.some((e) => e.name === name && e.type === EventType.WRITE)),
    );
    expect(named(events)).toEqual(
      expect.arrayContaining([
        ["one.txt", EventType.CREATE],
        ["sub/two.txt", EventType.CREATE],
      ]),
    );
    // Drained: the next poll has nothing new.
    expect((await fs.getWatcherEvents({ watcherId }, call)).events).toEqual([]);

    expect(inotifyWatchesOn(base)).toBeGreaterThan(0);
    await fs.removeWatcher({ watcherId }, call);
    expect(inotifyWatchesOn(base)).toBe(0);
    await expectConnectError(fs.getWatcherEvents({ watcherId }, call), Code.NotFound, /not found/);
    await expectConnectError(fs.removeWatcher({ watcherId }, call), Code.NotFound, /not found/);
  });

  it("watch only direct children unless recursive", async () => {
    const base = fresh();
    mkdirSync(`${base}/sub`);
    const { watcherId } = await fs.createWatcher({ path: base, recursive: false }, call);
    writeFileSync(`${base}/sub/nested.txt`, "");
    writeFileSync(`${base}/top.txt`, "");
    const events = await pollUntil(watcherId, (all) => all.some((e) => e.name === "top.txt"));
    expect(events.filter((e) => e.name.includes("/"))).toEqual([]);
    expect(inotifyWatchesOn(`${base}/sub`)).toBe(0);
    await fs.removeWatcher({ watcherId }, call);
  });

  it("unknown ids are not_found; a missing path is not_found and a file invalid_argument", async () => {
    await expectConnectError(fs.getWatcherEvents({ watcherId: "no-such-watcher" }, call), Code.NotFound, /not found/);
    await expectConnectError(fs.removeWatcher({ watcherId: "no-such-watcher" }, call), Code.NotFound, /not found/);
    const base = fresh();
    writeFileSync(`${base}/file`, "");
    await expectConnectError(fs.createWatcher({ path: `${base}/missing`, recursive: false }, call), Code.NotFound, /not found/, /no such file or directory/);
    await expectConnectError(fs.createWatcher({ path: `${base}/file`, recursive: false }, call), Code.InvalidArgument, /not a directory/);
  });

  it("report an overflow instead of losing events silently, then carry on", async () => {
    const base = fresh();
    // A second agent with the default buffer watches the same directory: once it has seen every
    // event, the watcher under test has been offered them all too (same process, same inotify).
    const observerAgent = await startTestAgent();
    const observer = new WatchStream(client(Filesystem, observerAgent.url), base, false);
    try {
      await observer.started();
      const { watcherId } = await fs.createWatcher({ path: base, recursive: false }, call);
      const total = MAX_EVENTS * 4;
      for (let i = 0; i < total; i++) writeFileSync(`${base}/f${String(i).padStart(2, "0")}`, "");
      await eventually(() => observer.events().length >= total);
      // Past one more coalescing window, so the watcher under test has delivered its share.
      await new Promise((resolve) => setTimeout(resolve, COALESCE_WINDOW_MS * 2));

      // The first MAX_EVENTS are kept...
      const kept = (await fs.getWatcherEvents({ watcherId }, call)).events;
      expect(kept).toHaveLength(MAX_EVENTS);
      expect(new Set(kept.map((e) => e.name)).size).toBe(MAX_EVENTS);
      expect(kept.every((e) => /^f\d\d$/.test(e.name) && e.type === EventType.CREATE)).toBe(true);
      // ...and the rest is reported, with its count, once.
      await expectConnectError(fs.getWatcherEvents({ watcherId }, call), Code.ResourceExhausted, new RegExp(`events lost: ${total - MAX_EVENTS} `));
      expect((await fs.getWatcherEvents({ watcherId }, call)).events).toEqual([]);

      // The watcher carries on.
      writeFileSync(`${base}/later`, "");
      const later = await pollUntil(watcherId, (all) => all.some((e) => e.name === "later"));
      expect(named(later)).toContainEqual(["later", EventType.CREATE]);
      await fs.removeWatcher({ watcherId }, call);
    } finally {
      await observer.close();
      await observerAgent.close();
    }
  });

  it("are removed when nobody polls them for watcherIdleMs", async () => {
    const base = fresh();
    const { watcherId } = await fs.createWatcher({ path: base, recursive: true }, call);
    expect(inotifyWatchesOn(base)).toBeGreaterThan(0);
    // Polling keeps it alive well past the idle time...
    const keepUntil = Date.now() + IDLE_MS * 2;
    while (Date.now() < keepUntil) {
      await fs.getWatcherEvents({ watcherId }, call);
      await new Promise((resolve) => setTimeout(resolve, IDLE_MS / 4));
    }
    // ...and without polls it goes, with its inotify watches.
    await eventually(() => inotifyWatchesOn(base) === 0);
    await expectConnectError(fs.getWatcherEvents({ watcherId }, call), Code.NotFound, /not found/);
  });

  it("after the watched directory is removed, return the last events, then report the end", async () => {
    const base = fresh();
    writeFileSync(`${base}/x`, "");
    const { watcherId } = await fs.createWatcher({ path: base, recursive: false }, call);
    rmSync(base, { recursive: true });
    const events = await pollUntil(watcherId, (all) => all.some((e) => e.name === ""));
    expect(named(events)).toContainEqual(["", EventType.REMOVE]);
    await expectConnectError(fs.getWatcherEvents({ watcherId }, call), Code.NotFound, /ended/, /was removed/);
  });
});

describe("a WatchDir client that falls behind", () => {
  it("gets the first events, then the stream ends with resource_exhausted and the count", async () => {
    const base = fresh("stream");
    const stream = new WatchStream(fs, base, false);
    await stream.started();
    // One burst, far more than the stream may hold for its client while it sends.
    const total = MAX_EVENTS * 40;
    for (let i = 0; i < total; i++) writeFileSync(`${base}/f${String(i).padStart(3, "0")}`, "");
    const stillOpen = new Promise<"still open">((resolve) => setTimeout(() => resolve("still open"), 20_000));
    const end = await Promise.race([stream.done, stillOpen]);
    if (end === "still open" || end === undefined) throw new Error(`expected the stream to fail, it is ${end ?? "ended cleanly"}`);
    expect(Code[end.code]).toBe(Code[Code.ResourceExhausted]);
    const lost = Number(/events lost: (\d+)/.exec(end.rawMessage)?.[1]);
    const received = stream.events();
    expect(received.length).toBeGreaterThanOrEqual(MAX_EVENTS);
    expect(new Set(received.map((e) => e.name)).size).toBe(received.length);
    // The count covers what was dropped until the stream ended (the rest was never watched).
    expect(lost).toBeGreaterThanOrEqual(1);
    expect(received.length + lost).toBeLessThanOrEqual(total);
  });
});
