import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestAgent, type TestAgent } from "../helpers/agent.js";
import { sdkEnvironment, startControlPlane, type ControlPlane } from "../helpers/sdk.js";

let agent: TestAgent;
let cp: ControlPlane;
beforeAll(async () => {
  agent = await startTestAgent();
  cp = await startControlPlane(agent);
  sdkEnvironment(cp);
});
afterAll(async () => {
  await cp?.close();
  await agent?.close();
});

describe("sdk smoke", () => {
  it("stat through the SDK", async () => {
    const { Sandbox } = await import("@scalebox/sdk");
    const sbx = await Sandbox.create("base");
    const info = await sbx.files.stat("/tmp");
    expect(info.type).toBe("directory");
    expect(await sbx.files.exists("/definitely-missing")).toBe(false);
  });
});
