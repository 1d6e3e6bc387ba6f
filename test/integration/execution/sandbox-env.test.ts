/**
 * The sandbox's variables, set by POST /init after the agent started, reach code in every kernel:
 * one the warm pool started before them, and ones started after; an execution's own variables
 * still win, and leave nothing behind.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { AUTH } from "../../helpers/agent.js";
import { newContext, run, startExecutionHarness, type ExecutionHarness } from "../../helpers/execution.js";

let h: ExecutionHarness;
beforeAll(async () => {
  h = await startExecutionHarness("agent-sandbox-env-", { kernelPoolSize: 1 });
  // Let the pool's kernel start before /init, as in a template that is initialised later.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const res = await fetch(`${h.agent.url}/init`, {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify({ envVars: { SANDBOX_LEVEL: "from-init", SHADOWED: "init" } }),
  });
  expect(res.status).toBe(204);
}, 120_000);
afterAll(async () => {
  await h?.close();
});

it.each(["python", "bash"])("%s sees the sandbox's variables, under an execution's own", async (language) => {
  const ctx = await newContext(h.contexts, language);
  const code = language === "python" ? 'import os\nprint(os.environ["SANDBOX_LEVEL"], os.environ["SHADOWED"])' : 'echo "$SANDBOX_LEVEL $SHADOWED"';
  expect((await run(h.exec, code, { contextId: ctx })).stdout).toBe("from-init init\n");
  expect((await run(h.exec, code, { contextId: ctx, envVars: { SHADOWED: "mine" } })).stdout).toBe("from-init mine\n");
  expect((await run(h.exec, code, { contextId: ctx })).stdout).toBe("from-init init\n");
});
