/**
 * An agent stopped while kernels are still starting leaves none behind. An agent with the E2B
 * interpreter port starts its default contexts (Python and JavaScript) at once and is stopped
 * here (SIGTERM) as soon as it listens; once its process is gone, nothing may remain that runs in
 * its runtime directory. Found as one orphaned tslab kernel per test run: close() waited only for
 * kernels already being spawned, not for a context still looking up its language, whose kernel
 * then started after close() and was still shutting down when the test process ended (three
 * runs of the interpreter test: 1, 2, 3 orphans before ContextRegistry.dispose waited for every
 * create, 0 after). That exact timing is the test runner's; this guards the deployed path.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import { freePort } from "../../helpers/agent.js";

/** Longer than a JavaScript kernel takes to start here, so a leaked one would have shown. */
const KERNEL_START_MS = 5_000;

/** Processes whose command line names the runtime directory of the agent with this pid. */
function processesOfAgent(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(`/agent-${pid}-`)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function listening(child: ChildProcessWithoutNullStreams): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`agent exited with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.includes('"sandbox-agent listening"')) resolve();
    });
  });
}

describe("stopping the agent", () => {
  it("while its default contexts are starting leaves no kernel behind", async () => {
    const args = ["--host", "127.0.0.1", "--port", "0", "--interpreter-port", String(await freePort()), "--kernel-pool-size", "0"];
    const agent = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], { env: { ...process.env, SANDBOX_AGENT_ACCESS_TOKEN: "t" } });
    const exited = new Promise((resolve) => agent.once("exit", resolve));
    await listening(agent);
    agent.kill("SIGTERM");
    await exited;
    await new Promise((resolve) => setTimeout(resolve, KERNEL_START_MS));
    const left = processesOfAgent(agent.pid!);
    for (const pid of left) process.kill(pid, "SIGKILL");
    expect(left).toEqual([]);
  });
});
