/**
 * WatchDir against a real agent and real inotify: the start message, events named relative to
 * the watched directory, recursion or not, coalescing, keepalives, errors, and the watch being
 * released when the client goes away.
 */
import { Code, type Client } from "@connectrpc/connect";
import { appendFile } from "node:fs/promises";
import { chmodSync, mkdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Filesystem } from "../../../src/gen/sandboxagent/api_pb.js";
import { COALESCE_WINDOW_MS } from "../../../src/services/filesystem/coalesce.js";
import { AUTH, client, eventually, startTestAgent, tempDir, TRANSPORT_NAMES, type TestAgent } from "../../helpers/agent.js";
import { EventType, inotifyWatchesOn, WatchStream, watchersOpen } from "../../helpers/filesystem.js";

let agent: TestAgent;
let dir: { path: string; cleanup: () => Promise<void> };
let fs: Client<typeof Filesystem>;
const streams: WatchStream[] = [];

beforeAll(async () => {
  agent = await startTestAgent();
  dir = await tempDir("agent-fs-watch-");
  fs = client(Filesystem, agent.url);
});
afterEach(async () => {
  await Promise.all(streams.splice(0).map((stream) => stream.close()));
  // Every test leaves no watch behind once its clients are gone.
  await eventually(async () => (await watchersOpen(agent)) === 0);
});
afterAll(async () => {
  await agent?.close();
  await dir?.cleanup();
});

let counter = 0;
function fresh(name = "watch"): string {
  const path = `${dir.path}/${name}-${++counter}`;
  mkdirSync(path);
  return path;
}

async function watch(path: string, recursive: boolean, headers: Record<string, string> = {}, rpc = fs): Promise<WatchStream> {
  const stream = new WatchStream(rpc, path, recursive, headers);
  streams.push(stream);
  await stream.started();
  return stream;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(TRANSPORT_NAMES)("over %s", (transportName) => {
  it("sends start first, then a create; cancelling the call releases the watch", async () => {
    const base = fresh("transport");
    const stream = await watch(base, false, {}, client(Filesystem, agent.url, transportName));
    expect(stream.messages[0]?.event.case).toBe("start");
    writeFileSync(`${base}/hello.txt`, "hi");
    await eventually(() => stream.has("hello.txt", EventType.CREATE));
    expect(inotifyWatchesOn(base)).toBeGreaterThan(0);
    await stream.close();
    await eventually(() => inotifyWatchesOn(base) === 0);
  });
});

describe("WatchDir events", () => {
  it("reports create, write and remove of direct children, and nothing deeper when not recursive", async () => {
    const base = fresh("flat");
    mkdirSync(`${base}/existing-sub`);
    const stream = await watch(base, false);
    // Not recursive: the kernel is not even asked to watch subdirectories.
    expect(inotifyWatchesOn(`${base}/existing-sub`)).toBe(0);

    writeFileSync(`${base}/a.txt`, "1");
    await eventually(() => stream.has("a.txt", EventType.CREATE));
    await appendFile(`${base}/a.txt`, "2");
    await eventually(() => stream.has("a.txt", EventType.WRITE));
    mkdirSync(`${base}/new-sub`);
    await eventually(() => stream.has("new-sub", EventType.CREATE));
    writeFileSync(`${base}/new-sub/inner.txt`, "x");
    writeFileSync(`${base}/existing-sub/inner.txt`, "x");
    unlinkSync(`${base}/a.txt`);
    await eventually(() => stream.has("a.txt", EventType.REMOVE));
    // A marker written after the nested files, and after a full coalescing window: had they been
    // reported, they would be here by the time the marker is.
    await sleep(COALESCE_WINDOW_MS * 3);
    writeFileSync(`${base}/marker`, "");
    await eventually(() => stream.has("marker", EventType.CREATE));
    expect(stream.events().filter((e) => e.name.includes("/"))).toEqual([]);
    expect(stream.events().map((e) => e.name)).not.toContain("inner.txt");
  });

  it("names nested events by their path below the watched directory when recursive", async () => {
    const base = fresh("deep");
    mkdirSync(`${base}/sub`);
    const stream = await watch(base, true);
    writeFileSync(`${base}/sub/a.txt`, "1");
    await eventually(() => stream.has("sub/a.txt", EventType.CREATE));
    mkdirSync(`${base}/sub/deeper`);
    await eventually(() => stream.has("sub/deeper", EventType.CREATE));
    writeFileSync(`${base}/sub/deeper/x.txt`, "1");
    await eventually(() => stream.has("sub/deeper/x.txt", EventType.CREATE));
    await appendFile(`${base}/sub/deeper/x.txt`, "2");
    await eventually(() => stream.has("sub/deeper/x.txt", EventType.WRITE));
    rmSync(`${base}/sub/deeper`, { recursive: true });
    await eventually(() => stream.has("sub/deeper", EventType.REMOVE) && stream.has("sub/deeper/x.txt", EventType.REMOVE));
    expect(stream.events().every((e) => !e.name.startsWith("/") && !e.name.startsWith(base))).toBe(true);
  });

  it("coalesces a burst of appends to one file into a few writes, and keeps the create", async () => {
    const base = fresh("burst");
    const stream = await watch(base, false);
    writeFileSync(`${base}/log.txt`, "");
    const started = performance.now();
    for (let i = 0; i < 100; i++) {
      await appendFile(`${base}/log.txt`, `line ${i}\n`);
      // Spread out in time, so that the watcher reports dozens of changes for the coalescer to fold.
      await sleep(2);
    }
    const elapsed = performance.now() - started;
    writeFileSync(`${base}/after`, "");
    await eventually(() => stream.has("after", EventType.CREATE));
    const writes = stream.count("log.txt", EventType.WRITE);
    expect(stream.count("log.txt", EventType.CREATE)).toBe(1);
    expect(writes).toBeGreaterThanOrEqual(1);
    // At most one write per coalescing window that saw appends (plus windows at either end, and
    // the late look at the file after the last append).
    expect(writes).toBeLessThanOrEqual(Math.ceil(elapsed / COALESCE_WINDOW_MS) + 3);
    expect(writes).toBeLessThan(50);
    // Order across files is kept: the marker came after every write of the log.
    const names = stream.events().map((e) => e.name);
    expect(names.lastIndexOf("log.txt")).toBeLessThan(names.indexOf("after"));
  });

  it("reports a rename as the old name removed and the new one created", async () => {
    const base = fresh("rename");
    writeFileSync(`${base}/old.txt`, "x");
    const stream = await watch(base, false);
    renameSync(`${base}/old.txt`, `${base}/new.txt`);
    await eventually(() => stream.has("old.txt", EventType.REMOVE) && stream.has("new.txt", EventType.CREATE));
    expect(stream.events().filter((e) => e.type === EventType.RENAME)).toEqual([]);
  });

  it("reports a mode change as CHMOD, for files older than the watch and new ones", async () => {
    const base = fresh("chmod");
    writeFileSync(`${base}/old.sh`, "");
    const stream = await watch(base, false);
    chmodSync(`${base}/old.sh`, 0o755);
    await eventually(() => stream.has("old.sh", EventType.CHMOD));
    writeFileSync(`${base}/new.sh`, "");
    await eventually(() => stream.has("new.sh", EventType.CREATE));
    chmodSync(`${base}/new.sh`, 0o700);
    await eventually(() => stream.has("new.sh", EventType.CHMOD));
    expect(stream.count("old.sh", EventType.WRITE)).toBe(0);
  });

  it('reports the watched directory\'s removal as REMOVE of "" and ends the stream', async () => {
    const base = fresh("gone");
    const stream = await watch(base, true);
    rmSync(base, { recursive: true });
    expect(await stream.done).toBeUndefined();
    expect(stream.has("", EventType.REMOVE)).toBe(true);
  });
});

describe("WatchDir keepalives and lifetime", () => {
  it("sends keepalives at the client's Keepalive-Ping-Interval", async () => {
    const stream = await watch(fresh("keepalive"), false, { "keepalive-ping-interval": "1" });
    await eventually(() => stream.messages.filter((m) => m.event.case === "keepalive").length >= 2);
    await stream.close();
  });

  it("stops watching when the client goes away", async () => {
    const base = fresh("abort");
    mkdirSync(`${base}/sub`);
    const stream = await watch(base, true);
    expect(await watchersOpen(agent)).toBe(1);
    expect(inotifyWatchesOn(base)).toBeGreaterThan(0);
    expect(inotifyWatchesOn(`${base}/sub`)).toBeGreaterThan(0);
    await stream.close();
    await eventually(() => inotifyWatchesOn(base) === 0 && inotifyWatchesOn(`${base}/sub`) === 0);
    await eventually(async () => (await watchersOpen(agent)) === 0);
  });

  it("a missing path is not_found and a file invalid_argument, before any message", async () => {
    const base = fresh("errors");
    writeFileSync(`${base}/file`, "");
    const missing = new WatchStream(fs, `${base}/missing`, false);
    const notDir = new WatchStream(fs, `${base}/file`, true);
    const missingErr = await missing.done;
    expect(missingErr?.code).toBe(Code.NotFound);
    expect(missingErr?.rawMessage).toMatch(/not found/);
    expect(missingErr?.rawMessage).toMatch(/no such file or directory/);
    expect(missing.messages).toEqual([]);
    const notDirErr = await notDir.done;
    expect(notDirErr?.code).toBe(Code.InvalidArgument);
    expect(notDirErr?.rawMessage).toMatch(/not a directory/);
    expect(notDir.messages).toEqual([]);
  });

  it("sends a stream error as an end-stream frame inside a 200 reply (Connect JSON)", async () => {
    const body = Buffer.from(JSON.stringify({ path: `${dir.path}/nothing-here`, recursive: false }));
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
    envelope.writeUInt32BE(body.length, 1);
    const res = await fetch(`${agent.url}/sandboxagent.Filesystem/WatchDir`, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/connect+json", "connect-protocol-version": "1" },
      body: envelope,
    });
    expect(res.status).toBe(200);
    const frame = Buffer.from(await res.arrayBuffer());
    expect(frame[0]! & 0b10).toBe(0b10); // the end-stream flag
    const end = JSON.parse(frame.subarray(5).toString("utf8")) as { error?: { code: string; message: string } };
    expect(end.error?.code).toBe("not_found");
    expect(end.error?.message).toContain("no such file or directory");
  });
});

describe("WatchDir and the agent shutting down", () => {
  it("ends open streams and releases their watches when the agent closes", async () => {
    const own = await startTestAgent();
    const base = fresh("shutdown");
    const stream = new WatchStream(client(Filesystem, own.url), base, true);
    await stream.started();
    expect(inotifyWatchesOn(base)).toBeGreaterThan(0);
    await own.close();
    await stream.done;
    expect(inotifyWatchesOn(base)).toBe(0);
  });
});
