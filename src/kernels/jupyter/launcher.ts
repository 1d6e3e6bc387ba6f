/**
 * Starts a kernel process the way Jupyter does, `{connection_file}` in the kernelspec's argv, its own
 * process group, as the caller's Linux user, with one difference: its sockets are Unix sockets
 * (`"transport": "ipc"`) in a directory only that user (and root) can enter, never TCP ports of
 * 127.0.0.1 that every local user could connect to, IOPub's stream of code and output included.
 * Kernels that cannot do ipc run behind a relay in a network namespace of their own (netns.ts).
 * The supervisor starts it, and kills it (group and all) when it exits and when the agent does;
 * every file it wrote is removed.
 */
import { randomBytes } from "node:crypto";
import { lstat, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { giveTo } from "../../ownership.js";
import type { Child, Exit } from "../../supervisor/child.js";
import { supervise } from "../../supervisor/supervisor.js";
import { baseEnvironment, launchAs, type Launch } from "../../user-spawn.js";
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
/** How often to look for the kernel's first socket while it starts. */
const SOCKET_POLL_MS = 10;
/** Longest Unix socket path (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;

const SOCKETS: readonly KernelSocket[] = ["shell", "iopub", "stdin", "control", "hb"];
/** "Ports" of an ipc connection file: each socket is the file `<ip>-<port>`. */
const IPC_PORTS: Readonly<Record<KernelSocket, number>> = { shell: 1, iopub: 2, stdin: 3, control: 4, hb: 5 };

/** A Jupyter connection file, as the kernel reads it. */
interface ConnectionFile {
  readonly transport: "tcp" | "ipc";
  readonly ip: string;
  readonly shell_port: number;
  readonly iopub_port: number;
  readonly stdin_port: number;
  readonly control_port: number;
  readonly hb_port: number;
  readonly key: string;
  readonly signature_scheme: "hmac-sha256";
  readonly kernel_name: string;
}

function connectionFile(transport: "tcp" | "ipc", ip: string, ports: Readonly<Record<KernelSocket, number>>, key: string, name: string): ConnectionFile {
  return {
    transport,
    ip,
    shell_port: ports.shell,
    iopub_port: ports.iopub,
    stdin_port: ports.stdin,
    control_port: ports.control,
    hb_port: ports.hb,
    key,
    signature_scheme: "hmac-sha256",
    kernel_name: name,
  };
}

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
  /** How long to wait for the kernel to create its sockets before handing it over anyway. */
  readonly bindTimeoutMs?: number;
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

/**
 * Waits until the kernel has created its shell socket (or exited, or `timeoutMs` passed), and
 * returns the separator its socket names use. Jupyter names an ipc socket `<ip>-<port>`; tslab
 * (1.0) joins them with ":" as for TCP. The directory is the kernel's user's alone, so what is
 * found there was made by that user's kernel.
 */
async function socketSeparator(prefix: string, user: User, hasExited: () => boolean, timeoutMs: number): Promise<"-" | ":"> {
  const deadline = Date.now() + timeoutMs;
  while (!hasExited() && Date.now() < deadline) {
    for (const separator of ["-", ":"] as const) {
      const st = await lstat(`${prefix}${separator}${IPC_PORTS.shell}`).catch(() => undefined);
      if (st?.isSocket() === true && (st.uid === user.uid || st.uid === process.getuid?.())) return separator;
    }
    await new Promise((resolve) => setTimeout(resolve, SOCKET_POLL_MS));
  }
  return "-";
}

async function launchIn(dir: string, options: LaunchOptions): Promise<KernelProcess> {
  const { spec, user } = options;
  // Every socket is `<dir>/k-<n>`: what the agent connects to, whether the kernel itself or the
  // relay in front of a TCP-only kernel listens there.
  const prefix = join(dir, "k");
  // The longest name is ipykernel's pipe for forked children's output (agent_startup.py).
  if (`${prefix}-pipe`.length > MAX_SOCKET_PATH) throw new Error(`kernel socket paths under ${dir} would be too long for Unix sockets`);
  const key = randomBytes(32).toString("hex");
  const isolated = listensOnlyOnTcp(spec);
  const file = isolated ? connectionFile("tcp", "127.0.0.1", NAMESPACE_PORTS, key, spec.name) : connectionFile("ipc", prefix, IPC_PORTS, key, spec.name);
  // Written while the directory is still the agent's: the user gets it only once the file is in
  // place, so no link of theirs can stand where the agent writes.
  const connectionPath = join(dir, "connection.json");
  await writeFile(connectionPath, JSON.stringify(file), { mode: 0o600, flag: "wx" });
  await giveTo(connectionPath, user);
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
  const argv = spec.argv.map((arg) => arg.replaceAll("{connection_file}", connectionPath).replaceAll("{resource_dir}", spec.resourceDir));
  // launchAs starts it through the launcher, which closes every descriptor but stdio (user-spawn.ts).
  const launch: Launch = isolated
    ? await namespacedLaunch(
        user,
        argv,
        SOCKETS.map((socket) => [`${prefix}-${IPC_PORTS[socket]}`, NAMESPACE_PORTS[socket]] as const),
        spec.name,
      )
    : launchAs(user, argv[0]!, argv.slice(1), { pty: false });
  let output = "";
  let done = false;
  let reportExit: (exit: KernelExit) => void = () => {};
  const exited = new Promise<KernelExit>((resolve) => {
    reportExit = resolve;
  });
  let child: Child;
  try {
    child = await supervise(
      // The group may hold children the kernel started (shell commands, subprocesses): they go with it.
      { cmd: argv[0]!, launch, env, cwd: options.cwd, io: { kind: "pipes", stdin: false }, killGroupOnExit: true },
      {
        onOutput: (_stream, chunk) => {
          output = (output + chunk.toString("utf8")).slice(-OUTPUT_TAIL_BYTES);
        },
        onExit: (exit: Exit) => {
          done = true;
          const signal = exit.kind === "signaled" && typeof exit.signal === "string" ? exit.signal : null;
          reportExit({ code: exit.kind === "exited" ? exit.code : null, signal, output });
        },
      },
    );
  } catch (err) {
    throw new Error(`cannot start ${argv[0]}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { pid } = child;

  const separator = await socketSeparator(prefix, user, () => done, options.bindTimeoutMs ?? 60_000);
  const endpoints = Object.fromEntries(SOCKETS.map((socket) => [socket, `ipc://${prefix}${separator}${IPC_PORTS[socket]}`])) as Record<KernelSocket, string>;

  return {
    pid,
    connection: { endpoints, key },
    dir,
    exited,
    hasExited: () => done,
    signal: (signal) => child.signal(signal),
    destroy: async () => {
      child.signal("SIGKILL");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
