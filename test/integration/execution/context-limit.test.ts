/**
 * The cap on live contexts (--max-contexts): the SDK's runCode without a context creates a new one
 * each time, so without it every call would leave a kernel running. Built-in bash contexts keep
 * the test quick; the registry treats every language alike.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextService, ExecutionService } from "../../../src/gen/sandboxagent/api_pb.js";
import { AUTH, client, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { newContext, run } from "../../helpers/execution.js";

let agent: TestAgent;
beforeAll(async () => {
  agent = await startTestAgent({ maxContexts: 2 });
});
afterAll(async () => agent?.close());

const codeOf = async (promise: Promise<unknown>): Promise<{ code: Code; message: string }> => {
  try {
    await promise;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
};

describe("context limit", () => {
  it("shuts down the least recently used idle context for a new one, and says so to its callers", async () => {
    const contexts = client(ContextService, agent.url);
    const exec = client(ExecutionService, agent.url);
    const first = await newContext(contexts, "bash");
    const second = await newContext(contexts, "bash");
    expect((await run(exec, "X=kept", { contextId: first })).errors).toEqual([]);

    const third = await newContext(contexts, "bash");
    const gone = await codeOf(run(exec, "echo hi", { contextId: second }));
    expect(gone.code).toBe(Code.NotFound);
    expect(gone.message).toContain("not found");
    expect(gone.message).toContain("--max-contexts");

    expect((await run(exec, "echo $X", { contextId: first })).stdout).toBe("kept\n");
    expect((await run(exec, "echo third", { contextId: third })).stdout).toBe("third\n");
  });

  it("refuses a new context when every one is busy, instead of killing running code", async () => {
    const contexts = client(ContextService, agent.url);
    const exec = client(ExecutionService, agent.url);
    // The first test left two contexts; keep both busy.
    const ids = [await newContext(contexts, "bash"), await newContext(contexts, "bash")];
    const abort = new AbortController();
    const streams = ids.map((id) =>
      exec
        .execute({ code: "echo started; sleep 30", contextId: id, language: "", envVars: {} }, { headers: AUTH, signal: abort.signal })
        [Symbol.asyncIterator](),
    );
    try {
      // Both executions are under way (each has printed) before the third context is asked for.
      for (const stream of streams) expect((await stream.next()).value?.event.case).toBe("stdout");
      const busy = await codeOf(contexts.createContext({ language: "bash", cwd: "" }, { headers: AUTH }));
      expect(busy.code).toBe(Code.ResourceExhausted);
      expect(busy.message).toContain("busy");
    } finally {
      abort.abort();
    }
  });
});
