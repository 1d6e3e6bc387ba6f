/**
 * The agent under soak: started here (the built agent as its own process, kernel pool of one, on
 * a random port with a generated token and a scratch directory), or one already running that
 * `--url`/`--token` point at. Resources come from /proc for an agent started here and from its
 * /metrics otherwise; either way they are the agent process's own, not its children's.
 */
import { randomBytes } from "node:crypto";
import { startAgentProcess } from "../../bench/lib.js";
import { Filesystem } from "../../src/gen/sandboxagent/api_pb.js";
import { countFds, fdTargets, rssOf } from "../../harness/probe.js";
import { Connections } from "./connections.js";
import { scrapeMetrics } from "./metrics.js";
import { localScratch, remoteScratchPath } from "./scratch.js";

export interface AgentResources {
  readonly rssBytes: number;
  readonly fds: number;
}

export interface Target {
  readonly url: string;
  readonly token: string;
  readonly scratch: string;
  readonly resources: () => Promise<AgentResources>;
  /** What each descriptor points at, where /proc can tell (an agent started here), for reports. */
  readonly fdTargets?: () => Promise<string[]>;
  /** Set once an agent started here has exited; cheap, for checks during the run. */
  readonly exitReason: () => string | undefined;
  /** Why the agent is no longer there (it exited, or /health fails), or undefined while it is. */
  readonly deathReason: () => Promise<string | undefined>;
  /** Removes the scratch directory and stops the agent if it was started here. */
  readonly close: () => Promise<void>;
}

export async function startLocalTarget(): Promise<Target> {
  const token = randomBytes(24).toString("base64url");
  const scratch = await localScratch();
  const agent = await startAgentProcess(token, ["--kernel-pool-size", "1"]);
  let exit: string | undefined;
  agent.child.once("exit", (code, signal) => {
    exit = `the agent exited (code ${code}, signal ${signal})`;
  });
  return {
    url: agent.url,
    token,
    scratch: scratch.path,
    resources: async () => {
      const [rssBytes, fds] = await Promise.all([rssOf(agent.pid), countFds(agent.pid)]);
      return { rssBytes, fds };
    },
    fdTargets: () => fdTargets(agent.pid),
    exitReason: () => exit,
    deathReason: async () => exit ?? (await healthFailure(agent.url)),
    close: async () => {
      await agent.stop();
      await scratch.remove();
    },
  };
}

export async function attachRemoteTarget(url: string, token: string): Promise<Target> {
  const scratch = remoteScratchPath();
  const fs = new Connections(url, token, () => undefined);
  try {
    await fs.client(Filesystem).makeDir({ path: scratch });
  } finally {
    fs.close();
  }
  return {
    url,
    token,
    scratch,
    resources: async () => {
      const { rssBytes, fds } = await scrapeMetrics(url, token);
      return { rssBytes, fds };
    },
    exitReason: () => undefined,
    deathReason: () => healthFailure(url),
    close: async () => {
      const conn = new Connections(url, token, () => undefined);
      try {
        await conn.client(Filesystem).remove({ path: scratch });
      } finally {
        conn.close();
      }
    },
  };
}

async function healthFailure(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(new URL("/health", url), { signal: AbortSignal.timeout(10_000) });
    return res.ok ? undefined : `/health answered ${res.status}`;
  } catch (err) {
    return `/health failed: ${String(err)}`;
  }
}
