/**
 * Issue 14, item 7 (processes): a process the agent starts holds stdin, stdout and stderr, and
 * nothing else of the agent's. node-pty's forkpty() does not close anything in the child, and the
 * master side of every terminal the agent holds is open without close-on-exec: each process,
 * whoever's, inherited the terminals of all the others, root's shell included, and could type into
 * it or read it. The test holds open at the same moment everything the agent can hold (another
 * terminal, a watcher, a Jupyter kernel's connections, an upload and a download in flight), starts
 * processes with pipes and with a terminal, as a user and as root, and reads each one's
 * descriptors from /proc once it runs.
 */
import { readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { request, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextService, Filesystem, Process, Signal } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { ATTACKER, ensureUser } from "../../helpers/linux-users.js";
import { WatchStream } from "../../helpers/filesystem.js";
import { boundary, RawRequest, uploadHead } from "../../helpers/form.js";
import { collect, type Collected } from "../../helpers/process.js";

let agent: TestAgent;
let dir: Awaited<ReturnType<typeof tempDir>>;
let watch: WatchStream;
let upload: RawRequest;
let download: IncomingMessage;
const started: number[] = [];

const as = (name: string) => ({ headers: { ...AUTH, "x-user": name } });
const byPid = (pid: number) => ({ selector: { case: "pid" as const, value: pid } });

/** Each open descriptor of `pid` with what it refers to: "3 -> /dev/ptmx". */
function descriptors(pid: number | "self"): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return `${fd} -> ${readlinkSync(`/proc/${pid}/fd/${fd}`)}`;
    } catch {
      return `${fd} -> (closed meanwhile)`;
    }
  });
}

/** Starts a process that says it is ready once the program itself runs, then waits to be killed. */
async function startReady(user: string, pty: boolean): Promise<{ pid: number; out: Collected }> {
  const request = { process: { cmd: "/bin/sh", args: ["-c", "echo ready; exec sleep 1000"], envs: {} }, pty: pty ? {} : undefined };
  let out: Collected | undefined;
  void collect(client(Process, agent.url, "connect-h2").start(request, as(user)), (so) => (out = so));
  // `sleep` prints nothing: once "ready" is out and sleep has replaced the shell, the program runs.
  const ready = (await eventually(() => (out !== undefined && (out.stdout.includes("ready") || out.pty.includes("ready")) ? out : undefined)))!;
  await eventually(() => readlinkSync(`/proc/${ready.pid}/exe`).endsWith("/sleep"));
  started.push(ready.pid!);
  return { pid: ready.pid!, out: ready };
}

beforeAll(async () => {
  ensureUser(ATTACKER);
  agent = await startTestAgent();
  dir = await tempDir();

  // root's terminal: the master side stays open in the agent for as long as the shell runs.
  await startReady("root", true);
  // A watcher (inotify) on a directory.
  watch = new WatchStream(client(Filesystem, agent.url, "connect-h2"), dir.path, true);
  await watch.started();
  // A Jupyter kernel and the agent's ZeroMQ connections to it.
  await client(ContextService, agent.url, "connect-h2").createContext({ language: "python", cwd: dir.path }, { headers: AUTH });
  // An upload whose body has not all arrived: its temporary file is open.
  const b = boundary();
  const head = `--${b}\r\nContent-Disposition: form-data; name="file"; filename="${join(dir.path, "incoming.bin")}"\r\n\r\n`;
  upload = new RawRequest(agent.port, uploadHead(agent.port, b, head.length + 1_000_000));
  await upload.write(Buffer.concat([Buffer.from(head), Buffer.alloc(100_000, 1)]));
  // A download its client does not read: the file stays open while the socket is full.
  const big = join(dir.path, "big.bin");
  writeFileSync(big, Buffer.alloc(32 * 1024 * 1024, 2));
  download = await new Promise((resolve) => request(`${agent.url}/download${big}`, { headers: AUTH }, resolve).end());
  download.pause();

  // The agent runs in this process: every one of those is open here now.
  await eventually(() => {
    const held = descriptors("self").join("\n");
    return held.includes("/dev/ptmx") && held.includes("anon_inode:inotify") && held.includes(".incoming.bin.upload-") && held.includes(big);
  });
});

afterAll(async () => {
  const c = client(Process, agent.url, "connect-h2");
  for (const pid of started) await c.sendSignal({ process: byPid(pid), signal: Signal.SIGKILL }, { headers: AUTH }).catch(() => undefined);
  download?.destroy();
  upload?.destroy();
  await watch?.close();
  await agent?.close();
  await dir?.cleanup();
});

describe.each([ATTACKER, "root"])("a process started for %s", (user) => {
  for (const pty of [false, true]) {
    it(`holds its stdin, stdout and stderr and nothing else of the agent's (${pty ? "terminal" : "pipes"})`, async () => {
      const { pid } = await startReady(user, pty);
      const held = descriptors(pid);
      expect(held.filter((line) => !/^[012] -> /.test(line))).toEqual([]);
      expect(held).toHaveLength(3);
      for (const line of held) expect(line).toMatch(pty ? /-> \/dev\/pts\/\d+$/ : /-> socket:\[\d+\]$/);
    });
  }
});
