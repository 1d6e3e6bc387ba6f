/**
 * `--auth init` and `--auth none` (sandbox-settings.ts): a template agent that waits for the
 * platform's POST /init, and a local development agent with no token, which E2B's SDK reaches in
 * its debug mode. Token mode is everything else in this folder.
 */
import { Sandbox } from "e2b";
import { afterEach, describe, expect, it, vi } from "vitest";
import { startTestAgent, type TestAgent } from "../../helpers/agent.js";

vi.mock(import("../../../src/users.js"), async (real) => (await import("../../helpers/users.js")).withIsolatedRootHome(await real()));

let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  delete process.env.E2B_DEBUG;
  delete process.env.E2B_SANDBOX_URL;
});

const listProcesses = (url: string, token?: string): Promise<Response> =>
  fetch(`${url}/process.Process/List`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { "x-access-token": token }) },
    body: "{}",
  });

const init = (url: string, body: unknown, token?: string): Promise<Response> =>
  fetch(`${url}/init`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { "x-access-token": token }) },
    body: JSON.stringify(body),
  });

describe("--auth init", () => {
  it("nothing but /health and /init answers until /init sets the token; then only its holder may init again", async () => {
    agent = await startTestAgent({ auth: "init" });
    expect((await fetch(`${agent.url}/health`)).ok).toBe(true);
    const early = await listProcesses(agent.url, "any-guess");
    expect(early.status).toBe(401);
    expect(await early.text()).toMatch(/not initialised/);
    expect((await fetch(`${agent.url}/files?path=/etc/hostname`)).status).toBe(401);

    expect((await init(agent.url, { accessToken: "" })).status).toBe(400);
    const first = await init(agent.url, { accessToken: "platform-token", envVars: { STAGE: "one" } });
    expect(first.status).toBe(204);
    expect(first.headers.get("x-envd-version")).toBe("0.6.13");
    expect((await listProcesses(agent.url, "platform-token")).status).toBe(200);
    expect((await listProcesses(agent.url)).status).toBe(401);

    expect((await init(agent.url, { accessToken: "hijack" })).status).toBe(401);
    expect((await init(agent.url, { accessToken: "hijack" }, "wrong")).status).toBe(401);
    expect((await init(agent.url, { envVars: { STAGE: "two" } }, "platform-token")).status).toBe(204);
    const envs = await fetch(`${agent.url}/envs`, { headers: { "x-access-token": "platform-token" } });
    expect(await envs.json()).toEqual({ STAGE: "two" });
  });

  it("a refused /init changes nothing", async () => {
    agent = await startTestAgent({ auth: "init" });
    expect((await init(agent.url, { accessToken: "t", defaultUser: "no-such-user-xyz" })).status).toBe(400);
    expect((await init(agent.url, { accessToken: "t", envVars: { "BAD=NAME": "x" } })).status).toBe(400);
    expect((await listProcesses(agent.url, "t")).status).toBe(401);
  });
});

describe("--auth none", () => {
  it("serves without a token, until /init sets one", async () => {
    agent = await startTestAgent({ auth: "none" });
    expect((await listProcesses(agent.url)).status).toBe(200);
    expect((await init(agent.url, { accessToken: "late" })).status).toBe(204);
    expect((await listProcesses(agent.url)).status).toBe(401);
    expect((await listProcesses(agent.url, "late")).status).toBe(200);
  });

  it("is what E2B's SDK reaches in debug mode, which sends no token", async () => {
    agent = await startTestAgent({ auth: "none" });
    process.env.E2B_DEBUG = "true";
    process.env.E2B_SANDBOX_URL = agent.url;
    const sbx = await Sandbox.create();
    const result = await sbx.commands.run("echo debug $(whoami)");
    expect(result.stdout).toBe("debug root\n");
    await sbx.files.write("/tmp/e2b-debug-mode.txt", "no token");
    expect(await sbx.files.read("/tmp/e2b-debug-mode.txt")).toBe("no token");
  });
});
