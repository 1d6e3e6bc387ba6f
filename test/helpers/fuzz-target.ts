/**
 * One agent for a Connect fuzz file: started without warm kernels and with at most two execution
 * contexts, a scratch directory with the fixtures the generators name, a property runner that
 * sends each generated request and fails on the first server-fault answer, and the end-of-file
 * check that the agent still answers and holds no process it should have let go.
 */
import fc from "fast-check";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { descendantsOf, zombiesOf } from "../../harness/probe.js";
import type { FuzzContext } from "../../harness/arbitraries/context.js";
import { connectFamily, type ConnectFamily } from "../../harness/arbitraries/connect.js";
import { prepareRpcScratch } from "../../harness/arbitraries/rpc-rules.js";
import { describeOutcome, describeSpec, faultOf, send, type RequestSpec } from "../../harness/request.js";
import { eventually, startTestAgent, tempDir, type TestAgent } from "./agent.js";

/** Contexts the agent may keep: the bash ones generated requests start stay until evicted. */
export const MAX_CONTEXTS = 2;
const REQUEST_TIMEOUT_MS = 10_000;

export interface FuzzTarget {
  readonly agent: TestAgent;
  readonly ctx: FuzzContext;
  /** Sends every request the arbitrary generates (numRuns of them); throws on the first fault. */
  readonly check: (requests: fc.Arbitrary<RequestSpec>, numRuns: number) => Promise<void>;
  /**
   * /health answers; every watcher and process a request opened is let go (streams at their
   * deadlines, polled watchers when idle), no process outlives its request and no child is left
   * unreaped.
   */
  readonly expectClean: () => Promise<void>;
  /** Closes the agent and checks that it let go of every watcher, child and listening socket. */
  readonly closeAndExpectReleased: () => Promise<void>;
  /** Closes the agent (once) and removes the scratch directory. */
  readonly close: () => Promise<void>;
}

/** Handles an agent holds for watchers, children and its port: none may outlive close(). */
const RELEASED_ON_CLOSE = ["FSEventWrap", "ProcessWrap", "TCPServerWrap"];

function handleCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) if (RELEASED_ON_CLOSE.includes(name)) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

export async function startFuzzTarget(): Promise<FuzzTarget> {
  const scratch = await tempDir("agent-fuzz-");
  await prepareRpcScratch(scratch.path);
  const handlesBefore = handleCounts();
  const agent = await startTestAgent({ kernelPoolSize: 0, maxContexts: MAX_CONTEXTS, watcherIdleMs: 1_000 });
  const ctx: FuzzContext = { token: agent.token, scratch: scratch.path };
  const before = new Set(await descendantsOf(process.pid));
  const zombiesBefore = new Set(await zombiesOf(process.pid));

  const check = async (requests: fc.Arbitrary<RequestSpec>, numRuns: number): Promise<void> => {
    // A delay past 2^31 - 1 ms silently becomes 1 ms: a deadline or time limit cut to nothing.
    const overflows: string[] = [];
    const onWarning = (warning: Error): void => {
      if (warning.name === "TimeoutOverflowWarning") overflows.push(warning.message);
    };
    process.on("warning", onWarning);
    try {
      await runProperty(requests, numRuns);
    } finally {
      process.off("warning", onWarning);
    }
    expect(overflows, "timers the agent asked for and did not get").toEqual([]);
  };

  const runProperty = async (requests: fc.Arbitrary<RequestSpec>, numRuns: number): Promise<void> => {
    await fc.assert(
      fc.asyncProperty(requests, async (spec) => {
        const outcome = await send(agent.url, spec, { timeoutMs: REQUEST_TIMEOUT_MS });
        const fault = faultOf(spec, outcome);
        if (fault !== undefined) throw new Error(`${fault}\n  request: ${describeSpec(spec)}\n  answer: ${describeOutcome(outcome)}`);
      }),
      { numRuns, endOnFailure: true },
    );
  };

  const expectClean = async (): Promise<void> => {
    const health = await fetch(`${agent.url}/health`);
    expect(health.status).toBe(200);
    const gauges = async (): Promise<Record<string, number>> => {
      const text = await (await fetch(`${agent.url}/metrics`, { headers: { "x-access-token": agent.token } })).text();
      const value = (name: string) => Number(new RegExp(`^sandbox_agent_${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
      return { watchers: value("watchers"), processes: value("processes") };
    };
    await eventually(async () => {
      const { watchers, processes } = await gauges();
      return watchers === 0 && processes === 0;
    }, 15_000).catch(async () => {
      throw new Error(`still held after the requests ended: ${JSON.stringify(await gauges())}`);
    });
    const leftovers = async () => {
      const now = (await descendantsOf(process.pid)).filter((pid) => !before.has(pid));
      const drivers = await filterAsync(now, isBashDriver);
      const driven = new Set((await Promise.all(drivers.map((pid) => descendantsOf(pid)))).flat());
      return { drivers, others: now.filter((pid) => !drivers.includes(pid) && !driven.has(pid)) };
    };
    // Processes end at their deadlines (at most SHORT_DEADLINE_MS) and are reaped soon after.
    await eventually(async () => (await leftovers()).others.length === 0, 15_000).catch(async () => {
      const { others } = await leftovers();
      throw new Error(`processes left behind: ${(await Promise.all(others.map(commandLine))).join("; ")}`);
    });
    expect((await leftovers()).drivers.length).toBeLessThanOrEqual(MAX_CONTEXTS);
    await eventually(async () => (await zombiesOf(process.pid)).every((pid) => zombiesBefore.has(pid)), 15_000);
  };

  let closed: Promise<void> | undefined;
  const closeAgent = (): Promise<void> => (closed ??= agent.close());
  const closeAndExpectReleased = async (): Promise<void> => {
    await closeAgent();
    const left = () => RELEASED_ON_CLOSE.filter((name) => (handleCounts()[name] ?? 0) > (handlesBefore[name] ?? 0));
    await eventually(() => left().length === 0, 10_000).catch(() => {
      throw new Error(`handles left after close: ${JSON.stringify(handleCounts())} (before the agent: ${JSON.stringify(handlesBefore)})`);
    });
  };

  return {
    agent,
    ctx,
    check,
    expectClean,
    closeAndExpectReleased,
    close: async () => {
      await closeAgent();
      await scratch.cleanup();
    },
  };
}

/** Requests of one family each property file sends, enough to reach every RPC in every shape. */
const RUNS_PER_FAMILY = 300;

/**
 * The whole property suite of one Connect family, in a file of its own so that vitest runs the
 * families side by side: every generated request is answered without a server fault, and the
 * agent is then healthy, holds nothing the requests opened, and lets go of every handle on close.
 */
export function describeConnectFamilyProperty(title: string, family: ConnectFamily): void {
  let target: FuzzTarget | undefined;
  beforeAll(async () => {
    target = await startFuzzTarget();
  });
  afterAll(async () => {
    await target?.close();
  });

  describe(`${title}, every RPC (property)`, () => {
    it("are answered without a server fault, and leave the agent healthy with nothing running", async () => {
      if (target === undefined) throw new Error("the fuzz target did not start");
      await target.check(connectFamily(target.ctx, family), RUNS_PER_FAMILY);
      await target.expectClean();
      await target.closeAndExpectReleased();
    }, 180_000);
  });
}

/** An execution context's shell (src/kernels/drivers/bash.ts): held on purpose until evicted. */
async function isBashDriver(pid: number): Promise<boolean> {
  const args = (await commandLine(pid)).split(" ");
  return /(^|\/)bash$/.test(args[0] ?? "") && args.includes("--noprofile") && args.includes("--norc");
}

async function commandLine(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "(gone)")).split("\0").filter(Boolean).join(" ");
}

async function filterAsync<T>(items: readonly T[], keep: (item: T) => Promise<boolean>): Promise<T[]> {
  const flags = await Promise.all(items.map(keep));
  return items.filter((_, i) => flags[i]);
}
