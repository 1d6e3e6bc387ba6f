/**
 * Control of executions: the time limit and a leaving client interrupt the kernel, a kernel that
 * ignores the interrupt is restarted, a dead kernel is reported and replaced, and executions on one
 * context run one at a time in order.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecutionService } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, eventually, type TestAgent } from "../../helpers/agent.js";
import { type ExecutionHarness, newContext, run, startExecutionHarness } from "../../helpers/execution.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The agent's own limit for callers that send none: short, so runaway cells end quickly here. */
const SERVER_LIMIT_MS = 1500;

let harness: ExecutionHarness;
let agent: TestAgent;
let exec: ExecutionHarness["exec"];
let contexts: ExecutionHarness["contexts"];
let dir: ExecutionHarness["dir"];

beforeAll(async () => {
  harness = await startExecutionHarness("exec-control-", { executionTimeoutMs: SERVER_LIMIT_MS });
  ({ agent, exec, contexts, dir } = harness);
});
afterAll(async () => harness?.close());

describe("time limits", () => {
  it("interrupts a runaway cell at the agent's limit, says so, and keeps the context's state", async () => {
    const ctx = await newContext(contexts, "python");
    await run(exec, "kept = 'survives'", { contextId: ctx });
    const out = await run(exec, "print('started', flush=True)\nwhile True: pass", { contextId: ctx });
    expect(out.stdout).toBe("started\n");
    expect(out.errors.at(-1)?.name).toBe("ExecutionTimeoutError");
    expect(out.errors.at(-1)?.value).toContain("interrupted");
    expect(out.errors.at(-1)?.value).toContain("keeps its state");
    // The kernel's own report of the interrupt comes first.
    expect(out.errors.map((e) => e.name)).toContain("KeyboardInterrupt");
    expect(out.main).toBeUndefined();
    const after = await run(exec, "kept", { contextId: ctx });
    expect(after.main?.text).toBe("'survives'");
  });

  it("restarts a kernel that ignores the interrupt, and says its state is lost", async () => {
    const ctx = await newContext(contexts, "python");
    await run(exec, "lost = 'gone after restart'", { contextId: ctx });
    const out = await run(exec, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", { contextId: ctx });
    expect(out.errors.at(-1)?.name).toBe("ExecutionTimeoutError");
    expect(out.errors.at(-1)?.value).toContain("restarted");
    const after = await run(exec, "lost", { contextId: ctx });
    expect(after.errors[0]?.name).toBe("NameError");
    expect((await run(exec, "1 + 1", { contextId: ctx })).main?.text).toBe("2");
  });
});

describe("kernel death", () => {
  it("reports a kernel killed mid-execution and works again at the next execution", async () => {
    const ctx = await newContext(contexts, "python");
    await run(exec, "before = 1", { contextId: ctx });
    const out = await run(exec, "import os\nos.kill(os.getpid(), 9)", { contextId: ctx });
    expect(out.errors.at(-1)?.name).toBe("DeadKernelError");
    expect(out.errors.at(-1)?.value).toContain("SIGKILL");
    const next = await run(exec, "import os\nos.getpid()", { contextId: ctx });
    expect(next.errors).toEqual([]);
    expect(next.main?.text).toMatch(/^\d+$/);
    expect((await run(exec, "before", { contextId: ctx })).errors[0]?.name).toBe("NameError");
  });

  it("tells the next execution when the kernel died between executions", async () => {
    const ctx = await newContext(contexts, "python", dir.path);
    const pid = Number((await run(exec, "import os\nos.getpid()", { contextId: ctx })).main?.text);
    process.kill(pid, "SIGKILL");
    // The kernel is a child of this test process (the agent runs in it): once reaped, the agent
    // has seen the exit, and the next execution restarts the kernel and says so.
    await eventually(() => !alive(pid));
    const out = await run(exec, "import os\nos.getcwd()", { contextId: ctx });
    expect(out.stderr).toContain("earlier state is lost");
    expect(out.main?.text).toBe(`'${dir.path}'`);
  });

  it("restarts a kernel that died before the execution even while its exit is still being reported", async () => {
    const ctx = await newContext(contexts, "python");
    await run(exec, "state = 'old'", { contextId: ctx });
    // A process in its own session keeps the kernel's stdout open (ipykernel's fileno() is the
    // real one): the exit is reported only once the agent gives up draining it, a window in which
    // the kernel is reaped but not known dead.
    const code = "import os, subprocess, sys\nsubprocess.Popen(['setsid', 'sleep', '1'], stdout=sys.stdout, stderr=sys.stderr)\nos.getpid()";
    const pid = Number((await run(exec, code, { contextId: ctx })).main?.text);
    process.kill(pid, "SIGKILL");
    await eventually(() => !alive(pid), 10_000, 2);
    const out = await run(exec, "'state' in globals()", { contextId: ctx });
    expect(out.errors).toEqual([]);
    expect(out.stderr).toContain("earlier state is lost");
    expect(out.main?.text).toBe("False");
  });
});

describe("ordering", () => {
  it("runs executions sent together to one context one at a time, in arrival order", async () => {
    // One HTTP/2 connection: requests reach the agent in the order they are sent.
    const h2 = client(ExecutionService, agent.url, "connect-h2");
    const ctx = await newContext(contexts, "python");
    await run(h2, "order = []", { contextId: ctx });
    const flag = join(dir.path, "release");
    const first = h2
      .execute(
        {
          contextId: ctx,
          code: `import os, time\norder.append('first-start')\nprint('waiting', flush=True)\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.01)\norder.append('first-end')`,
          language: "",
          envVars: {},
        },
        { headers: AUTH },
      )
      [Symbol.asyncIterator]();
    // The first execution is running (and blocked) before the others are sent.
    expect((await first.next()).value?.event.case).toBe("stdout");
    const second = run(h2, "order.append('second')", { contextId: ctx });
    const third = run(h2, "order.append('third')\norder", { contextId: ctx });
    await writeFile(flag, "");
    for (let frame = await first.next(); !frame.done; frame = await first.next());
    const [, last] = await Promise.all([second, third]);
    expect(last.main?.text).toBe("['first-start', 'first-end', 'second', 'third']");
  });
});

describe("errors", () => {
  it("answers an unknown context id with not_found", async () => {
    const err = await run(exec, "1", { contextId: "no-such-context" }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.NotFound);
    expect(ConnectError.from(err).message).toContain("not found");
  });

  it("answers an unknown language with invalid_argument naming the language and what is available", async () => {
    const err = await contexts.createContext({ language: "cobol", cwd: "" }, { headers: AUTH }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
    expect(ConnectError.from(err).message).toContain("language");
    expect(ConnectError.from(err).message).toContain("cobol");
    expect(ConnectError.from(err).message).toContain("python");
    const viaExecute = await run(exec, "1", { language: "cobol" }).catch((e: unknown) => e);
    expect(ConnectError.from(viaExecute).code).toBe(Code.InvalidArgument);
  });

  it("destroys a context: success, then not_found for it", async () => {
    const ctx = await newContext(contexts, "python");
    const pid = Number((await run(exec, "import os\nos.getpid()", { contextId: ctx })).main?.text);
    const response = await contexts.destroyContext({ contextId: ctx }, { headers: AUTH });
    expect(response.success).toBe(true);
    expect(alive(pid)).toBe(false);
    const err = await run(exec, "1", { contextId: ctx }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.NotFound);
    const again = await contexts.destroyContext({ contextId: ctx }, { headers: AUTH }).catch((e: unknown) => e);
    expect(ConnectError.from(again).code).toBe(Code.NotFound);
  });

  it("refuses environment variable names a process environment cannot hold", async () => {
    const ctx = await newContext(contexts, "python");
    const err = await run(exec, "1", { contextId: ctx, envVars: { "A=B": "x" } }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
  });
});
