/**
 * `npm run fuzz -- --seconds N`: a fuzz campaign against a live agent. Workers send generated
 * hostile requests (every family of stress/arbitraries) for N seconds while a watchdog checks that
 * the agent stays alive, keeps answering /health and does not grow without bound. It fails on the
 * first of: a crash, a 5xx or server-only Connect code for a client's error, a request left
 * unanswered, /health unanswered, or memory that keeps growing.
 *
 * By default it starts the built agent itself on a scratch directory; `--url U --token T --scratch D`
 * aims it at a running one instead (memory then comes from the agent's /metrics).
 */
import fc from "fast-check";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { startAgentProcess, type AgentProcess } from "../bench/lib.js";
import type { FuzzContext } from "./arbitraries/context.js";
import { connectRequests } from "./arbitraries/connect.js";
import { httpRequests, prepareHttpScratch } from "./arbitraries/http.js";
import { prepareRpcScratch } from "./arbitraries/rpc-rules.js";
import { agentMetrics, countFds, rssOf } from "./probe.js";
import { describeOutcome, describeSpec, faultOf, send, type Outcome, type RequestSpec } from "./request.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    concurrency: { type: "string", default: "4" },
    seed: { type: "string" },
    url: { type: "string" },
    token: { type: "string" },
    scratch: { type: "string" },
  },
});

const seconds = Number(args.seconds);
const concurrency = Number(args.concurrency);
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
if (!(seconds > 0) || !(concurrency > 0) || !Number.isInteger(seed)) {
  console.error("usage: npm run fuzz -- --seconds N [--concurrency C] [--seed S] [--url U --token T --scratch DIR]");
  process.exit(2);
}

/** Per-request limit: long enough for a slow shared machine, short enough to call a hang a hang. */
const REQUEST_TIMEOUT_MS = 15_000;
/** Memory may rise while caches and pools warm up; beyond this over the warm figure it is growth. */
const RSS_SLACK_BYTES = 96 * 1024 * 1024;

interface Target {
  readonly url: string;
  readonly token: string;
  readonly scratch: string;
  readonly agent?: AgentProcess;
  readonly rss: () => Promise<number>;
  readonly fds: () => Promise<number>;
}

async function openTarget(): Promise<Target> {
  if (args.url !== undefined) {
    if (args.token === undefined || args.scratch === undefined) throw new Error("--url needs --token and --scratch");
    const { url, token, scratch } = { url: args.url, token: args.token, scratch: args.scratch };
    return { url, token, scratch, rss: async () => (await agentMetrics(url, token)).rssBytes, fds: async () => (await agentMetrics(url, token)).fds };
  }
  const token = randomBytes(16).toString("hex");
  const scratch = await mkdtemp(join(tmpdir(), "agent-fuzz-"));
  const agent = await startAgentProcess(token, ["--kernel-pool-size", "0"]);
  return { url: agent.url, token, scratch, agent, rss: () => rssOf(agent.pid), fds: () => countFds(agent.pid) };
}

interface Finding {
  readonly reason: string;
  readonly spec?: RequestSpec;
  readonly outcome?: Outcome;
}

async function main(): Promise<number> {
  const target = await openTarget();
  // The fixtures the generators refer to by name: RPC paths, and the file Range requests read.
  await prepareRpcScratch(target.scratch);
  await prepareHttpScratch(target.scratch);
  const ctx: FuzzContext = { token: target.token, scratch: target.scratch };
  const requests = fc.oneof(httpRequests(ctx), connectRequests(ctx));
  const deadline = Date.now() + seconds * 1000;
  const findings: Finding[] = [];
  const byFamily = new Map<string, number>();
  let sent = 0;
  let crashed = false;
  target.agent?.child.once("exit", (code, signal) => {
    crashed = true;
    findings.push({ reason: `agent exited (code ${code}, signal ${signal})` });
  });
  const running = (): boolean => Date.now() < deadline && !crashed && findings.length === 0;

  const startFds = await target.fds();
  const rssSamples: number[] = [];
  const watchdog = (async () => {
    while (running()) {
      const health = await send(target.url, { family: "health", transport: "http1", method: "GET", target: "/health", headers: [] }, { timeoutMs: 5_000 });
      if (health.status !== 200 && running()) findings.push({ reason: `/health answered ${health.timedOut ? "nothing within 5 s" : health.status}` });
      rssSamples.push(await target.rss());
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  })();

  const worker = async (index: number): Promise<void> => {
    for (let batch = 0; running(); batch++) {
      const specs = fc.sample(requests, { seed: seed + index * 1_000_003 + batch, numRuns: 50 });
      for (const spec of specs) {
        if (!running()) return;
        const outcome = await send(target.url, spec, { timeoutMs: REQUEST_TIMEOUT_MS });
        sent++;
        byFamily.set(spec.family, (byFamily.get(spec.family) ?? 0) + 1);
        const fault = faultOf(spec, outcome);
        if (fault !== undefined) findings.push({ reason: fault, spec, outcome });
      }
    }
  };
  const progress = setInterval(() => console.error(`fuzz: ${sent} requests so far, rss ${mb(rssSamples.at(-1) ?? 0)} MB`), 10_000);
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  clearInterval(progress);
  await watchdog;

  // Growth: the last samples against the highest of the first quarter (after warm-up).
  const warm = Math.max(...rssSamples.slice(0, Math.max(1, Math.ceil(rssSamples.length / 4))));
  const endRss = crashed ? Number.NaN : await settledRss(target);
  if (!crashed && endRss > warm + RSS_SLACK_BYTES) {
    findings.push({ reason: `RSS grew from ${mb(warm)} MB to ${mb(endRss)} MB (more than ${mb(RSS_SLACK_BYTES)} MB)` });
  }
  const endFds = crashed ? Number.NaN : await target.fds();

  for (const finding of findings.slice(0, 10)) {
    console.error(`FAULT: ${finding.reason}`);
    if (finding.spec) console.error(`  request: ${describeSpec(finding.spec)}`);
    if (finding.outcome) console.error(`  answer: ${describeOutcome(finding.outcome)}`);
  }
  const families = [...byFamily.entries()].sort().map(([f, n]) => `${f} ${n}`).join(", ");
  console.error(`fuzz: by family: ${families}`);
  console.log(
    `fuzz: ${sent} requests in ${seconds} s (seed ${seed}), ${findings.length} faults, rss ${mb(warm)} MB -> ${mb(endRss)} MB, fds ${startFds} -> ${endFds}, agent ${crashed ? "CRASHED" : "alive"}`,
  );
  await target.agent?.stop();
  if (target.agent) await rm(target.scratch, { recursive: true, force: true });
  return findings.length === 0 ? 0 : 1;
}

/** RSS once the last requests have been let go: lowest of a few samples a second apart. */
async function settledRss(target: Target): Promise<number> {
  let lowest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    lowest = Math.min(lowest, await target.rss());
  }
  return lowest;
}

const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);

process.exitCode = await main();
