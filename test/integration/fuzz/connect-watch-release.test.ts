/**
 * Regression found by the Connect fuzz campaign: a recursive watch whose directory is removed
 * ends (REMOVE of "", then the end of the stream), but chokidar 4.0.3 then re-added a watch on
 * the parent directory after the agent had closed the watcher. Nobody closed that one: the agent
 * held an inotify handle for good, and a process that closed its agent never exited. Fixed then
 * in watch.ts (a closed watcher stays closed); chokidar has since given way to tree-watcher.ts,
 * and this still checks that an ended watch holds no inotify watch, in the kernel's own table.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Filesystem } from "../../../src/gen/sandboxagent/api_pb.js";
import { WatchGroup } from "../../../src/services/filesystem/watch.js";
import { fileAccessFor } from "../../../src/user-fs/access.js";
import { lookupUser } from "../../../src/users.js";
import { AUTH, client, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { inotifyWatchCount } from "../../helpers/filesystem.js";

let agent: TestAgent;
let dir: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  agent = await startTestAgent({ kernelPoolSize: 0 });
  dir = await tempDir();
});
afterAll(async () => {
  await agent?.close();
  await dir?.cleanup();
});

describe("a watch whose directory is removed lets go of every handle", () => {
  for (const recursive of [true, false]) {
    it(`WatchGroup, ${recursive ? "recursive" : "one level"}`, async () => {
      const before = inotifyWatchCount();
      // Each case under its own parent: the leaked handle watched the parent directory.
      const gone = join(dir.path, `group-${recursive}`, "watched");
      await mkdir(join(gone, "sub", "deeper"), { recursive: true });
      let ended = false;
      const group = new WatchGroup();
      await group.open(fileAccessFor(lookupUser("root")!), gone, recursive, { events: () => undefined, ended: () => (ended = true) });
      await rm(gone, { recursive: true });
      await eventually(() => ended);
      await group.closeAll();
      // chokidar's late re-add came within milliseconds; a late one would show in this time.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await eventually(() => inotifyWatchCount() === before, 5_000);
    });
  }

  it("WatchDir over RPC: the stream ends and the agent holds no watch handle", async () => {
    const before = inotifyWatchCount();
    const gone = join(dir.path, "streamed", "watched");
    await mkdir(join(gone, "sub"), { recursive: true });
    const events: string[] = [];
    const stream = client(Filesystem, agent.url, "connect-h2").watchDir({ path: gone, recursive: true }, { headers: AUTH });
    const reading = (async () => {
      for await (const message of stream) {
        events.push(message.event.case ?? "none");
        if (message.event.case === "start") await rm(gone, { recursive: true });
      }
    })();
    await reading;
    expect(events[0]).toBe("start");
    await new Promise((resolve) => setTimeout(resolve, 300));
    await eventually(() => inotifyWatchCount() === before, 5_000);
  });
});
