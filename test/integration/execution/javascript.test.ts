/**
 * JavaScript (tslab's `jslab` kernel) and TypeScript (Deno's kernel), when installed
 * (scripts/install.sh installs both). Each block runs only if its kernelspec is found by the same
 * discovery the agent uses; nothing else is skipped.
 */
import { realpath } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findKernelSpecs } from "../../../src/kernels/jupyter/kernelspecs.js";
import { type ExecutionHarness, newContext, run, startExecutionHarness } from "../../helpers/execution.js";

const installed = await findKernelSpecs();
const TRICKY = `it's "quoted"\nline $HOME \`x\` \\ ');`;

let harness: ExecutionHarness;
let exec: ExecutionHarness["exec"];
let contexts: ExecutionHarness["contexts"];
let dir: ExecutionHarness["dir"];

beforeAll(async () => {
  harness = await startExecutionHarness("exec-js-");
  ({ exec, contexts, dir } = harness);
});
afterAll(async () => harness?.close());

describe.runIf(installed.has("jslab"))("nodejs (tslab jslab kernel)", () => {
  let ctx: string;
  beforeAll(async () => {
    ctx = await newContext(contexts, "nodejs", dir.path);
  });

  it("keeps state; tslab prints a trailing value on stdout, and the execution succeeds", async () => {
    await run(exec, "let base = 41;", { contextId: ctx });
    const out = await run(exec, "base + 1", { contextId: ctx });
    expect(out.errors).toEqual([]);
    expect(out.stdout).toBe("42\n");
    expect(out.main?.isMainResult).toBe(true);
  });

  it("keeps stdout and stderr apart", async () => {
    const out = await run(exec, "console.log('to out'); console.error('to err');", { contextId: ctx });
    expect(out.stdout).toBe("to out\n");
    expect(out.stderr).toBe("to err\n");
  });

  it("reports a thrown error by class and message, and runs the next cell", async () => {
    const out = await run(exec, "throw new TypeError('bad input');", { contextId: ctx });
    expect(out.errors.at(-1)?.name).toBe("TypeError");
    expect(out.errors.at(-1)?.value).toBe("bad input");
    expect(out.main).toBeUndefined();
    // tslab refuses requests for a moment after a failure; the agent asks again.
    const next = await run(exec, "console.log(base)", { contextId: ctx, language: "javascript" });
    expect(next.stdout).toBe("41\n");
  });

  it("shows env vars for one execution, then removes them", async () => {
    const out = await run(exec, "console.log(process.env.TRICKY)", { contextId: ctx, envVars: { TRICKY: TRICKY } });
    expect(out.errors).toEqual([]);
    expect(out.stdout).toBe(`${TRICKY}\n`);
    expect((await run(exec, "console.log(process.env.TRICKY === undefined)", { contextId: ctx })).stdout).toBe("true\n");
  });

  it("runs in the requested cwd", async () => {
    const out = await run(exec, "console.log(process.cwd())", { contextId: ctx });
    expect(out.stdout).toBe(`${await realpath(dir.path)}\n`);
  });

  it("interrupts a busy loop at the client's deadline and keeps the state", async () => {
    await expect(run(exec, "while (true) {}", { contextId: ctx, timeoutMs: 1000 })).rejects.toThrow();
    expect((await run(exec, "console.log(base)", { contextId: ctx })).stdout).toBe("41\n");
  });
});

describe.runIf(installed.has("deno"))("typescript (Deno kernel)", () => {
  let ctx: string;
  beforeAll(async () => {
    ctx = await newContext(contexts, "typescript", dir.path);
  });

  it("keeps state and gives the trailing value as the main result", async () => {
    await run(exec, "const base: number = 41;", { contextId: ctx });
    const out = await run(exec, "base + 1", { contextId: ctx });
    expect(out.errors).toEqual([]);
    expect(out.main?.text).toBe("42");
  });

  it("reports a thrown error by class and message", async () => {
    const out = await run(exec, "throw new RangeError('too far');", { contextId: ctx });
    expect(out.errors.at(-1)?.name).toBe("RangeError");
    expect(out.errors.at(-1)?.value).toBe("too far");
  });

  it("keeps stdout and stderr apart", async () => {
    const out = await run(exec, "console.log('to out'); console.error('to err');", { contextId: ctx });
    expect(out.stdout).toBe("to out\n");
    expect(out.stderr).toBe("to err\n");
  });

  it("shows env vars for one execution, then removes them", async () => {
    const out = await run(exec, "console.log(Deno.env.get('TRICKY'))", { contextId: ctx, envVars: { TRICKY: TRICKY } });
    expect(out.errors).toEqual([]);
    expect(out.stdout).toBe(`${TRICKY}\n`);
    expect((await run(exec, "Deno.env.get('TRICKY') === undefined", { contextId: ctx })).main?.text).toBe("true");
  });

  it("runs in the requested cwd, also under the name deno", async () => {
    expect((await run(exec, "Deno.cwd()", { contextId: ctx })).main?.text).toBe(`"${await realpath(dir.path)}"`);
    const other = await newContext(contexts, "deno", dir.path);
    expect((await run(exec, "1 + 1", { contextId: other })).main?.text).toBe("2");
  });

  it("stops a runaway cell (Deno exits on SIGINT) and works again at the next execution", async () => {
    await expect(run(exec, "while (true) {}", { contextId: ctx, timeoutMs: 1000 })).rejects.toThrow();
    const next = await run(exec, "typeof base", { contextId: ctx });
    expect(next.errors).toEqual([]);
    expect(next.main?.text).toBe('"undefined"');
    expect(next.stderr).toContain("earlier state is lost");
  });
});
