/**
 * Kernels that cannot listen on Unix sockets run in a network namespace of their own.
 *
 * Deno's kernel (a ZMTP implementation in JavaScript over `Deno.listen`, since Deno 2.8) ignores
 * the connection file's `transport` and always listens on TCP (denoland/deno#35201); an `ipc`
 * connection file makes it exit at once. A TCP port of 127.0.0.1 is open to every local user, and
 * the kernel's HMAC key does not make up for it: the key signs messages, it does not hide them,
 * and IOPub is a PUB socket that hands every message to anyone who connects and subscribes.
 *
 * So such a kernel gets a new network namespace, whose loopback is its alone: no process outside
 * can connect to its ports. A relay started in the namespace as the kernel's user listens on Unix
 * sockets in the kernel's private directory, under the names an ipc kernel would use, and carries
 * each connection byte for byte to the kernel's port. The agent speaks to it as to any ipc kernel.
 *
 * The price: code in that kernel reaches no network beyond its own loopback (no fetch, no `npm:`
 * imports that are not cached yet). Making the namespace takes root (CAP_SYS_ADMIN), unshare
 * (util-linux) and ip (iproute2) to bring its loopback up; without them such a kernel is refused,
 * never started on a shared loopback.
 */
import { accessSync, constants, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isPrivileged, type User } from "../../users.js";
import { launchAs, type Launch } from "../../user-spawn.js";
import { agentRuntimeDirectory } from "../runtime-dir.js";
import type { KernelSpec } from "./kernelspecs.js";
import type { KernelSocket } from "./session.js";

/** The kernel's ports inside its namespace: fixed, nothing else is there to take them. */
export const NAMESPACE_PORTS: Readonly<Record<KernelSocket, number>> = {
  shell: 50001,
  iopub: 50002,
  stdin: 50003,
  control: 50004,
  hb: 50005,
};

/** Kernels known to ignore `"transport": "ipc"`, told by the program their kernelspec runs. */
export function listensOnlyOnTcp(spec: KernelSpec): boolean {
  return spec.argv[0]?.split("/").pop() === "deno";
}

/**
 * The relay (programs/kernel-relay.cjs), run by the agent's own Node.js from a copy in the agent's
 * runtime directory. Arguments: a JSON list of [unix socket path, TCP port] routes, then the
 * kernel's argv. It listens on every route before it starts the
 * kernel, so a socket that exists is ready; a connection that arrives before the kernel listens
 * waits for it. It exits as the kernel exits (the same code, or the same signal), and leaves
 * SIGINT to the kernel: an interrupt goes to the whole process group.
 */
const RELAY_SOURCE = readFileSync(new URL("./programs/kernel-relay.cjs", import.meta.url), "utf8");

/** Brings the namespace's loopback up as root, then execs the relay (as the kernel's user). */
const NAMESPACE_SCRIPT = `"$1" link set lo up && shift && exec "$@"`;

function findProgram(candidates: readonly string[]): string | undefined {
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export class NamespaceUnavailableError extends Error {}

let relayFile: Promise<string> | undefined;

/** The relay's source, written once per agent; readable by every kernel user, writable by none. */
function relayScript(): Promise<string> {
  relayFile ??= (async () => {
    const path = join(await agentRuntimeDirectory(), "kernel-relay.cjs");
    // The agent's directory is its alone: a file already there is the one written before.
    await writeFile(path, RELAY_SOURCE, { mode: 0o644, flag: "wx" }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    return path;
  })();
  return relayFile;
}

/**
 * How to start `argv` as `user` behind a relay in a new network namespace. `routes` pairs each
 * Unix socket path the agent will connect to with the kernel's port inside the namespace.
 */
export async function namespacedLaunch(
  user: User,
  argv: readonly string[],
  routes: ReadonlyArray<readonly [string, number]>,
  kernelName: string,
): Promise<Launch> {
  const why = `the ${kernelName} kernel listens only on TCP, which every local user could reach, so the agent runs it in a network namespace of its own`;
  if (!isPrivileged()) throw new NamespaceUnavailableError(`${why}, and that needs an agent running as root`);
  const unshare = findProgram(["/usr/bin/unshare", "/bin/unshare"]);
  const ip = findProgram(["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]);
  if (unshare === undefined || ip === undefined) {
    throw new NamespaceUnavailableError(`${why}, and that needs unshare (util-linux) and ip (iproute2), which are not installed`);
  }
  // The relay starts with only its stdio (the launcher, user-spawn.ts); Node gives the kernel nothing more.
  const relay = launchAs(user, process.execPath, [await relayScript(), JSON.stringify(routes), ...argv], { pty: false });
  // Node's own uid switch would make unshare itself run as the user, without the right to unshare.
  if (relay.uid !== undefined) throw new NamespaceUnavailableError(`${why}, and that needs setpriv (util-linux)`);
  return { file: unshare, args: ["--net", "--", "/bin/sh", "-c", NAMESPACE_SCRIPT, "sh", ip, relay.file, ...relay.args] };
}
