/**
 * An agent that only health checks and metric scrapes reach is idle: it gives its memory back
 * (src/idle-memory.ts) although they arrive more often than the idle time.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { AUTH, startTestAgent, type TestAgent } from "../../helpers/agent.js";

let agent: TestAgent;
beforeAll(async () => {
  agent = await startTestAgent();
});
afterAll(async () => {
  await agent?.close();
});

const collections = async (): Promise<number> => {
  const text = await (await fetch(`${agent.url}/metrics`, { headers: AUTH })).text();
  return Number(/^sandbox_agent_idle_collections (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
};

it("collects while /health and /metrics are polled every second", async () => {
  const before = await collections();
  expect(before).not.toBeNaN();
  // Eight seconds of polling, one second apart: longer than the idle time (5 s), never 5 s quiet.
  for (let i = 0; i < 8; i++) {
    expect((await fetch(`${agent.url}/health`)).ok).toBe(true);
    await collections();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  expect(await collections()).toBeGreaterThan(before);
}, 30_000);
