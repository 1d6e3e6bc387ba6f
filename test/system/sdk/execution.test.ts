/**
 * Code execution through the official @scalebox/sdk, against a real agent and real kernels:
 * Sandbox.runCode, CodeInterpreter contexts and Session.run, checked on the shapes the SDK builds
 * from the stream (text, logs, results, error, success).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../../helpers/agent.js";
import { startSdkSession, type SdkSession } from "../../helpers/sdk.js";

let session: SdkSession;
let dir: { path: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  session = await startSdkSession();
  dir = await tempDir("sdk-exec-");
});
afterAll(async () => {
  await session?.close();
  await dir?.cleanup();
});

describe("sdk: Sandbox.runCode", () => {
  it("returns the trailing expression as text, with success", async () => {
    const { Sandbox } = await import("@scalebox/sdk");
    const sbx = await Sandbox.create("code-interpreter");
    const result = await sbx.runCode("x = 41\nx + 1", { language: "python" });
    expect(result.error).toBeUndefined();
    expect(result.success).toBe(true);
    expect(result.text).toBe("42");
    expect(result.exitCode).toBe(0);
    expect(result.results).toHaveLength(1);
    expect(result.results?.[0]?.isMainResult).toBe(true);
  });

  it("succeeds for code without a value, with its output in logs", async () => {
    const { Sandbox } = await import("@scalebox/sdk");
    const sbx = await Sandbox.create("code-interpreter");
    const result = await sbx.runCode("import sys\nprint('hello')\nprint('oops', file=sys.stderr)", { language: "python" });
    expect(result.success).toBe(true);
    expect(result.logs.stdout).toBe("hello\n");
    expect(result.logs.stderr).toBe("oops\n");
    expect(result.text).toBe("hello\n");
  });

  it("reports an exception as error, not success", async () => {
    const { Sandbox } = await import("@scalebox/sdk");
    const sbx = await Sandbox.create("code-interpreter");
    const result = await sbx.runCode("print('partial')\n{}['missing']", { language: "python" });
    expect(result.success).toBe(false);
    expect(result.exitCode).toBe(1);
    expect(result.error?.name).toBe("KeyError");
    expect(result.error?.value).toBe("'missing'");
    expect(result.logs.stdout).toBe("partial\n");
  });

  it("passes envVars to the code", async () => {
    const { Sandbox } = await import("@scalebox/sdk");
    const sbx = await Sandbox.create("code-interpreter");
    const value = `a'b"c\n$d`;
    const result = await sbx.runCode("import os\nprint(os.environ['SDK_VALUE'], end='')", { language: "python", envVars: { SDK_VALUE: value } });
    expect(result.logs.stdout).toBe(value);
  });

  it("returns a matplotlib figure as png and chart", async () => {
    const { Sandbox } = await import("@scalebox/sdk");
    const sbx = await Sandbox.create("code-interpreter");
    const result = await sbx.runCode("import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\nplt.title('t')\nplt.show()", { language: "python" });
    expect(result.success).toBe(true);
    expect(result.png).toBeTruthy();
    expect(result.chart).toMatchObject({ type: "line", title: "t" });
    const figure = result.results?.find((r) => r.png);
    expect(figure?.isMainResult).toBe(false);
  });

  it("runs R", async () => {
    const { Sandbox } = await import("@scalebox/sdk");
    const sbx = await Sandbox.create("code-interpreter");
    const result = await sbx.runCode("v <- c(1, 2, 3)\nsum(v)", { language: "r" });
    expect(result.success).toBe(true);
    expect(result.text).toBe("[1] 6");
  });
});

describe("sdk: CodeInterpreter contexts", () => {
  it("keeps state in a created context, isolates contexts, and destroys them", async () => {
    const { CodeInterpreter } = await import("@scalebox/sdk");
    const interpreter = await CodeInterpreter.create();
    const context = await interpreter.createCodeContext({ language: "python", cwd: dir.path });
    expect(context.language).toBe("python");
    expect(context.cwd).toBe(dir.path);
    await interpreter.runCode("counter = 10", { context, language: "python" });
    const bumped = await interpreter.runCode("counter += 1\ncounter", { context, language: "python" });
    expect(bumped.text).toBe("11");
    const cwd = await interpreter.runCode("import os\nos.getcwd()", { context, language: "python" });
    expect(cwd.text).toBe(`'${dir.path}'`);

    const other = await interpreter.createCodeContext({ language: "python", cwd: dir.path });
    const isolated = await interpreter.runCode("counter", { context: other, language: "python" });
    expect(isolated.success).toBe(false);
    expect(isolated.error?.name).toBe("NameError");

    await interpreter.destroyContext(context);
    await interpreter.destroyContext(other);
    const gone = await interpreter.runCode("1", { context, language: "python" });
    expect(gone.success).toBe(false);
    expect(gone.error?.message).toContain("not found");
  });

  it("works in /workspace, the session API's default directory (made by the install script)", async () => {
    const { CodeInterpreter } = await import("@scalebox/sdk");
    const interpreter = await CodeInterpreter.create();
    const context = await interpreter.createCodeContext({ language: "python", cwd: "/workspace" });
    try {
      const made = await interpreter.runCode(
        "import os, tempfile\nf = tempfile.NamedTemporaryFile(dir='.', delete=True)\n(os.getcwd(), os.path.dirname(f.name))",
        { context, language: "python" },
      );
      expect(made.text).toBe("('/workspace', '/workspace')");
    } finally {
      await interpreter.destroyContext(context);
    }
  });

  it("runs pip install as Python code in a context (IPython's pip magic)", async () => {
    const { CodeInterpreter } = await import("@scalebox/sdk");
    const interpreter = await CodeInterpreter.create();
    const context = await interpreter.createCodeContext({ language: "python", cwd: dir.path });
    // No network here: installing pip itself is answered locally (satisfied or refused), never a
    // Python SyntaxError, which is what a kernel without the magic would say.
    const result = await interpreter.runCode("pip install pip", { context, language: "python" });
    expect(result.error).toBeUndefined();
    expect(`${result.logs.stdout}${result.logs.stderr}`).toMatch(/pip/i);
    await interpreter.destroyContext(context);
  });
});

describe("sdk: Session.run", () => {
  it("creates a session, installs nothing new, and runs the code", async () => {
    const { Session } = await import("@scalebox/sdk");
    const result = await Session.run({ code: "import os\nprint(6 * 7)\nprint(os.getcwd())", language: "python", cwd: dir.path });
    expect(result.success).toBe(true);
    expect(result.stdout).toBe(`42\n${dir.path}\n`);
  });
});
