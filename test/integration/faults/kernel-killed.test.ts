/**
 * Fault: a Python kernel is SIGKILLed from outside (the OOM killer, `kill -9`) while a cell runs.
 * The caller must get a clear error event (DeadKernelError, naming the signal) and a normal end of
 * stream, the execution waiting behind it must run on a new kernel, the context must keep working
 * and, once destroyed, leave no kernel process, no ZeroMQ socket and no descriptor behind.
 * test/integration/execution/control.test.ts covers a kernel that kills itself and one killed between
 * executions; this file covers the kill from outside during a cell, with the resources counted.
 */
import type { Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextService, ExecutionService, type ExecuteResponse } from "../../../src/gen/sandboxagent/api_pb.js";
import { descendantsOf } from "../../../harness/probe.js";
import { AUTH, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { collect, run, type Collected } from "../../helpers/execution.js";
import { baselineOf, expectBackToBaseline, expectServesOthers, procState, servesOthersMeanwhile, withClients, type Held } from "../../helpers/faults.js";

let agent: TestAgent;
let baseline: Held;

beforeAll(async () => {
  // No warm pool: every kernel alive below was started by this file, and none is replaced behind
  // its back, so the descendants can be compared exactly.
  agent = await startTestAgent({ kernelPoolSize: 0 });
  // Warm-up: the first kernel creates what the agent keeps for good (the ZeroMQ context and its
  // threads' descriptors, the kernels' runtime directory).
  await withClients(agent.url, "h2", async (clients) => {
    const contexts = clients.of(ContextService);
    const { id } = await contexts.createContext({ language: "python", cwd: "/tmp" }, { headers: AUTH });
    expect((await run(clients.of(ExecutionService), "1 + 1", { contextId: id })).main?.text).toBe("2");
    await contexts.destroyContext({ contextId: id }, { headers: AUTH });
  });
  await expectServesOthers(agent);
  baseline = await baselineOf(agent);
}, 90_000);

afterAll(async () => {
  await agent?.close();
});

async function kernelPid(exec: Client<typeof ExecutionService>, contextId: string): Promise<number> {
  const out = await run(exec, "import os\nos.getpid()", { contextId });
  expect(out.errors).toEqual([]);
  return Number(out.main?.text);
}

/**
 * Runs `code` and SIGKILLs `pid` once the cell's stdout shows `marker`, checking meanwhile that
 * another client is served. Returns the frames the caller got; a stream error is thrown.
 */
async function killDuring(exec: Client<typeof ExecutionService>, contextId: string, code: string, marker: string, pid: number): Promise<Collected> {
  const frames: ExecuteResponse[] = [];
  let stdout = "";
  let meanwhile: Promise<void> | undefined;
  for await (const frame of exec.execute({ code, contextId, language: "", envVars: {} }, { headers: AUTH })) {
    frames.push(frame);
    if (frame.event.case === "stdout") stdout += frame.event.value.content;
    if (meanwhile === undefined && stdout.includes(marker)) {
      process.kill(pid, "SIGKILL");
      meanwhile = servesOthersMeanwhile(agent);
    }
  }
  expect(meanwhile, "the cell ended before the kernel was killed").toBeDefined();
  await meanwhile;
  return collect(frames);
}

function expectDeadKernel(out: Collected): void {
  expect(out.main).toBeUndefined();
  const last = out.errors.at(-1);
  expect(last?.name).toBe("DeadKernelError");
  expect(last?.value).toContain("SIGKILL");
  expect(last?.value).toContain("the next execution starts a new kernel");
}

describe("a kernel SIGKILLed from outside during a cell", () => {
  it("ends the cell with DeadKernelError, runs the execution sent behind it on a new kernel, and leaks nothing once destroyed", async () => {
    await withClients(agent.url, "h2", async (clients) => {
      const exec = clients.of(ExecutionService);
      const contexts = clients.of(ContextService);
      const { id } = await contexts.createContext({ language: "python", cwd: "/tmp" }, { headers: AUTH });
      await run(exec, "state = 'before the kill'", { contextId: id });
      const pid = await kernelPid(exec, id);
      expect(await descendantsOf(process.pid)).toContain(pid);

      // Sent right behind it on the same connection: it waits in the context's line meanwhile.
      const killed = killDuring(exec, id, "import time\nprint('sleeping', flush=True)\ntime.sleep(30)", "sleeping", pid);
      const queued = run(exec, "import os\nos.getpid()", { contextId: id });
      const out = await killed;
      expect(out.stdout).toBe("sleeping\n");
      expectDeadKernel(out);
      // Reaped by the agent, not left a zombie.
      expect(await procState(pid)).toBeUndefined();

      const next = await queued;
      expect(next.errors).toEqual([]);
      // The death was reported to the cell it killed; nobody is told twice.
      expect(next.stderr).toBe("");
      const newPid = Number(next.main?.text);
      expect(newPid).not.toBe(pid);
      expect(await descendantsOf(process.pid)).toContain(newPid);
      // The state went with the old kernel; the context works.
      expect((await run(exec, "state", { contextId: id })).errors[0]?.name).toBe("NameError");
      expect((await run(exec, "21 * 2", { contextId: id })).main?.text).toBe("42");

      // A context created after the fault works as well.
      const other = await contexts.createContext({ language: "python", cwd: "/tmp" }, { headers: AUTH });
      expect((await run(exec, "'fresh'", { contextId: other.id })).main?.text).toBe("'fresh'");

      await contexts.destroyContext({ contextId: id }, { headers: AUTH });
      await contexts.destroyContext({ contextId: other.id }, { headers: AUTH });
    });
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });

  it("ends a cell that floods stdout with DeadKernelError after the output it had sent", async () => {
    await withClients(agent.url, "h1", async (clients) => {
      const exec = clients.of(ExecutionService);
      const contexts = clients.of(ContextService);
      const { id } = await contexts.createContext({ language: "python", cwd: "/tmp" }, { headers: AUTH });
      const pid = await kernelPid(exec, id);
      const flood = "import itertools\nfor i in itertools.count():\n    print('line', i, flush=True)";
      const out = await killDuring(exec, id, flood, "line 200\n", pid);
      expect(out.stdout.startsWith("line 0\nline 1\n")).toBe(true);
      expectDeadKernel(out);
      expect(await procState(pid)).toBeUndefined();
      expect((await run(exec, "'again'", { contextId: id })).main?.text).toBe("'again'");
      await contexts.destroyContext({ contextId: id }, { headers: AUTH });
    });
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });

  it("reports a kernel killed during a cell of a context that is then destroyed, and leaks nothing", async () => {
    await withClients(agent.url, "grpc", async (clients) => {
      const exec = clients.of(ExecutionService);
      const contexts = clients.of(ContextService);
      const { id } = await contexts.createContext({ language: "python", cwd: "/tmp" }, { headers: AUTH });
      const pid = await kernelPid(exec, id);
      const out = await killDuring(exec, id, "import time\nprint('waiting', flush=True)\ntime.sleep(30)", "waiting", pid);
      expectDeadKernel(out);
      // Destroyed while dead, before any execution restarted it: nothing to restart, nothing left.
      await contexts.destroyContext({ contextId: id }, { headers: AUTH });
    });
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});
