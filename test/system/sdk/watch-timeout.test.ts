/**
 * Issue 18: a watch the SDK gives up on must end. The SDK aborts its fetch at its request timeout,
 * but once a garbage collection has run Node's fetch no longer passes that abort on to the
 * response (nodejs/node#55428), and the SDK's loop would wait for events for ever. The agent ends
 * such a stream (no deadline, no keepalive interval) at the SDK's default timeout; here that
 * default is shortened so that the test is short.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { eventually } from "../../helpers/agent.js";
import { startSdkSession, type SdkSession } from "../../helpers/sdk.js";
import { watchersOpen } from "../../helpers/filesystem.js";

const AGENT_DEFAULT_MS = 3_000;

let session: SdkSession;
beforeAll(async () => {
  session = await startSdkSession({ watchDefaultTimeoutMs: AGENT_DEFAULT_MS });
});
afterAll(async () => {
  await session?.close();
});

/** A full collection, as the test process would have run one sooner or later. */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

it("watchDir with no events ends when the SDK's timeout passes, even after a garbage collection", async () => {
  const dir = mkdtempSync(join(tmpdir(), "agent-sdk-watch-timeout-"));
  try {
    const before = await watchersOpen(session.agent);
    let outcome: "running" | "ended" | Error = "running";
    // The SDK's own timeout is longer than the agent's: its abort alone is what no longer works.
    void (async () => {
      try {
        for await (const event of session.sandbox.files.watchDir(dir, { requestTimeoutMs: AGENT_DEFAULT_MS + 500 })) void event;
        outcome = "ended";
      } catch (err) {
        outcome = err as Error;
      }
    })();
    await eventually(async () => (await watchersOpen(session.agent)) > before);
    // WeakRef targets survive the job that last touched them: collect on later turns.
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      collectGarbage();
    }
    await eventually(() => outcome !== "running", 20_000, 50);
    expect(outcome).toBeInstanceOf(Error);
    expect(String(outcome)).toMatch(/deadline_exceeded|aborted/);
    await eventually(async () => (await watchersOpen(session.agent)) === before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
