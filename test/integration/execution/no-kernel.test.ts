/**
 * Issue 18, a newcomer's first minute: an agent on a machine without a Python kernel says so once,
 * naming the command that installs it, and an execution in Python fails with a clear error. The
 * missing kernel is made by a languages file that maps Python to a kernelspec nobody has.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ExecutionService } from "../../../src/gen/sandboxagent/api_pb.js";
import { INSTALL_KERNEL_COMMAND } from "../../../src/kernels/pool.js";
import { AUTH, client, eventually, startTestAgent, type TestAgent } from "../../helpers/agent.js";

let agent: TestAgent;
let logs = "";
const dir = mkdtempSync(join(tmpdir(), "agent-no-kernel-"));

beforeAll(async () => {
  const languagesFile = join(dir, "languages.json");
  writeFileSync(languagesFile, JSON.stringify({ python: { kernelspecs: ["no-such-kernelspec"], kernelLanguages: ["no-such-language"] } }));
  const logStream = new PassThrough();
  logStream.on("data", (chunk: Buffer) => (logs += chunk.toString()));
  agent = await startTestAgent({ logLevel: "info", logStream, languagesFile, kernelPoolSize: 1 });
});
afterAll(async () => {
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

it("logs one line naming the install command, and a Python execution fails clearly", async () => {
  await eventually(() => logs.includes(INSTALL_KERNEL_COMMAND));
  const executions = client(ExecutionService, agent.url);
  const stream = executions.execute({ code: "1+1", language: "python", contextId: "", envVars: {} }, { headers: AUTH });
  await expect(
    (async () => {
      for await (const message of stream) void message;
    })(),
  ).rejects.toThrow(/no-such-kernelspec|none is installed/);
  // Time for retries, had there been any.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const lines = logs.split("\n").filter((line) => /kernel/.test(line) && /pool|installed/.test(line) && !/"route"/.test(line));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`\`${INSTALL_KERNEL_COMMAND}\``);
});
