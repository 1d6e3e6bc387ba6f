/**
 * Starts a kernel process the way Jupyter does: free ports and a random HMAC key in a connection
 * file, `{connection_file}` in the kernelspec's argv, its own process group, as the caller's Linux
 * user. Every process started here is killed (group and all) when the agent exits, and every file
 * it wrote is removed.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { giveTo } from "../../ownership.js";
import { baseEnvironment, launchAs, launchIds, raiseOomScore, type Launch } from "../../user-spawn.js";
import type { User } from "../../users.js";
import { newRuntimeDirectory } from "../runtime-dir.js";
import type { KernelSpec } from "./kernelspecs.js";
import { listensOnlyOnTcp, NAMESPACE_PORTS, namespacedLaunch } from "./netns.js";
import type { KernelConnection, KernelSocket } from "./session.js";

/**
 * Kernels look programs up with /usr/bin first: Debian's Jupyter packages live there, while images
 * often put a different Python (without ipykernel) earlier on PATH.
 */
const KERNEL_PATH = "/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/bin";
/** Enough of a failing kernel's output to say why it failed. */
const OUTPUT_TAIL_BYTES = 8192;

export interface KernelExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The end of what the process wrote to stdout/stderr. */
  readonly output: string;
}

export interface KernelProcess {
  readonly pid: number;
  readonly connection: KernelConnection;
  /** Private directory (mode 0700, owned by the kernel's user) for the connection file and hand-off files. */
  readonly dir: string;
  readonly exited: Promise<KernelExit>;
  readonly hasExited: () => boolean;
  /** Signals the whole process group; quietly does nothing once it is gone. */
  readonly signal: (signal: NodeJS.Signals) => void;
  /** SIGKILLs the group, waits for the exit, and removes the private directory. */
  readonly destroy: () => Promise<void>;
}

export interface LaunchOptions {
  readonly spec: KernelSpec;
  readonly user: User;
  readonly cwd: string;
  /** Added to the user's base environment and the kernelspec's env. */
  readonly env: Readonly<Record<string, string>>;
}

/** Process groups of kernels still running, for the exit handler. */
const live = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: already gone
  }
}

/** Last resort at agent exit: no kernel outlives the agent (runtime-dir.ts removes their files). */
function cleanUpAtExit(): void {
  for (const pid of live) killGroup(pid, "SIGKILL");
  live.clear();
}

async function freePorts(count: number): Promise<number[]> {
  // Held open together so the five differ; the kernel binds them a moment later.
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** `${VAR}` in kernelspec env values, as jupyter_client expands them. */
function expand(value: string, env: Readonly<Record<string, string>>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env[name] ?? "");
}

export async function launchKernel(options: LaunchOptions): Promise<KernelProcess> {
  // Made by the agent inside its own directory, so nobody can have made it first.
  const dir = await newRuntimeDirectory("kernel", 0o700);
  try {
    return await launchIn(dir, options);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launchIn(dir: string, options: LaunchOptions): Promise<KernelProcess> {
  const { spec, user } = options;

  // A kernel that listens only on TCP gets a network namespace of its own, where nothing else
  // takes its ports, and a relay in it that the agent reaches at <dir>/k-<n> (netns.ts).
  const isolated = listensOnlyOnTcp(spec);
  const [shell, iopub, stdin, control, hb] = isolated
    ? [NAMESPACE_PORTS.shell, NAMESPACE_PORTS.iopub, NAMESPACE_PORTS.stdin, NAMESPACE_PORTS.control, NAMESPACE_PORTS.hb]
    : await freePorts(5);
  const connection = {
    transport: "tcp",
    ip: "127.0.0.1",
    shell_port: shell!,
    iopub_port: iopub!,
    stdin_port: stdin!,
    control_port: control!,
    hb_port: hb!,
    key: randomBytes(32).toString("hex"),
    signature_scheme: "hmac-sha256",
  };
  // Written while the directory is still the agent's: the user gets it only once the file is in
  // place, so no link of theirs can stand where the agent writes.
  const connectionFile = join(dir, "connection.json");
  await writeFile(connectionFile, JSON.stringify({ ...connection, kernel_name: spec.name }), { mode: 0o600, flag: "wx" });
  await giveTo(connectionFile, user);
  await giveTo(dir, user);

  const base: Record<string, string> = { ...baseEnvironment(user), PATH: KERNEL_PATH };
  const env: Record<string, string> = {
    ...base,
    ...Object.fromEntries(Object.entries(spec.env).map(([name, value]) => [name, expand(value, base)])),
    // ipykernel exits by itself when this parent goes away (and is reparented to init).
    JPY_PARENT_PID: String(process.pid),
    // Keeps debugpy's frozen-modules warning out of the kernel's output.
    PYDEVD_DISABLE_FILE_VALIDATION: "1",
    ...options.env,
  };
  const argv = spec.argv.map((arg) => arg.replaceAll("{connection_file}", connectionFile).replaceAll("{resource_dir}", spec.resourceDir));
  const relayed: ReadonlyArray<readonly [KernelSocket, number]> = [
    ["shell", 1],
    ["iopub", 2],
    ["stdin", 3],
    ["control", 4],
    ["hb", 5],
  ];
  const relaySocket = (n: number): string => join(dir, `k-${n}`);
  const launch: Launch = isolated
    ? await namespacedLaunch(user, argv, relayed.map(([socket, n]) => [relaySocket(n), NAMESPACE_PORTS[socket]] as const), spec.name)
    : launchAs(user, argv[0]!, argv.slice(1), { pty: false });
  const child = spawn(launch.file, [...launch.args], { cwd: options.cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"], ...launchIds(launch) });

  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);

  let done = false;
  const exited = new Promise<KernelExit>((resolve) => {
    child.once("error", (err) => {
      done = true;
      resolve({ code: null, signal: null, output: `${output}${err.message}` });
    });
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal, output });
    });
  });
  const pid = child.pid;
  if (pid === undefined) {
    const exit = await exited;
    throw new Error(`cannot start ${argv[0]}: ${exit.output.trim()}`);
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", cleanUpAtExit);
  }
  live.add(pid);
  raiseOomScore(pid);
  void exited.then(() => {
    // The group may hold children the kernel started (shell commands, subprocesses).
    killGroup(pid, "SIGKILL");
    live.delete(pid);
  });

  const endpoint = (port: number): string => `tcp://${connection.ip}:${port}`;
  const endpoints: Record<KernelSocket, string> = isolated
    ? (Object.fromEntries(relayed.map(([socket, n]) => [socket, `ipc://${relaySocket(n)}`])) as Record<KernelSocket, string>)
    : {
        shell: endpoint(connection.shell_port),
        iopub: endpoint(connection.iopub_port),
        stdin: endpoint(connection.stdin_port),
        control: endpoint(connection.control_port),
        hb: endpoint(connection.hb_port),
      };
  return {
    pid,
    connection: { endpoints, key: connection.key },
    dir,
    exited,
    hasExited: () => done,
    signal: (signal) => {
      if (!done) killGroup(pid, signal);
    },
    destroy: async () => {
      killGroup(pid, "SIGKILL");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
