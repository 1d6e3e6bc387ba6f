/**
 * A kernel is reachable only by its owner (issue 14, item 4), and holds nothing of the agent's
 * (item 7). sa-mallory, code in the sandbox without the access token, attacks the kernels of
 * sa-alice the way a kernel's IOPub on 127.0.0.1 was read before: she takes the kernel's sockets
 * (its TCP listeners, its Unix sockets, whose paths /proc/net/unix shows to anyone, and its
 * directory, which its command line shows), connects a ZeroMQ SUB to every one of them and
 * listens while alice runs a cell holding a secret. Every installed kernel kind is attacked: Python
 * (ipykernel), R (IRkernel), JavaScript (tslab) and Deno, whose kernel can only do TCP and runs in
 * a network namespace of its own behind a relay. Needs root (real users, setpriv) as CI has.
 */
import type { Client } from "@connectrpc/connect";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextService, ExecutionService, Filesystem, Process, type ExecuteResponse } from "../../../src/gen/sandboxagent/api_pb.js";
import { bashDriverFactory, jshellDriverFactory } from "../../../src/kernels/drivers/index.js";
import { findKernelSpecs } from "../../../src/kernels/jupyter/kernelspecs.js";
import { AUTH, client, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { ATTACKER, ensureUser, spawnAs, VICTIM } from "../../helpers/linux-users.js";
import { collect, type Collected } from "../../helpers/execution.js";

const installed = await findKernelSpecs();
const alice = ensureUser(VICTIM);
const mallory = ensureUser(ATTACKER);
const asAlice = { ...AUTH, authorization: `Bearer ${alice.name}` };

interface Kind {
  readonly language: string;
  readonly spec: string;
  /** A cell that prints the kernel's own pid. */
  readonly printPid: string;
  /** A cell that prints `text`. */
  readonly say: (text: string) => string;
}

const KINDS: readonly Kind[] = [
  { language: "python", spec: "python3", printPid: "import os\nprint(os.getpid())", say: (t) => `print(${JSON.stringify(t)})` },
  { language: "r", spec: "ir", printPid: "cat(Sys.getpid(), '\\n')", say: (t) => `cat(${JSON.stringify(t)}, "\\n")` },
  { language: "javascript", spec: "jslab", printPid: "console.log(process.pid)", say: (t) => `console.log(${JSON.stringify(t)})` },
  { language: "deno", spec: "deno", printPid: "console.log(Deno.pid)", say: (t) => `console.log(${JSON.stringify(t)})` },
];

let agent: TestAgent;
let exec: Client<typeof ExecutionService>;
let contexts: Client<typeof ContextService>;
let scratch: Awaited<ReturnType<typeof tempDir>>;
const held = new AbortController();

beforeAll(async () => {
  agent = await startTestAgent({ kernelPoolSize: 0 });
  exec = client(ExecutionService, agent.url);
  contexts = client(ContextService, agent.url);
  scratch = await tempDir("kernel-isolation-");
  // While the kernels start, the agent holds what a busy agent holds: a terminal (its PTY master),
  // a watcher (inotify), client connections and the sockets of the kernels started before.
  const terminal = client(Process, agent.url).start(
    { process: { cmd: "/bin/sleep", args: ["600"], envs: {} }, pty: { size: { cols: 80, rows: 24 } } },
    { headers: AUTH, signal: held.signal },
  );
  const first = await terminal[Symbol.asyncIterator]().next();
  expect(first.value?.event?.event.case).toBe("start");
  await client(Filesystem, agent.url).createWatcher({ path: scratch.path, recursive: true }, { headers: AUTH });
}, 120_000);

afterAll(async () => {
  held.abort();
  await agent?.close();
  await scratch?.cleanup();
});

async function runAsAlice(contextId: string, code: string): Promise<Collected> {
  const frames: ExecuteResponse[] = [];
  for await (const frame of exec.execute({ contextId, code, language: "", envVars: {} }, { headers: asAlice })) frames.push(frame);
  return collect(frames);
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** The kernel's process and whatever the agent started in front of it (Deno's relay). */
function kernelProcesses(pid: number): number[] {
  const chain: number[] = [];
  for (let current = pid; current !== process.pid; current = parentOf(current)) {
    if (current <= 1) throw new Error(`process ${pid} is not a descendant of the agent`);
    chain.push(current);
  }
  return chain;
}

function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match !== null) inodes.add(match[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** Rows of /proc/net/{tcp,tcp6,udp,udp6} as seen from the agent's network namespace, by inode. */
function inetSockets(): Map<string, { table: string; state: string; port: number }> {
  const rows = new Map<string, { table: string; state: string; port: number }>();
  for (const table of ["tcp", "tcp6", "udp", "udp6"]) {
    for (const line of readFileSync(`/proc/net/${table}`, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      rows.set(fields[9]!, { table, state: fields[3]!, port: parseInt(fields[1]!.split(":")[1]!, 16) });
    }
  }
  return rows;
}

/**
 * Unix socket paths bound by these processes, from /proc/<pid>/net/unix: the table of the process's
 * network namespace (Deno's relay has one of its own), which any user can read.
 */
function unixSocketPaths(pids: readonly number[]): string[] {
  const paths = new Set<string>();
  for (const pid of pids) {
    const inodes = socketInodes(pid);
    for (const line of readFileSync(`/proc/${pid}/net/unix`, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length >= 8 && inodes.has(fields[6]!)) paths.add(fields[7]!);
    }
  }
  return [...paths];
}

/**
 * Mallory's side, in Python with pyzmq (installed with ipykernel). Arguments: one JSON object with
 * the kernel's pids, the TCP ports and Unix socket paths it listens on, and the secret to look
 * for. Prints "ready" once subscribed everywhere, listens until a line arrives on stdin, then
 * prints what she got as JSON.
 */
const ATTACK = String.raw`
import errno, json, os, select, socket, sys, time
import zmq
from zmq.utils.monitor import recv_monitor_message

task = json.loads(sys.argv[1])
secret = task["secret"].encode()
report = {"files": {}, "unix": {}, "tcpConnected": [], "received": 0, "sawSecret": False}

def failure(err):
    return errno.errorcode.get(err.errno, str(err.errno))

# The kernel's directory is in its command line, which every user can read.
dirs = set()
for pid in task["pids"]:
    for arg in open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0"):
        if arg.endswith(b"connection.json"):
            dirs.add(os.path.dirname(arg.decode()))
report["dirs"] = sorted(dirs)
for d in dirs:
    try:
        os.listdir(d)
        report["files"][d] = "listed"
    except OSError as err:
        report["files"][d] = failure(err)
    path = os.path.join(d, "connection.json")
    try:
        open(path).read()
        report["files"][path] = "read"
    except OSError as err:
        report["files"][path] = failure(err)

for path in task["unix"]:
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(path)
        report["unix"][path] = "connected"
    except OSError as err:
        report["unix"][path] = failure(err)
    finally:
        probe.close()

context = zmq.Context()
subscribers = []
for endpoint in ["tcp://127.0.0.1:%d" % port for port in task["tcp"]] + ["ipc://" + path for path in task["unix"]]:
    sub = context.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    monitor = sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    sub.connect(endpoint)
    subscribers.append((endpoint, sub, monitor))
# Wait (a little) for the handshakes that can succeed, so that nothing published later is missed.
deadline = time.time() + 3
for endpoint, sub, monitor in subscribers:
    if endpoint.startswith("tcp://") and monitor.poll(max(0, int((deadline - time.time()) * 1000))):
        recv_monitor_message(monitor)
        report["tcpConnected"].append(endpoint)
print("ready", flush=True)

poller = zmq.Poller()
for _, sub, _ in subscribers:
    poller.register(sub, zmq.POLLIN)
poller.register(sys.stdin.fileno(), zmq.POLLIN)
drain_until = None
while drain_until is None or time.time() < drain_until:
    for item, _ in poller.poll(100):
        if item == sys.stdin.fileno():
            os.read(item, 1024)
            poller.unregister(item)
            drain_until = time.time() + 0.5
            continue
        frames = item.recv_multipart()
        report["received"] += 1
        if any(secret in frame for frame in frames):
            report["sawSecret"] = True
print(json.dumps(report), flush=True)
`;

interface AttackReport {
  readonly dirs: string[];
  readonly files: Record<string, string>;
  readonly unix: Record<string, string>;
  readonly tcpConnected: string[];
  readonly received: number;
  readonly sawSecret: boolean;
}

/** Runs mallory's attack while `meanwhile` (alice's work) runs, and returns what she got. */
async function attack(task: { pids: number[]; tcp: number[]; unix: string[]; secret: string }, meanwhile: () => Promise<void>): Promise<AttackReport> {
  const child = spawnAs(mallory, ["python3", "-c", ATTACK, JSON.stringify(task)]);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.value !== "ready") throw new Error(`the attack did not start: ${String(first.value)} ${stderr}`);
  await meanwhile();
  child.stdin.end("done\n");
  const last = await lines.next();
  const code = await exited;
  if (code !== 0 || typeof last.value !== "string") throw new Error(`the attack failed (exit ${code}): ${stderr}`);
  return JSON.parse(last.value) as AttackReport;
}

/**
 * For every descriptor of the kernel processes, whether it is the same open file as one of the
 * agent's (kcmp KCMP_FILE, run as root): what a descriptor inherited without O_CLOEXEC would be.
 */
const SHARED_FILES = `
import ctypes, errno, json, os, platform, sys
SYS_KCMP = {"x86_64": 312, "aarch64": 272}[platform.machine()]
KCMP_FILE = 0
libc = ctypes.CDLL(None, use_errno=True)
agent = int(sys.argv[1])
def fds(pid):
    found = {}
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            found[int(name)] = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            pass
    return found
agent_fds = fds(agent)
report = {}
for pid in map(int, sys.argv[2].split(",")):
    own = fds(pid)
    shared = []
    for fd, target in own.items():
        for agent_fd, agent_target in agent_fds.items():
            result = libc.syscall(SYS_KCMP, pid, agent, KCMP_FILE, fd, agent_fd)
            if result == 0:
                shared.append("%d -> %s (agent fd %d)" % (fd, target, agent_fd))
            elif result < 0 and ctypes.get_errno() != errno.EBADF:
                raise OSError(ctypes.get_errno(), "kcmp")
    report[pid] = {"fds": own, "shared": shared}
print(json.dumps(report))
`;

/** No process of the kernel listens on TCP or has any socket in the agent's network namespace. */
function expectNoTcp(pids: readonly number[]): void {
  const listening = execFileSync("ss", ["-ltnpH"], { encoding: "utf8" });
  for (const pid of pids) expect(listening).not.toContain(`pid=${pid},`);
  const inet = inetSockets();
  const reachable = pids.flatMap((pid) => [...socketInodes(pid)].flatMap((inode) => inet.get(inode) ?? []));
  expect(reachable).toEqual([]);
}

/** Every descriptor of the kernel's processes: stdin /dev/null, none the same open file as one of the agent's. */
function expectNothingOfTheAgents(pids: readonly number[]): void {
  const report = JSON.parse(execFileSync("/usr/bin/python3", ["-c", SHARED_FILES, String(process.pid), pids.join(",")], { encoding: "utf8" })) as Record<
    string,
    { fds: Record<string, string>; shared: string[] }
  >;
  for (const pid of pids) {
    const { fds, shared } = report[String(pid)]!;
    expect(shared, `kernel process ${pid} shares open files with the agent`).toEqual([]);
    expect(fds["0"]).toMatch(/^\/dev\/null$|^socket:/);
  }
}

for (const kind of KINDS) {
  describe.runIf(installed.has(kind.spec))(`${kind.language} kernel of another user`, () => {
    let contextId: string;
    let pids: number[];

    beforeAll(async () => {
      contextId = (await contexts.createContext({ language: kind.language, cwd: alice.home }, { headers: asAlice })).id;
      const out = await runAsAlice(contextId, kind.printPid);
      expect(out.errors).toEqual([]);
      pids = kernelProcesses(Number(out.stdout.trim()));
    }, 120_000);

    it("runs as alice, with its sockets in a directory only alice can enter", () => {
      for (const pid of pids) expect(statSync(`/proc/${pid}`).uid).toBe(alice.uid);
      const paths = unixSocketPaths(pids);
      expect(paths.length).toBeGreaterThanOrEqual(5);
      const dirs = new Set(paths.map((path) => dirname(path)));
      expect(dirs.size).toBe(1);
      const dir = statSync([...dirs][0]!);
      expect(dir.uid).toBe(alice.uid);
      expect(dir.mode & 0o777).toBe(0o700);
    });

    it("listens on no TCP port (ss -ltnp shows none of its processes)", () => {
      expectNoTcp(pids);
    });

    it("cannot be reached by mallory, who hears nothing of alice's cells; alice's own executions work", async () => {
      const secret = `alice-secret-${kind.language}-${Date.now()}`;
      const inet = inetSockets();
      const tcp = pids.flatMap((pid) =>
        [...socketInodes(pid)].flatMap((inode) => {
          const row = inet.get(inode);
          return row?.table.startsWith("tcp") && row.state === "0A" ? [row.port] : [];
        }),
      );
      const unix = unixSocketPaths(pids);
      const outputs: Collected[] = [];
      const report = await attack({ pids, tcp, unix, secret }, async () => {
        for (let i = 0; i < 3; i++) outputs.push(await runAsAlice(contextId, kind.say(secret)));
      });

      for (const out of outputs) {
        expect(out.errors).toEqual([]);
        expect(out.stdout).toContain(secret);
      }
      expect(report.sawSecret).toBe(false);
      expect(report.received).toBe(0);
      expect(report.tcpConnected).toEqual([]);
      expect(Object.keys(report.unix).length).toBeGreaterThanOrEqual(5);
      for (const result of Object.values(report.unix)) expect(result).toBe("EACCES");
      expect(report.dirs.length).toBeGreaterThan(0);
      for (const result of Object.values(report.files)) expect(result).toBe("EACCES");
    });

    it("holds no descriptor of the agent's: its stdio, and files and sockets of its own", () => {
      expectNothingOfTheAgents(pids);
      for (const pid of pids) expect(readlinkSync(`/proc/${pid}/fd/0`)).toBe("/dev/null");
    });

    it("loses its directory when the context is destroyed", async () => {
      const [dir] = new Set(unixSocketPaths(pids).map((path) => dirname(path)));
      expect(dir).toBeDefined();
      await contexts.destroyContext({ contextId }, { headers: asAlice });
      await eventually(() => {
        try {
          statSync(dir!);
          return false;
        } catch {
          return true;
        }
      });
    });
  });
}

describe.runIf(installed.has("python3"))("python kernel: output of forked children", () => {
  it("still arrives, through a Unix socket next to the kernel's others instead of ipykernel's TCP port", async () => {
    const { id } = await contexts.createContext({ language: "python", cwd: alice.home }, { headers: asAlice });
    try {
      const out = await runAsAlice(
        id,
        'import multiprocessing, os\nchild = multiprocessing.get_context("fork").Process(target=print, args=("from a forked child",))\n' +
          "child.start()\nchild.join()\nprint(os.getpid())",
      );
      expect(out.errors).toEqual([]);
      expect(out.stdout).toContain("from a forked child\n");
      const pids = kernelProcesses(Number(out.stdout.trim().split("\n").at(-1)));
      expect(unixSocketPaths(pids).some((path) => path.endsWith("/k-pipe"))).toBe(true);
      expectNoTcp(pids);
    } finally {
      await contexts.destroyContext({ contextId: id }, { headers: asAlice });
    }
  });
});

/**
 * The built-in drivers speak with the agent over their stdio, anonymous socketpairs that only the
 * agent and the driver hold: nothing to connect to. They too start with nothing else of the agent's.
 */
const DRIVERS = [
  { language: "bash", factory: bashDriverFactory, printPid: "echo $$" },
  { language: "java", factory: jshellDriverFactory, printPid: "System.out.println(ProcessHandle.current().pid());" },
] as const;

for (const driver of DRIVERS) {
  describe.runIf(await driver.factory.available())(`built-in ${driver.language} driver of another user`, () => {
    let contextId: string;
    let pids: number[];

    beforeAll(async () => {
      contextId = (await contexts.createContext({ language: driver.language, cwd: alice.home }, { headers: asAlice })).id;
      const out = await runAsAlice(contextId, driver.printPid);
      expect(out.errors).toEqual([]);
      pids = kernelProcesses(Number(out.stdout.trim()));
    }, 120_000);

    afterAll(async () => {
      if (contextId !== undefined) await contexts.destroyContext({ contextId }, { headers: asAlice });
    });

    it("runs as alice, bound to no socket anyone could connect to", () => {
      for (const pid of pids) expect(statSync(`/proc/${pid}`).uid).toBe(alice.uid);
      expect(unixSocketPaths(pids)).toEqual([]);
      expectNoTcp(pids);
    });

    it("holds no descriptor of the agent's: its stdio and files of its own", () => {
      expectNothingOfTheAgents(pids);
    });
  });
}
