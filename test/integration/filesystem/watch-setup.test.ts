/**
 * The setup of a recursive watch on a large tree takes a while (every directory is read and given
 * an inotify watch: about 0.3 s for 10,000 on a quiet machine, so the tree holds three times that). A request's deadline, or its client going away, must stop
 * that setup: the caller gets deadline_exceeded when its deadline passes, not when the scan ends,
 * and the agent stops scanning and gives back every inotify watch it took. Found by the fuzz
 * campaign: a gRPC WatchDir with a 540 ms deadline on its scratch tree went unanswered for 15 s.
 *
 * Nothing here measures time. The tree holds TREE_DIRS directories; each check counts the
 * process's inotify watches (the kernel's own table) at the moment the answer arrives: fewer than
 * the tree holds means the answer did not wait for the scan.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { mkdirSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Filesystem, WatchDirRequestSchema } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { expectConnectError, inotifyWatchCount, watchersOpen } from "../../helpers/filesystem.js";

const WIDE = 100;
const DEEP = 300;
const TREE_DIRS = WIDE * DEEP;
const DEADLINE_MS = 200;

let agent: TestAgent;
let dir: { path: string; cleanup: () => Promise<void> };
let watchesBefore: number;

beforeAll(async () => {
  agent = await startTestAgent();
  dir = await tempDir("agent-fs-watch-setup-");
  for (let i = 0; i < WIDE; i++) for (let j = 0; j < DEEP; j++) mkdirSync(join(dir.path, `d${i}`, `e${j}`), { recursive: true });
  watchesBefore = inotifyWatchCount();
}, 120_000);
afterEach(async () => {
  // The abandoned scan is stopped: every watch of it given back, in the kernel and in the books.
  await eventually(async () => (await watchersOpen(agent)) === 0 && inotifyWatchCount() === watchesBefore, 30_000, 50);
});
afterAll(async () => {
  await agent?.close();
  await dir?.cleanup();
});

/** Inotify watches held beyond the baseline: how far the scan of the tree had got. */
function scanned(): number {
  return inotifyWatchCount() - watchesBefore;
}

describe("a deadline stops the setup of a watch", () => {
  it("gRPC WatchDir, the client not enforcing its grpc-timeout: deadline_exceeded before the scan ends", async () => {
    const session = http2.connect(agent.url);
    try {
      const body = toBinary(WatchDirRequestSchema, create(WatchDirRequestSchema, { path: dir.path, recursive: true }));
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      const answer = await new Promise<{ status: string | undefined; message: string | undefined; scannedAtAnswer: number }>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/sandboxagent.Filesystem/WatchDir",
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": `${DEADLINE_MS}m`,
          ...AUTH,
        });
        let headers: http2.IncomingHttpHeaders = {};
        stream.on("response", (h) => (headers = h));
        stream.on("trailers", (trailers) => {
          const scannedAtAnswer = scanned();
          const status = String(trailers["grpc-status"] ?? "");
          resolve({ status, message: trailers["grpc-message"] as string | undefined, scannedAtAnswer });
        });
        stream.on("data", () => undefined);
        stream.on("end", () => {
          // A trailers-only answer carries the status in the headers.
          if (headers["grpc-status"] !== undefined) {
            resolve({ status: String(headers["grpc-status"]), message: headers["grpc-message"] as string | undefined, scannedAtAnswer: scanned() });
          }
        });
        stream.on("error", reject);
        stream.end(frame);
      });
      expect(answer.status).toBe(String(Code.DeadlineExceeded));
      expect(answer.scannedAtAnswer).toBeLessThan(TREE_DIRS);
    } finally {
      session.close();
    }
  });

  it("Connect CreateWatcher as curl sends it: deadline_exceeded before the scan ends, no watcher left", async () => {
    const res = await fetch(`${agent.url}/sandboxagent.Filesystem/CreateWatcher`, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json", "connect-timeout-ms": String(DEADLINE_MS) },
      body: JSON.stringify({ path: dir.path, recursive: true }),
    });
    const scannedAtAnswer = scanned();
    const error = (await res.json()) as { code?: string };
    expect(error.code).toBe("deadline_exceeded");
    expect(scannedAtAnswer).toBeLessThan(TREE_DIRS);
  });

  it("connect-node client whose own deadline passes and leaves: the scan stops short of the tree", async () => {
    const fs = client(Filesystem, agent.url, "connect-h2");
    await expectConnectError(
      (async () => {
        for await (const message of fs.watchDir({ path: dir.path, recursive: true }, { headers: AUTH, timeoutMs: DEADLINE_MS })) {
          expect(message.event.case).not.toBe("filesystem");
        }
      })(),
      Code.DeadlineExceeded,
    );
    let most = scanned();
    await eventually(
      async () => {
        most = Math.max(most, scanned());
        return (await watchersOpen(agent)) === 0 && scanned() === 0;
      },
      30_000,
      50,
    );
    expect(most).toBeLessThan(TREE_DIRS);
  });
});
