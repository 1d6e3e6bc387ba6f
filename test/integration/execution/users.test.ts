/**
 * Kernels run as the calling Linux user, and a context belongs to the user who created it. Needs a
 * privileged agent (as the tests run here and in CI); `nobody` exists on every Debian system.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextService, ExecutionService, type ExecuteResponse } from "../../../src/gen/sandboxagent/api_pb.js";
import { lookupUser } from "../../../src/users.js";
import { AUTH, client, startTestAgent, type TestAgent } from "../../helpers/agent.js";
import { run } from "../../helpers/execution.js";

const other = lookupUser("nobody");
const canSwitch = process.getuid?.() === 0 && other !== undefined;

let agent: TestAgent;
beforeAll(async () => {
  agent = await startTestAgent();
});
afterAll(async () => {
  await agent?.close();
});

describe.runIf(canSwitch)("kernels as the calling user", () => {
  const asOther = { ...AUTH, authorization: `Bearer ${other?.name}` };

  it("runs the kernel as the caller, with the caller's environment", async () => {
    const exec = client(ExecutionService, agent.url);
    const contexts = client(ContextService, agent.url);
    const context = await contexts.createContext({ language: "python", cwd: "/tmp" }, { headers: asOther });
    const frames: ExecuteResponse[] = [];
    for await (const frame of exec.execute(
      {
        contextId: context.id,
        code: "import os, pwd\n(os.getuid(), os.getcwd(), os.environ['HOME'], pwd.getpwuid(os.getuid()).pw_name)",
        language: "",
        envVars: {},
      },
      { headers: asOther },
    )) {
      frames.push(frame);
    }
    const main = frames.map((f) => f.event).find((e) => e.case === "result" && e.value.isMainResult);
    expect(main?.case === "result" ? main.value.text : undefined).toBe(`(${other!.uid}, '/tmp', '${other!.home}', '${other!.name}')`);

    // Someone else's context is not usable by another (non-root) user; root may use it.
    const rootContext = await contexts.createContext({ language: "python", cwd: "/tmp" }, { headers: AUTH });
    const err = await (async () => {
      for await (const _ of exec.execute({ contextId: rootContext.id, code: "1", language: "", envVars: {} }, { headers: asOther })) {
        // drain
      }
    })().catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.PermissionDenied);
    const byRoot = await run(exec, "import os\nos.getuid()", { contextId: context.id });
    expect(byRoot.main?.text).toBe(String(other!.uid));
  });
});
