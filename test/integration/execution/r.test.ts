/**
 * R through IRkernel: values, errors, plots, environment variables, cwd, input and interrupts.
 */
import { realpath } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH } from "../../helpers/agent.js";
import { type ExecutionHarness, newContext, run, startExecutionHarness } from "../../helpers/execution.js";

let harness: ExecutionHarness;
let exec: ExecutionHarness["exec"];
let contexts: ExecutionHarness["contexts"];
let dir: ExecutionHarness["dir"];
let ctx: string;

beforeAll(async () => {
  harness = await startExecutionHarness("exec-r-");
  ({ exec, contexts, dir } = harness);
  ctx = await newContext(contexts, "r", dir.path);
});
afterAll(async () => harness?.close());

describe("r", () => {
  it("keeps state and gives the last value as the main result", async () => {
    await run(exec, "x <- 20", { contextId: ctx });
    const out = await run(exec, "y <- x + 1\ny * 2", { contextId: ctx });
    expect(out.errors).toEqual([]);
    expect(out.main?.text).toBe("[1] 42");
    expect(out.results.filter((r) => r.isMainResult)).toHaveLength(1);
  });

  it("sends earlier visible values as ordinary results, and keeps stdout and stderr apart", async () => {
    const out = await run(exec, "print('printed')\nmessage('to stderr')\n1\n2", { contextId: ctx });
    expect(out.stdout).toBe('[1] "printed"\n');
    expect(out.stderr).toContain("to stderr");
    expect(out.results.map((r) => [r.text, r.isMainResult])).toEqual([
      ["[1] 1", false],
      ["[1] 2", true],
    ]);
  });

  it("reports an error with its message and no main result", async () => {
    const out = await run(exec, "stop('boom')", { contextId: ctx });
    expect(out.errors).toHaveLength(1);
    expect(out.errors[0]?.value).toContain("boom");
    expect(out.main).toBeUndefined();
  });

  it("returns a plot as a PNG", async () => {
    const out = await run(exec, "plot(1:10)", { contextId: ctx });
    const plots = out.results.filter((r) => r.png !== "");
    expect(plots).toHaveLength(1);
    expect(plots[0]?.isMainResult).toBe(false);
    expect(Buffer.from(plots[0]!.png, "base64").subarray(1, 4).toString()).toBe("PNG");
  });

  it("shows env vars to the code for one execution, then restores them", async () => {
    const tricky = `it's "quoted"\nline $HOME \`x\` \\ ')`;
    const out = await run(exec, "cat(Sys.getenv('TRICKY'))", { contextId: ctx, envVars: { TRICKY: tricky } });
    expect(out.errors).toEqual([]);
    expect(out.stdout).toBe(tricky);
    const after = await run(exec, "cat(is.na(Sys.getenv('TRICKY', unset = NA)))", { contextId: ctx });
    expect(after.stdout).toBe("TRUE");
  });

  it("runs in the requested cwd", async () => {
    const out = await run(exec, "cat(getwd())", { contextId: ctx });
    expect(out.stdout).toBe(await realpath(dir.path));
  });

  it("answers readline() with an error instead of hanging", async () => {
    const out = await run(exec, "answer <- readline('name? ')", { contextId: ctx });
    expect(out.errors[0]?.name).toBe("StdinNotImplementedError");
    expect(out.main).toBeUndefined();
    expect((await run(exec, "x", { contextId: ctx })).main?.text).toBe("[1] 20");
  });

  it("interrupts a busy loop at the client's deadline and keeps the state", async () => {
    await run(exec, "kept <- 'yes'", { contextId: ctx });
    await expect(run(exec, "while (TRUE) {}", { contextId: ctx, timeoutMs: 500 })).rejects.toThrow();
    expect((await run(exec, "kept", { contextId: ctx })).main?.text).toBe('[1] "yes"');
  });

  it("isolates contexts", async () => {
    const other = await newContext(contexts, "r", dir.path);
    expect((await run(exec, "exists('x')", { contextId: other })).main?.text).toBe("[1] FALSE");
    await contexts.destroyContext({ contextId: other }, { headers: AUTH });
  });
});
