/**
 * Fault: a client disappears in the middle of a call, by cutting its connection (HTTP/1.1 socket
 * destroyed, HTTP/2 session destroyed) or by resetting its HTTP/2 stream. Whatever it was doing
 * (an upload, a download, a process stream, a directory watch), the agent must release what the
 * call held: the staging file and its descriptor, the file being read, the watch and its inotify
 * watches; a process it started keeps running (a departed client only detaches, see
 * src/services/process/start.ts) until it is killed through the API. Meanwhile and afterwards
 * the agent serves everyone else.
 *
 * Already covered elsewhere, and not repeated here: test/integration/http/upload.test.ts (an HTTP/1.1 upload
 * cut midway leaves no temporary file), test/integration/http/download.test.ts (the file is closed after an
 * HTTP/1.1 client leaves), test/integration/process/start.test.ts (a graceful cancel over HTTP/2 does not
 * kill the process), test/integration/filesystem/watch-dir.test.ts (a graceful cancel releases the watch).
 * This file adds HTTP/2, cut connections, and the whole-agent accounting of harness/probe.ts and
 * /metrics after each of them.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { readFile, truncate, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Filesystem, Process, Signal } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { inotifyWatchesOn, WatchStream } from "../../helpers/filesystem.js";
import { boundary, downloadPath, leftovers, multipart, openDescriptors, RawRequest, uploadHead } from "../../helpers/form.js";
import { collect, record, emptyCollected } from "../../helpers/process.js";
import {
  baselineOf,
  clientsOver,
  expectBackToBaseline,
  expectServesOthers,
  gaugesOf,
  getOnce,
  isRunning,
  postOnce,
  procState,
  withClients,
  type Held,
  type Transport,
} from "../../helpers/faults.js";

const MiB = 1024 * 1024;

let agent: TestAgent;
let scratch: { path: string; cleanup: () => Promise<void> };
let baseline: Held;
let n = 0;

/** A fresh directory under the scratch directory for one test. */
function freshDir(name: string): string {
  const dir = join(scratch.path, `${name}-${++n}`);
  mkdirSync(dir);
  return dir;
}

beforeAll(async () => {
  agent = await startTestAgent({ kernelPoolSize: 0 });
  scratch = await tempDir("agent-fault-gone-");
  // Warm-up: one of each call below, so that what the agent creates once and keeps (libuv's
  // inotify descriptor, its signal pipe) is part of the baseline and not taken for a leak.
  const warm = freshDir("warm");
  const target = join(warm, "warm.bin");
  const b = boundary();
  const body = multipart([{ name: "file", filename: target, content: "warm" }], b);
  const res = await postOnce(agent.url, "/upload", { ...AUTH, "content-type": `multipart/form-data; boundary=${b}` }, body);
  expect(res.status).toBe(200);
  expect((await getOnce(agent.url, downloadPath(target), AUTH)).body).toBe("warm");
  for (const transport of ["h1", "h2"] as const) {
    await withClients(agent.url, transport, async (clients) => {
      await collect(clients.of(Process).start({ process: { cmd: "true", args: [], envs: {} } }, { headers: AUTH }));
      const watch = new WatchStream(clients.of(Filesystem), warm, true);
      await watch.started();
      await watch.close();
    });
  }
  await expectServesOthers(agent);
  baseline = await baselineOf(agent);
});

afterAll(async () => {
  await agent?.close();
  await scratch?.cleanup();
});

/** An HTTP/2 session of the test's own, with a way to cut it. */
function h2Session(): http2.ClientHttp2Session {
  const session = http2.connect(agent.url);
  session.on("error", () => undefined); // a session we destroy on purpose may report it
  return session;
}

type Cut = "h1 socket destroyed" | "h2 stream reset" | "h2 session destroyed";
const CUTS: readonly Cut[] = ["h1 socket destroyed", "h2 stream reset", "h2 session destroyed"];

describe.each(CUTS)("an upload whose client leaves midway (%s)", (cut) => {
  it("keeps the previous file, removes the staging file, closes its descriptor and serves others", async () => {
    const dir = freshDir("upload");
    const target = join(dir, "precious.bin");
    await writeFile(target, "the previous content");
    const content = randomBytes(4 * MiB);
    const b = boundary();
    const body = multipart(
      [
        { name: "file", filename: target, content },
        { name: "path", content: target },
      ],
      b,
    );
    const half = body.subarray(0, body.indexOf(content) + content.length / 2);

    let leave: () => void;
    if (cut === "h1 socket destroyed") {
      const req = new RawRequest(agent.port, uploadHead(agent.port, b, body.length));
      await req.write(half);
      leave = () => req.destroy();
    } else {
      const session = h2Session();
      const stream = session.request({
        ":method": "POST",
        ":path": "/upload",
        "content-type": `multipart/form-data; boundary=${b}`,
        "content-length": String(body.length),
        ...AUTH,
      });
      stream.on("error", () => undefined);
      stream.write(half);
      leave =
        cut === "h2 stream reset"
          ? () => {
              stream.close(http2.constants.NGHTTP2_CANCEL);
              // The session is the test's; closing it after the reset keeps the count exact.
              stream.once("close", () => session.close());
            }
          : () => session.destroy();
    }
    // The agent is writing its staging file: the upload really is midway.
    await eventually(async () => (await leftovers(dir)).length === 1);
    expect((await gaugesOf(agent)).inFlight).toBe(1);
    await expectServesOthers(agent);
    leave();

    await eventually(async () => (await leftovers(dir)).length === 0);
    expect(await readFile(target, "utf8")).toBe("the previous content");
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});

describe.each(CUTS)("a download whose client leaves after the first bytes (%s)", (cut) => {
  it("closes the file and serves others", async () => {
    const path = join(freshDir("download"), "large.bin");
    // Sparse: 256 MiB that cost no disk, far more than any socket buffer holds.
    await writeFile(path, "");
    await truncate(path, 256 * MiB);

    if (cut === "h1 socket destroyed") {
      await new Promise<void>((resolve, reject) => {
        const req = http.get(`${agent.url}${downloadPath(path)}`, { headers: AUTH, agent: false }, (res) => {
          expect(res.statusCode).toBe(200);
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        });
        req.on("error", (err) => (req.destroyed ? undefined : reject(err)));
      });
    } else {
      const session = h2Session();
      await new Promise<void>((resolve, reject) => {
        const stream = session.request({ ":path": downloadPath(path), ...AUTH });
        stream.on("error", () => undefined);
        stream.on("response", (headers) => {
          if (headers[":status"] !== 200) reject(new Error(`status ${String(headers[":status"])}`));
        });
        stream.once("data", () => {
          if (cut === "h2 stream reset") {
            stream.close(http2.constants.NGHTTP2_CANCEL);
            stream.once("close", () => session.close());
          } else {
            session.destroy();
          }
          resolve();
        });
      });
    }
    await eventually(async () => (await openDescriptors(path)) === 0);
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});

const TICKER = { process: { cmd: "/bin/sh", args: ["-c", "while :; do echo tick; sleep 0.05; done"], envs: {} } };
const byPid = (pid: number) => ({ selector: { case: "pid" as const, value: pid } });

describe.each([
  ["h1", "connection cut"],
  ["h2", "connection cut"],
  ["h2", "stream cancelled"],
  ["grpc", "connection cut"],
] as const)("a Process/Start stream whose client leaves (%s, %s)", (transport: Transport, how) => {
  it("detaches only: the process runs on until killed through the API, then nothing is left", async () => {
    const clients = clientsOver(agent.url, transport);
    const abort = new AbortController();
    const got = emptyCollected();
    const streaming = (async () => {
      try {
        for await (const res of clients.of(Process).start(TICKER, { headers: AUTH, signal: abort.signal })) record(got, res.event);
      } catch (err) {
        got.error = err;
      }
    })();
    await eventually(() => got.stdout.toString().includes("tick\ntick\n"));
    const pid = got.pid!;
    // A cancelled stream leaves its connection open: the agent must let go of the stream alone.
    if (how === "stream cancelled") abort.abort();
    else clients.close();
    await streaming;
    expect(got.end).toBeUndefined();
    // The agent let go of the stream (in-flight is counted until the response closes)…
    await eventually(async () => (await gaugesOf(agent)).inFlight === 0);
    clients.close();

    // …but the process outlives its client, and the agent still counts it.
    expect(await isRunning(pid)).toBe(true);
    expect((await gaugesOf(agent)).processes).toBe(baseline.gauges.processes + 1);
    await withClients(agent.url, "h2", async (others) => {
      const processes = others.of(Process);
      expect((await processes.list({}, { headers: AUTH })).processes.map((p) => p.pid)).toContain(pid);
      // Another client attaches and sees live output; then the process is killed through the API.
      const attached = emptyCollected();
      let killed = false;
      const following = (async () => {
        for await (const res of processes.connect({ process: byPid(pid) }, { headers: AUTH })) {
          record(attached, res.event);
          if (!killed && attached.stdout.length > 0) {
            killed = true;
            await processes.sendSignal({ process: byPid(pid), signal: Signal.SIGKILL }, { headers: AUTH });
          }
        }
      })();
      await following;
      expect(attached.end).toMatchObject({ exitCode: -1, status: "signal: killed" });
    });
    expect(await procState(pid)).toBeUndefined();
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});

describe("a Process/Start stream with a time limit whose client leaves", () => {
  it("still kills the process group at the limit (Connect-Timeout-Ms), and leaves nothing", async () => {
    const clients = clientsOver(agent.url, "h1");
    const got = emptyCollected();
    // The header alone, no client-side deadline: only the agent can end the command.
    const streaming = (async () => {
      try {
        for await (const res of clients.of(Process).start(TICKER, { headers: { ...AUTH, "connect-timeout-ms": "1500" } })) record(got, res.event);
      } catch (err) {
        got.error = err;
      }
    })();
    await eventually(() => got.stdout.toString().includes("tick\n"));
    const pid = got.pid!;
    clients.close();
    await streaming;
    expect(got.end).toBeUndefined();
    expect(await isRunning(pid)).toBe(true);
    await eventually(async () => !(await isRunning(pid)));
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});

describe.each(CUTS.filter((cut) => cut !== "h2 stream reset").map((cut) => [cut] as const))(
  "a WatchDir stream whose client's connection is cut (%s)",
  (cut) => {
    it("releases the watch and its inotify watches, and the watchers gauge returns", async () => {
      const dir = freshDir("watch");
      mkdirSync(join(dir, "sub"));
      const clients = clientsOver(agent.url, cut === "h1 socket destroyed" ? "h1" : "h2");
      const watch = new WatchStream(clients.of(Filesystem), dir, true);
      await watch.started();
      expect(inotifyWatchesOn(dir)).toBeGreaterThan(0);
      expect((await gaugesOf(agent)).watchers).toBe(baseline.gauges.watchers + 1);

      clients.close();
      const ended = await watch.done;
      expect(ended).toBeDefined(); // the client saw its own connection go
      await eventually(() => inotifyWatchesOn(dir) === 0 && inotifyWatchesOn(join(dir, "sub")) === 0);
      // Events after the client left reach nobody and hold nothing.
      await writeFile(join(dir, "after.txt"), "x");
      await expectServesOthers(agent);
      await expectBackToBaseline(agent, baseline);
    });
  },
);
