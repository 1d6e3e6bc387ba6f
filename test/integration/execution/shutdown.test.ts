/**
 * An agent that closes while kernels are still starting stops them too: an agent with the E2B
 * interpreter port starts its default contexts (Python and JavaScript) at once, and is closed
 * here right away. Found as one orphaned tslab kernel per test run (the production-layout test
 * stops such an agent with SIGTERM): close() waited only for kernels already being spawned, not
 * for a context still looking up its language, whose kernel was spawned as the agent exited.
 * The race is narrow here; this guards what must hold, the fix is in ContextRegistry.dispose.
 */
import net from "node:net";
import { describe, expect, it } from "vitest";
import { descendantsOf } from "../../../harness/probe.js";
import { startTestAgent } from "../../helpers/agent.js";

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Longer than a JavaScript kernel takes to start here, so a leaked one would have shown. */
const KERNEL_START_MS = 5_000;

describe("closing the agent", () => {
  it("while its default contexts are starting leaves no kernel behind", async () => {
    const before = await descendantsOf(process.pid);
    const agent = await startTestAgent({ interpreterPort: await freePort(), kernelPoolSize: 0 });
    await agent.close();
    await new Promise((resolve) => setTimeout(resolve, KERNEL_START_MS));
    expect(await descendantsOf(process.pid)).toEqual(before);
  });
});
