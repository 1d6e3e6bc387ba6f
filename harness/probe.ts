/**
 * What a running agent holds, read from outside it: open file descriptors, resident memory and the
 * processes below it, from /proc; event-loop lag from its own /metrics. Fault tests, the leak check
 * and the soak compare these before and after, so "nothing leaked" is measured one way.
 */
import { readdir, readFile, readlink } from "node:fs/promises";

export interface Resources {
  readonly fds: number;
  readonly rssBytes: number;
  /** Every live process below `pid` (children, grandchildren, kernels), by pid. */
  readonly descendants: readonly number[];
}

export async function resourcesOf(pid: number): Promise<Resources> {
  const [fds, rssBytes, descendants] = await Promise.all([countFds(pid), rssOf(pid), descendantsOf(pid)]);
  return { fds, rssBytes, descendants };
}

export async function countFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** What each open descriptor points at ("socket:[123]", "/tmp/x", "anon_inode:inotify"), for reports. */
export async function fdTargets(pid: number): Promise<string[]> {
  const names = await readdir(`/proc/${pid}/fd`);
  const targets = await Promise.all(names.map((n) => readlink(`/proc/${pid}/fd/${n}`).catch(() => "(gone)")));
  return targets.sort();
}

export async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

/** Live descendants of `pid` (zombies excluded: they hold nothing but a table slot, and are reported by `zombiesOf`). */
export async function descendantsOf(pid: number): Promise<number[]> {
  const table = await processTable();
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const entry of table) {
      if (entry.ppid === parent) {
        queue.push(entry.pid);
        if (entry.state !== "Z") out.push(entry.pid);
      }
    }
  }
  return out.sort((a, b) => a - b);
}

/** Unreaped children of `pid`: each is a wait() the agent forgot. */
export async function zombiesOf(pid: number): Promise<number[]> {
  return (await processTable()).filter((e) => e.ppid === pid && e.state === "Z").map((e) => e.pid);
}

interface ProcEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
}

async function processTable(): Promise<ProcEntry[]> {
  const names = (await readdir("/proc")).filter((n) => /^\d+$/.test(n));
  const entries = await Promise.all(
    names.map(async (n): Promise<ProcEntry | undefined> => {
      try {
        const stat = await readFile(`/proc/${n}/stat`, "utf8");
        // The command name may hold spaces and parentheses; fields resume after the last ')'.
        const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return { pid: Number(n), state: rest[0] ?? "?", ppid: Number(rest[1]) };
      } catch {
        return undefined; // exited while we looked
      }
    }),
  );
  return entries.filter((e): e is ProcEntry => e !== undefined);
}

/** TCP states as /proc/net/tcp writes them (hex). */
export const TCP_CLOSE_WAIT = "08";

/**
 * The TCP state (hex, as /proc/net/tcp writes it) of every connection on this machine whose local
 * port is `localPort`, optionally only those to `remotePort`: the agent's side of its connections,
 * seen from outside it. A CLOSE_WAIT there is a connection the client has closed and the agent
 * still holds.
 */
export async function tcpStates(localPort: number, remotePort?: number): Promise<string[]> {
  const tables = await Promise.all(["/proc/net/tcp", "/proc/net/tcp6"].map((path) => readFile(path, "utf8").catch(() => "")));
  const states: string[] = [];
  for (const line of tables.join("\n").split("\n")) {
    const fields = line.trim().split(/\s+/);
    const port = (address: string | undefined): number => Number.parseInt(address?.split(":").at(-1) ?? "", 16);
    if (port(fields[1]) === localPort && (remotePort === undefined || port(fields[2]) === remotePort)) states.push(fields[3]!);
  }
  return states;
}

/** Event-loop lag p99 in ms and resident memory as the agent itself reports them on /metrics. */
export async function agentMetrics(baseUrl: string, token: string): Promise<{ lagP99Ms: number; rssBytes: number; fds: number }> {
  const response = await fetch(new URL("/metrics", baseUrl), { headers: { "x-access-token": token } });
  if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
  return parseAgentMetrics(await response.text());
}

/** The figures agentMetrics reads, from a /metrics body fetched some other way. */
export function parseAgentMetrics(text: string): { lagP99Ms: number; rssBytes: number; fds: number } {
  const value = (name: string): number => metricValue(text, name);
  return {
    lagP99Ms: value("sandbox_agent_nodejs_eventloop_lag_p99_seconds") * 1000,
    rssBytes: value("sandbox_agent_process_resident_memory_bytes"),
    fds: value("sandbox_agent_process_open_fds"),
  };
}

/** One unlabelled sample of a Prometheus text body, or NaN when it is not there. */
export function metricValue(text: string, name: string): number {
  const match = new RegExp(`^${name} ([0-9.eE+-]+)$`, "m").exec(text);
  return match ? Number(match[1]) : Number.NaN;
}
