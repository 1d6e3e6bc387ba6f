/**
 * Kernel processes over an agent's life: the warm pool starts one at start-up and hands it to the
 * first context, and closing the agent stops every kernel and removes their connection files.
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { ContextService, ExecutionService } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, eventually, startTestAgent } from "../../helpers/agent.js";
import { run } from "../../helpers/execution.js";

interface KernelProcessInfo {
  readonly pid: number;
  readonly connectionFile: string | undefined;
}

/** Kernel processes that are children of this test process (the agent runs in it). */
async function kernelChildren(): Promise<KernelProcessInfo[]> {
  const found: KernelProcessInfo[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== process.pid) continue;
      const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (!argv.some((arg) => arg.includes("ipykernel") || arg.includes("IRkernel"))) continue;
      const index = argv.indexOf("-f");
      found.push({ pid: Number(entry), connectionFile: index >= 0 ? argv[index + 1] : undefined });
    } catch {
      // the process went away while we looked
    }
  }
  return found;
}

describe("kernel lifecycle", () => {
  it("hands the pre-started kernel to the first context, and stops every kernel on close", async () => {
    const agent = await startTestAgent({ kernelPoolSize: 1 });
    try {
      const pooled = await eventually(async () => {
        const kernels = await kernelChildren();
        return kernels.length === 1 ? kernels[0] : undefined;
      }, 30_000);
      expect(pooled?.connectionFile).toBeDefined();
      expect(existsSync(pooled!.connectionFile!)).toBe(true);

      const contexts = client(ContextService, agent.url);
      const exec = client(ExecutionService, agent.url);
      const context = await contexts.createContext({ language: "python", cwd: "/tmp" }, { headers: AUTH });
      const pid = await run(exec, "import os\nos.getpid(), os.getcwd()", { contextId: context.id });
      expect(pid.main?.text).toBe(`(${pooled!.pid}, '/tmp')`);

      // A second kernel (R) and a cell still running when the agent closes.
      await run(exec, "1", { language: "r" });
      void run(exec, "while True: pass", { contextId: context.id }).catch(() => undefined);
      await eventually(async () => (await kernelChildren()).length >= 3, 30_000);
    } finally {
      const before = await kernelChildren();
      await agent.close();
      await eventually(async () => (await kernelChildren()).length === 0);
      for (const kernel of before) {
        if (kernel.connectionFile !== undefined) expect(existsSync(kernel.connectionFile)).toBe(false);
      }
    }
  });
});
