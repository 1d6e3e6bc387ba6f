/**
 * The unmodified `@e2b/code-interpreter` SDK against a real agent (contract 3.3): Sandbox.create()
 * through the control-plane stand-in, then runCode and the code contexts, with real kernels in
 * every installed language, as E2B's user `user` in /home/user.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startE2bSession, type E2bSession } from "../../helpers/e2b.js";
import { ensureUser } from "../../helpers/linux-users.js";

type CodeInterpreter = typeof import("@e2b/code-interpreter");

let session: E2bSession;
let sdk: Pick<CodeInterpreter, "TimeoutError" | "NotFoundError">;
let sbx: InstanceType<CodeInterpreter["Sandbox"]>;

beforeAll(async () => {
  ensureUser("user");
  session = await startE2bSession({ defaultUser: "user" });
  // Imported once the stand-in's environment is set.
  const { Sandbox, TimeoutError, NotFoundError } = await import("@e2b/code-interpreter");
  sdk = { TimeoutError, NotFoundError };
  sbx = await Sandbox.create();
});
afterAll(async () => session?.close());

describe("e2b code interpreter: runCode in Python", () => {
  it("returns the trailing expression as the main result, with the execution count", async () => {
    const execution = await sbx.runCode("x = 1; x += 1; x");
    expect(execution.error).toBeUndefined();
    expect(execution.text).toBe("2");
    expect(execution.results).toHaveLength(1);
    expect(execution.results[0]?.isMainResult).toBe(true);
    expect(execution.results[0]?.extra).toEqual({});
    expect(execution.executionCount).toBeGreaterThan(0);
  });

  it("strips one pair of quotes from a string's text", async () => {
    expect((await sbx.runCode("'bar'")).text).toBe("bar");
  });

  it("streams stdout and stderr to logs and callbacks, and the result to onResult", async () => {
    const stdout: string[] = [];
    const stderr: string[] = [];
    const results: unknown[] = [];
    const execution = await sbx.runCode("import sys\nprint('out')\nprint('err', file=sys.stderr)\n42", {
      onStdout: (message) => {
        stdout.push(message.line);
      },
      onStderr: (message) => {
        stderr.push(message.line);
      },
      onResult: (result) => {
        results.push(result.text);
      },
    });
    expect(execution.logs.stdout.join("")).toBe("out\n");
    expect(execution.logs.stderr.join("")).toBe("err\n");
    expect(stdout.join("")).toBe("out\n");
    expect(stderr.join("")).toBe("err\n");
    expect(results).toEqual(["42"]);
  });

  it("reports an exception as the execution's error and to onError, keeping earlier output", async () => {
    const errors: string[] = [];
    const execution = await sbx.runCode("print('before')\nraise ValueError('bad value')", {
      onError: (error) => {
        errors.push(error.name);
      },
    });
    expect(execution.error?.name).toBe("ValueError");
    expect(execution.error?.value).toBe("bad value");
    expect(execution.error?.traceback).toContain("ValueError");
    expect(execution.logs.stdout.join("")).toBe("before\n");
    expect(errors).toEqual(["ValueError"]);
  });

  it("keeps non-ASCII output intact, however the network cuts it", async () => {
    const line = "héllo ✓ 日本語 🎉";
    const execution = await sbx.runCode(`for _ in range(2000): print(${JSON.stringify(line)})`);
    expect(execution.logs.stdout.join("")).toBe(`${line}\n`.repeat(2000));
  });

  it("gives display data as results that are not the main one, with an empty extra", async () => {
    const execution = await sbx.runCode("from IPython.display import display, HTML, JSON\ndisplay(HTML('<b>hi</b>'))\ndisplay(JSON({'a': 1}))");
    expect(execution.results).toHaveLength(2);
    expect(execution.results[0]?.isMainResult).toBe(false);
    expect(execution.results[0]?.html).toBe("<b>hi</b>");
    expect(execution.results[0]?.extra).toEqual({});
    expect(execution.results[1]?.json).toEqual({ a: 1 });
  });

  it("gives a matplotlib figure as PNG and as E2B chart data", async () => {
    const execution = await sbx.runCode(
      ["import matplotlib.pyplot as plt", "plt.plot([1, 2, 3], [4, 5, 6], label='series')", "plt.title('Growth')", "plt.xlabel('Time (s)')", "plt.show()"].join(
        "\n",
      ),
    );
    expect(execution.error).toBeUndefined();
    const figure = execution.results[0];
    expect(figure?.png).toMatch(/^iVBOR/);
    expect(figure?.extra).toEqual({});
    const chart = figure?.chart as unknown as Record<string, unknown>;
    expect(chart.type).toBe("line");
    expect(chart.title).toBe("Growth");
    expect(chart.x_label).toBe("Time (s)");
    expect(chart.x_unit).toBe("s");
    expect(chart.elements).toEqual([
      {
        label: "series",
        points: [
          [1, 4],
          [2, 5],
          [3, 6],
        ],
      },
    ]);
  });

  it("gives a DataFrame's data as columns", async () => {
    const execution = await sbx.runCode("import pandas as pd\npd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})");
    expect(execution.results[0]?.data).toEqual({ a: [1, 2, 3], b: ["x", "y", "z"] });
    expect(execution.results[0]?.html).toContain("<table");
  });

  it("applies env vars to one run only", async () => {
    const withVar = await sbx.runCode("import os\nos.environ.get('E2B_RUN_VAR', 'unset')", { envs: { E2B_RUN_VAR: "it's ✓" } });
    expect(withVar.text).toBe("it's ✓");
    const after = await sbx.runCode("os.environ.get('E2B_RUN_VAR', 'unset')");
    expect(after.text).toBe("unset");
  });

  it("gives every run the sandbox's env vars (Sandbox.create's envs, through POST /init), under its own", async () => {
    const { Sandbox } = await import("@e2b/code-interpreter");
    const withEnvs = await Sandbox.create({ envs: { E2B_SANDBOX_VAR: "sandbox", E2B_BOTH_VAR: "sandbox" } });
    const code = "import os\nprint(os.environ.get('E2B_SANDBOX_VAR'), os.environ.get('E2B_BOTH_VAR'))";
    const execution = await withEnvs.runCode(code, { envs: { E2B_BOTH_VAR: "run" } });
    expect(execution.logs.stdout.join("")).toBe("sandbox run\n");
  });

  it("runs in /home/user as the sandbox's user", async () => {
    const execution = await sbx.runCode("import os, getpass\nprint(os.getcwd(), getpass.getuser())");
    expect(execution.logs.stdout.join("")).toBe("/home/user user\n");
  });

  it("interrupts a run whose client timed out, and the next run in that context succeeds", async () => {
    const context = await sbx.createCodeContext();
    await sbx.runCode("state = 'kept'", { context });
    await expect(sbx.runCode("while True: pass", { context, timeoutMs: 2_000 })).rejects.toThrow(sdk.TimeoutError);
    const next = await sbx.runCode("state", { context, timeoutMs: 20_000 });
    expect(next.text).toBe("kept");
  });
});

describe("e2b code interpreter: other languages", () => {
  const cases = [
    { language: "javascript", set: "console.log(process.env.E2B_LANG_VAR ?? 'unset')", value: "let n = 41; n + 1", stdout: "42\n" },
    { language: "ts", set: "console.log(Deno.env.get('E2B_LANG_VAR') ?? 'unset')", value: "const m: number = 42; m", text: "42" },
    { language: "r", set: "cat(Sys.getenv('E2B_LANG_VAR', 'unset'), '\\n', sep = '')", value: "40 + 2", text: "[1] 42" },
    { language: "java", set: 'System.out.println(System.getenv().getOrDefault("E2B_LANG_VAR", "unset"));', value: "int k = 41; k + 1", text: "42" },
    { language: "bash", set: 'echo "${E2B_LANG_VAR:-unset}"', value: "echo $((40 + 2))", stdout: "42\n" },
  ];
  for (const { language, set, value, text, stdout } of cases) {
    it(`${language}: runs code and applies env vars to one run only`, async () => {
      const execution = await sbx.runCode(value, { language });
      expect(execution.error).toBeUndefined();
      if (text !== undefined) expect(execution.text).toBe(text);
      if (stdout !== undefined) expect(execution.logs.stdout.join("")).toBe(stdout);
      const withVar = await sbx.runCode(set, { language, envs: { E2B_LANG_VAR: "set ✓" } });
      expect(withVar.logs.stdout.join("")).toBe("set ✓\n");
      const after = await sbx.runCode(set, { language });
      expect(after.logs.stdout.join("")).toBe("unset\n");
    });
  }

  it("reports a failing bash command as an error", async () => {
    const execution = await sbx.runCode("false", { language: "bash" });
    expect(execution.error).toBeDefined();
  });
});

describe("e2b code interpreter: contexts", () => {
  it("lists the default python and javascript contexts", async () => {
    const languages = (await sbx.listCodeContexts()).map((context) => context.language);
    expect(languages).toContain("python");
    expect(languages).toContain("javascript");
  });

  it("creates a context with defaults and lists it last", async () => {
    const context = await sbx.createCodeContext();
    expect(context.language).toBe("python");
    expect(context.cwd).toBe("/home/user");
    expect((await sbx.listCodeContexts()).at(-1)).toEqual(context);
  });

  it("creates a context with a language and cwd, and keeps state in it apart from others", async () => {
    const context = await sbx.createCodeContext({ language: "js", cwd: "/tmp" });
    expect(context).toMatchObject({ language: "javascript", cwd: "/tmp" });
    await sbx.runCode("globalThis.mark = 'here'", { context });
    expect((await sbx.runCode("console.log(globalThis.mark, process.cwd())", { context })).logs.stdout.join("")).toBe("here /tmp\n");
    expect((await sbx.runCode("console.log(typeof globalThis.mark)", { language: "javascript" })).logs.stdout.join("")).toBe("undefined\n");
  });

  it("restarts a context, losing its state", async () => {
    const context = await sbx.createCodeContext();
    await sbx.runCode("lost = 1", { context });
    await sbx.restartCodeContext(context);
    const execution = await sbx.runCode("lost", { context });
    expect(execution.error?.name).toBe("NameError");
  });

  it("removes a context: gone from the list, and running in it is NotFound", async () => {
    const context = await sbx.createCodeContext();
    await sbx.removeCodeContext(context.id);
    expect((await sbx.listCodeContexts()).map((listed) => listed.id)).not.toContain(context.id);
    await expect(sbx.runCode("1", { context })).rejects.toThrow(sdk.NotFoundError);
    await expect(sbx.removeCodeContext(context.id)).rejects.toThrow(sdk.NotFoundError);
  });
});
