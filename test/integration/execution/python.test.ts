/**
 * Python through the real Execute and Context RPCs: a real agent, real IPython kernels.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdir, realpath } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecutionService, type ExecuteResponse } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, TRANSPORT_NAMES, type TestAgent } from "../../helpers/agent.js";
import { collect, type ExecutionHarness, newContext, run, startExecutionHarness } from "../../helpers/execution.js";

let harness: ExecutionHarness;
let agent: TestAgent;
let exec: ExecutionHarness["exec"];
let contexts: ExecutionHarness["contexts"];
let dir: ExecutionHarness["dir"];
let ctx: string;

beforeAll(async () => {
  harness = await startExecutionHarness("exec-python-");
  ({ agent, exec, contexts, dir } = harness);
  ctx = await newContext(contexts, "python", dir.path);
});
afterAll(async () => harness?.close());

describe("python: results and output", () => {
  it("ends a successful execution with one main result carrying the trailing expression", async () => {
    const out = await run(exec, "a = 20\na * 2 + 2", { contextId: ctx });
    expect(out.errors).toEqual([]);
    const mains = out.results.filter((r) => r.isMainResult);
    expect(mains).toHaveLength(1);
    expect(out.main?.text).toBe("42");
    expect(out.main?.exitCode).toBe(0);
    expect(out.main?.executionCount).toBeGreaterThan(0);
    expect(out.main?.startedAt).toBeDefined();
    expect(out.main?.finishedAt).toBeDefined();
    // The summary is the last frame.
    expect(out.frames.at(-1)?.event.case).toBe("result");
  });

  it("streams the same frames over every transport the agent serves", async () => {
    for (const name of TRANSPORT_NAMES) {
      const out = await run(client(ExecutionService, agent.url, name), "print('via', end='')\n6 * 7", { contextId: ctx });
      expect([name, out.stdout, out.main?.text]).toEqual([name, "via", "42"]);
    }
  });

  it("still ends with a main result when there is no value (assignment, print)", async () => {
    const out = await run(exec, "b = 1", { contextId: ctx });
    expect(out.errors).toEqual([]);
    expect(out.main).toBeDefined();
    expect(out.main?.text).toBe("");
    const printed = await run(exec, "print('hi')", { contextId: ctx });
    expect(printed.stdout).toBe("hi\n");
    expect(printed.main?.isMainResult).toBe(true);
  });

  it("keeps stdout and stderr apart, with their newlines", async () => {
    const out = await run(exec, "import sys\nprint('out 1')\nprint('err 1', file=sys.stderr)\nprint('out 2\\n', end='')", { contextId: ctx });
    expect(out.stdout).toBe("out 1\nout 2\n");
    expect(out.stderr).toBe("err 1\n");
  });

  it("reports an exception by class name and message, with a plain-text traceback and no summary", async () => {
    const out = await run(exec, "print('before')\n1 / 0", { contextId: ctx });
    expect(out.stdout).toBe("before\n");
    expect(out.errors).toHaveLength(1);
    const [error] = out.errors;
    expect(error?.name).toBe("ZeroDivisionError");
    expect(error?.value).toBe("division by zero");
    expect(error?.traceback).toContain("ZeroDivisionError");
    expect(error?.traceback).toContain("1 / 0");
    expect(error?.traceback).not.toContain("\u001b[");
    expect(out.main).toBeUndefined();
    const custom = await run(exec, "class Oops(Exception): pass\nraise Oops('it went \"wrong\"')", { contextId: ctx });
    expect(custom.errors[0]?.name).toBe("Oops");
    expect(custom.errors[0]?.value).toBe('it went "wrong"');
  });

  it("maps MIME types onto result fields and others into extra", async () => {
    const code = [
      "from IPython.display import display, HTML, Markdown, JSON, Latex, SVG, Javascript",
      "display(HTML('<b>bold</b>'))",
      "display(Markdown('# title'))",
      "display(JSON({'k': [1, 2]}))",
      "display(Latex(r'$x^2$'))",
      "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>'))",
      "display({'application/x-custom': {'a': 1}, 'text/plain': 'custom'}, raw=True)",
    ].join("\n");
    const out = await run(exec, code, { contextId: ctx });
    expect(out.errors).toEqual([]);
    const displays = out.results.filter((r) => !r.isMainResult);
    expect(displays).toHaveLength(6);
    expect(displays[0]?.html).toBe("<b>bold</b>");
    expect(displays[1]?.markdown).toBe("# title");
    expect(JSON.parse(displays[2]?.json ?? "null")).toEqual({ k: [1, 2] });
    expect(displays[3]?.latex).toBe("$x^2$");
    expect(displays[4]?.svg).toContain("<svg");
    expect(displays[5]?.text).toBe("custom");
    expect(JSON.parse(displays[5]?.extra["application/x-custom"] ?? "null")).toEqual({ a: 1 });
    expect(out.main?.text).toBe("");
  });

  it("sends several display() calls as results in order, before the main result", async () => {
    const out = await run(exec, "display(1)\ndisplay('two')\ndisplay([3])\n'last'", { contextId: ctx });
    expect(out.results.map((r) => [r.text, r.isMainResult])).toEqual([
      ["1", false],
      ["'two'", false],
      ["[3]", false],
      ["'last'", true],
    ]);
  });

  it("marks the result after clear_output, and sends update_display_data with its display id", async () => {
    const code = [
      "from IPython.display import display, clear_output",
      "display('old')",
      "clear_output(wait=True)",
      "display('new')",
      "handle = display('v1', display_id='progress')",
      "handle.update('v2')",
    ].join("\n");
    const out = await run(exec, code, { contextId: ctx });
    const displays = out.results.filter((r) => !r.isMainResult);
    expect(displays.map((r) => r.text)).toEqual(["'old'", "'new'", "'v1'", "'v2'"]);
    expect(displays[0]?.extra.clear_output).toBeUndefined();
    expect(displays[1]?.extra.clear_output).toBe("true");
    expect(displays[2]?.extra.display_id).toBe("progress");
    expect(displays[3]?.extra.display_id).toBe("progress");
    expect(displays[3]?.extra.display_update).toBe("true");
  });

  it("gives pandas frames as text, html and table data", async () => {
    const out = await run(exec, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})", { contextId: ctx });
    expect(out.main?.html).toContain("<table");
    expect(out.main?.text).toContain("a");
    const data = JSON.parse(out.main?.data ?? "null") as { data: Array<Record<string, unknown>> };
    expect(data.data).toEqual([
      { index: 0, a: 1, b: "x" },
      { index: 1, a: 2, b: "y" },
    ]);
  });

  it("answers input() with a clear error instead of hanging", async () => {
    const out = await run(exec, "name = input('name? ')", { contextId: ctx });
    expect(out.errors[0]?.name).toBe("StdinNotImplementedError");
    const after = await run(exec, "'still here'", { contextId: ctx });
    expect(after.main?.text).toBe("'still here'");
  });

  it("runs IPython's pip magic, as Session.run's installs do", async () => {
    const magic = await run(exec, "%pip --version", { contextId: ctx });
    expect(magic.errors).toEqual([]);
    expect(magic.stdout).toMatch(/^pip \d+/);
    // Session.run sends `pip install …` as plain code: automagic makes it the same magic.
    const plain = await run(exec, "pip --version", { contextId: ctx });
    expect(plain.errors).toEqual([]);
    expect(plain.stdout).toMatch(/^pip \d+/);
  });
});

describe("python: state, environment, directory", () => {
  it("keeps state within a context and isolates contexts from each other", async () => {
    const other = await newContext(contexts, "python", dir.path);
    await run(exec, "shared = 'first'", { contextId: ctx });
    await run(exec, "shared = 'second'", { contextId: other });
    expect((await run(exec, "shared", { contextId: ctx })).main?.text).toBe("'first'");
    expect((await run(exec, "shared", { contextId: other })).main?.text).toBe("'second'");
    await contexts.destroyContext({ contextId: other }, { headers: { "x-access-token": agent.token } });
  });

  it("shows per-execution env vars to the code, quotes, newlines, $ and backticks intact, and removes them after", async () => {
    const tricky = `it's "quoted"\nsecond line $HOME \`whoami\` \\ '); import os; os._exit(1) #`;
    const out = await run(exec, "import os\nprint(os.environ['TRICKY'], end='|')\nprint(os.environ['PLAIN'], end='')", {
      contextId: ctx,
      envVars: { TRICKY: tricky, PLAIN: "p" },
    });
    expect(out.errors).toEqual([]);
    expect(out.stdout).toBe(`${tricky}|p`);
    const after = await run(exec, "import os\n('TRICKY' in os.environ, 'PLAIN' in os.environ)", { contextId: ctx });
    expect(after.main?.text).toBe("(False, False)");
  });

  it("restores a variable the execution overrode, and lets subprocesses see the value", async () => {
    await run(exec, "import os\nos.environ['KEEP'] = 'original'", { contextId: ctx });
    const out = await run(exec, "import subprocess\nprint(subprocess.run(['sh', '-c', 'echo \"$KEEP\"'], capture_output=True, text=True).stdout, end='')", {
      contextId: ctx,
      envVars: { KEEP: "override" },
    });
    expect(out.stdout).toBe("override\n");
    expect((await run(exec, "os.environ['KEEP']", { contextId: ctx })).main?.text).toBe("'original'");
  });

  it("runs in the requested cwd and echoes language and cwd exactly", async () => {
    const nested = join(dir.path, "with space");
    await mkdir(nested);
    const context = await contexts.createContext({ language: "python3", cwd: nested }, { headers: { "x-access-token": agent.token } });
    expect(context.language).toBe("python3");
    expect(context.cwd).toBe(nested);
    expect(context.createdAt).toBeDefined();
    const out = await run(exec, "import os\nos.getcwd()", { contextId: context.id });
    expect(out.main?.text).toBe(pythonRepr(await realpath(nested)));
  });

  it("defaults the cwd to the caller's home", async () => {
    const context = await contexts.createContext({ language: "python", cwd: "" }, { headers: { "x-access-token": agent.token } });
    expect(context.cwd).toBe("");
    const out = await run(exec, "import os\nos.getcwd()", { contextId: context.id });
    expect(out.main?.text).toBe(pythonRepr(process.env.HOME ?? "/root"));
  });

  it("refuses a cwd that does not exist", async () => {
    const err = await contexts
      .createContext({ language: "python", cwd: join(dir.path, "missing") }, { headers: { "x-access-token": agent.token } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
  });

  it("uses one default context per language when no context id is given", async () => {
    await run(exec, "default_marker = 7", { language: "python" });
    expect((await run(exec, "default_marker", { language: "python3" })).main?.text).toBe("7");
    expect((await run(exec, "default_marker * 2", { language: "" })).main?.text).toBe("14");
  });
});

describe("python: stopping (the agent's default limit is minutes away here)", () => {
  it("stops a cell at the client's Connect-Timeout-Ms, and the context runs the next one", async () => {
    const ctx = await newContext(contexts, "python");
    await run(exec, "kept = 1", { contextId: ctx });
    const err = await run(exec, "while True: pass", { contextId: ctx, timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    // Had the interrupt not happened, this would wait behind the loop forever.
    const after = await run(exec, "kept + 1", { contextId: ctx });
    expect(after.main?.text).toBe("2");
  });

  it("interrupts the cell of a client that goes away", async () => {
    const ctx = await newContext(contexts, "python");
    const controller = new AbortController();
    const frames: ExecuteResponse[] = [];
    const stream = exec.execute(
      { contextId: ctx, code: "import time\nprint('looping', flush=True)\nwhile True: time.sleep(0.05)", language: "", envVars: {} },
      { headers: AUTH, signal: controller.signal, timeoutMs: 0 },
    );
    try {
      for await (const frame of stream) {
        frames.push(frame);
        controller.abort();
      }
    } catch (err) {
      expect(ConnectError.from(err).code).toBe(Code.Canceled);
    }
    expect(collect(frames).stdout).toBe("looping\n");
    // Waits behind the loop unless the agent interrupted it when the client left.
    expect((await run(exec, "'free again'", { contextId: ctx })).main?.text).toBe("'free again'");
  });
});

/** Python's repr of a str, for the characters these tests use. */
function pythonRepr(value: string): string {
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  const body = value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll(quote, `\\${quote}`);
  return `${quote}${body}${quote}`;
}
