/**
 * Where kernels keep their connection files and sockets (src/kernels/runtime-dir.ts): one
 * directory per agent under a base only root writes to, gone when the agent stops, and, when the
 * agent crashed, removed by the next agent at its start. Needs root, as CI has.
 */
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { ContextService } from "../../../src/gen/sandboxagent/api_pb.js";
import { removeStaleRuntimeDirectories, runtimeBase } from "../../../src/kernels/runtime-dir.js";
import { AUTH, client, eventually, TOKEN } from "../../helpers/agent.js";
import { ATTACKER, ensureUser } from "../../helpers/linux-users.js";

const running: ChildProcessWithoutNullStreams[] = [];
const made: string[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}

/** The name an agent with this pid and start time gives its directory. */
async function agentDirectoryOf(pid: number, start: string, suffix: string): Promise<string> {
  const dir = join(await runtimeBase(), `agent-${pid}-${start}-${suffix}`);
  await mkdir(join(dir, "kernel-abcdef"), { recursive: true });
  made.push(dir);
  return dir;
}

describe("runtime directories of earlier agents", () => {
  it("are removed when their agent is gone, and only then", async () => {
    const base = await runtimeBase();
    expect(base).toBe("/run/sandbox-agent/kernels");
    expect(lstatSync(base).mode & 0o777).toBe(0o711);
    expect(lstatSync(base).uid).toBe(0);

    // A process that has exited: its pid and start time name a crashed agent's directory.
    const gone = spawnSync("/bin/true");
    const crashed = await agentDirectoryOf(gone.pid!, "12345", "Crash1");
    // A process still running, with its real start time: an agent that must be left alone.
    const alive = spawn("/bin/sleep", ["60"]);
    const live = await agentDirectoryOf(alive.pid!, startTime(alive.pid!), "Alive1");
    // The same pid with another start time: the pid was reused, the agent is gone.
    const reused = await agentDirectoryOf(alive.pid!, "1", "Reuse1");
    // A look-alike that root does not own is someone else's business.
    const mallory = ensureUser(ATTACKER);
    const foreign = await agentDirectoryOf(gone.pid!, "12345", "Forei1");
    execFileSync("chown", [`${mallory.uid}:${mallory.gid}`, foreign]);

    try {
      const removed = await removeStaleRuntimeDirectories();
      expect(removed).toContain(crashed);
      expect(removed).toContain(reused);
      expect(existsSync(crashed)).toBe(false);
      expect(existsSync(reused)).toBe(false);
      expect(existsSync(live)).toBe(true);
      expect(existsSync(foreign)).toBe(true);
    } finally {
      alive.kill("SIGKILL");
    }
  });
});

function startMain(): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "--host", "127.0.0.1", "--port", "0"], {
    env: { ...process.env, SANDBOX_AGENT_ACCESS_TOKEN: TOKEN },
  });
  running.push(child);
  return child;
}

function listeningUrl(child: ChildProcessWithoutNullStreams): Promise<string> {
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`agent exited with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      if (entry.msg === "sandbox-agent listening" && entry.port) resolve(`http://127.0.0.1:${entry.port}`);
    });
  });
}

/** The directory of the agent with this pid, once it has one. */
async function directoryOf(pid: number): Promise<string> {
  const base = await runtimeBase();
  const name = await eventually(() => readdirSync(base).find((entry) => entry.startsWith(`agent-${pid}-`)) ?? "", 60_000);
  return join(base, name);
}

function killProcessesUsing(dir: string): void {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(dir)) process.kill(Number(entry), "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

describe("an agent's runtime directory", () => {
  it("goes with the agent on SIGTERM; after a crash, the next agent removes it at start", async () => {
    const crashing = startMain();
    const url = await listeningUrl(crashing);
    const { id } = await client(ContextService, url).createContext({ language: "python", cwd: "/tmp" }, { headers: AUTH });
    expect(id).not.toBe("");
    const crashedDir = await directoryOf(crashing.pid!);
    expect(lstatSync(crashedDir).mode & 0o777).toBe(0o711);
    expect(readdirSync(crashedDir).some((entry) => entry.startsWith("kernel-"))).toBe(true);

    crashing.kill("SIGKILL");
    await new Promise((resolve) => crashing.once("exit", resolve));
    expect(existsSync(crashedDir)).toBe(true);
    // Its kernels outlive it here (a service manager or the container would end them): not this test's subject.
    killProcessesUsing(crashedDir);

    const next = startMain();
    await listeningUrl(next);
    await eventually(() => !existsSync(crashedDir), 30_000);
    const ownDir = await directoryOf(next.pid!);

    next.kill("SIGTERM");
    expect(await new Promise((resolve) => next.once("exit", (code) => resolve(code)))).toBe(0);
    expect(existsSync(ownDir)).toBe(false);
  });
});
