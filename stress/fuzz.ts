/**
 * `npm run fuzz -- --seconds N`: a fuzz campaign against a live agent. Workers send generated
 * hostile requests (every family of harness/arbitraries) for N seconds while a watchdog checks that
 * the agent stays alive, keeps answering /health and does not grow without bound. It fails on the
 * first of: a crash, a 5xx or server-only Connect code for a client's error, a request left
 * unanswered, /health unanswered; and at the end on processes or watchers still held, connections
 * the clients closed still held (CLOSE_WAIT), or memory that grew: the live heap and RSS after a
 * full collection at the end, against the same a quarter into the run. Run as root, it also keeps
 * an unprivileged user racing the agent's writes with planted symlinks (symlink-arena.ts), and
 * fails when any write reaches the root-only tree those links point into.
 *
 * By default it starts the built agent itself on a scratch directory; `--url U --token T --scratch D`
 * aims it at a running one instead, where memory and connections are only reported.
 */
import fc from "fast-check";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import type { AgentProcess } from "../bench/lib.js";
import { EXITED_RETENTION_MS } from "../src/services/process/limits.js";
import type { FuzzContext } from "../harness/arbitraries/context.js";
import { connectRequests } from "../harness/arbitraries/connect.js";
import { httpRequests, prepareHttpScratch } from "../harness/arbitraries/http.js";
import { floodRequests } from "../harness/arbitraries/http-flood.js";
import { swapRequests } from "../harness/arbitraries/http-swap.js";
import { prepareRpcScratch } from "../harness/arbitraries/rpc-rules.js";
import { liveHeap, startAgentWithHeapSnapshots } from "./leak/live-heap.js";
import { scrape } from "./leak/snapshot.js";
import { agentMetrics, countFds, metricValue, rssOf, TCP_CLOSE_WAIT, tcpStates } from "../harness/probe.js";
import { describeOutcome, describeSpec, faultOf, send, type Outcome, type RequestSpec } from "../harness/request.js";
import { startSymlinkArena, type SymlinkArena } from "./symlink-arena.js";

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
/**
 * Growth allowed between the collection a quarter into the run and the one at the end: live heap
 * (what survives a full collection; caches and generated code still grow a little) and RSS after
 * that collection (the allocator keeps some of what was freed).
 */
const LIVE_HEAP_SLACK_BYTES = 16 * 1024 * 1024;
const RSS_SLACK_BYTES = 96 * 1024 * 1024;
/**
 * How often the scratch tree is emptied and its fixtures made again. Moves and MakeDir grow it
 * without bound (12,000 directories, 1,300 deep, after 13 minutes), and a recursive watch or
 * listing of it without a deadline takes longer as it grows: a long campaign would end up judging
 * the size of its own tree instead of the agent.
 */
const SCRATCH_RESET_MS = 60_000;
/** A rise within one second worth naming the requests in flight. */
const RSS_JUMP_BYTES = 128 * 1024 * 1024;
/**
 * The agent this campaign starts lets go of an unpolled watcher after 1 s and keeps at most two
 * execution contexts, so that what it holds at the end shows what requests left behind.
 */
const OWN_AGENT_ARGS = ["--kernel-pool-size", "0", "--watcher-idle-ms", "1000", "--max-contexts", "2"];
/** After the last request: streams end at their deadlines, idle watchers expire, children are reaped. */
const RELEASE_MS = 30_000;

/** Memory right after a full garbage collection. */
interface Collected {
  readonly liveBytes: number;
  readonly rssBytes: number;
}

interface Target {
  readonly url: string;
  readonly token: string;
  readonly scratch: string;
  readonly agent?: AgentProcess;
  readonly rss: () => Promise<number>;
  readonly fds: () => Promise<number>;
  /**
   * An agent this campaign started: memory after a full collection (RSS and heap-used alone hold
   * garbage an idle agent may keep for minutes), and the TCP states of its connections.
   */
  readonly own?: { readonly collected: () => Promise<Collected>; readonly tcpStates: () => Promise<string[]>; readonly diagDir: string };
}

async function openTarget(): Promise<Target> {
  if (args.url !== undefined) {
    if (args.token === undefined || args.scratch === undefined) throw new Error("--url needs --token and --scratch");
    const { url, token, scratch } = { url: args.url, token: args.token, scratch: args.scratch };
    return { url, token, scratch, rss: async () => (await agentMetrics(url, token)).rssBytes, fds: async () => (await agentMetrics(url, token)).fds };
  }
  const token = randomBytes(16).toString("hex");
  const scratch = await mkdtemp(join(tmpdir(), "agent-fuzz-"));
  const diagDir = await mkdtemp(join(tmpdir(), "agent-fuzz-diag-"));
  const agent = await startAgentWithHeapSnapshots(token, diagDir, OWN_AGENT_ARGS);
  const collected = async (): Promise<Collected> => {
    const heap = await liveHeap(agent.pid, diagDir, async () => metricValue(await scrape(agent.url, token), "sandbox_agent_nodejs_heap_size_used_bytes"));
    return { liveBytes: heap.liveBytes, rssBytes: await rssOf(agent.pid) };
  };
  const port = Number(new URL(agent.url).port);
  return {
    url: agent.url,
    token,
    scratch,
    agent,
    rss: () => rssOf(agent.pid),
    fds: () => countFds(agent.pid),
    own: { collected, tcpStates: () => tcpStates(port), diagDir },
  };
}

interface Finding {
  readonly reason: string;
  readonly spec?: RequestSpec;
  readonly outcome?: Outcome;
}

async function main(): Promise<number> {
  const target = await openTarget();
  await prepareScratch(target.scratch);
  // Only beside an agent of our own: the attacker must share its machine.
  const arena: SymlinkArena | undefined = target.agent === undefined ? undefined : await startSymlinkArena(target.scratch);
  if (target.agent !== undefined && arena === undefined) console.error("fuzz: no symlink arena (needs root and the user nobody)");
  const ctx: FuzzContext = { token: target.token, scratch: target.scratch, ...(arena ? { arena: { dir: arena.dir, user: arena.user } } : {}) };
  const generators = [
    { arbitrary: httpRequests(ctx), weight: 4 },
    { arbitrary: connectRequests(ctx), weight: 4 },
    { arbitrary: floodRequests(ctx), weight: 1 },
    ...(arena ? [{ arbitrary: swapRequests(ctx), weight: 1 }] : []),
  ];
  const requests = fc.oneof(...generators);
  const started = Date.now();
  const deadline = started + seconds * 1000;
  const findings: Finding[] = [];
  const byFamily = new Map<string, number>();
  let sent = 0;
  let crashed = false;
  const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
    crashed = true;
    findings.push({ reason: `agent exited (code ${code}, signal ${signal})` });
  };
  target.agent?.child.once("exit", onExit);
  const running = (): boolean => Date.now() < deadline && !crashed && findings.length === 0;

  const startFds = await target.fds();
  const rssSamples: number[] = [];
  const inFlight = new Set<RequestSpec>();
  // Memory a quarter into the run, once caches and pools have warmed up: what the end is judged against.
  const warmAt = started + (seconds * 1000) / 4;
  let warm: Collected | undefined;
  let scratchMadeAt = Date.now();
  const watchdog = (async () => {
    while (running()) {
      if (warm === undefined && target.own !== undefined && Date.now() >= warmAt) warm = await target.own.collected();
      if (Date.now() >= scratchMadeAt + SCRATCH_RESET_MS) {
        await remakeScratch(target.scratch);
        await arena?.prepare();
        scratchMadeAt = Date.now();
      }
      const breach = await arena?.check();
      if (breach !== undefined && running()) findings.push({ reason: breach });
      const health = await send(target.url, { family: "health", transport: "http1", method: "GET", target: "/health", headers: [] }, { timeoutMs: 5_000 });
      if (health.status !== 200 && running()) findings.push({ reason: `/health answered ${health.timedOut ? "nothing within 5 s" : health.status}` });
      const rss = await target.rss();
      const previous = rssSamples.at(-1);
      // Not a fault by itself (memory that comes back is judged at the end): says what was running.
      if (previous !== undefined && rss > previous + RSS_JUMP_BYTES) {
        console.error(`fuzz: rss ${mb(previous)} MB -> ${mb(rss)} MB in a second; in flight: ${[...inFlight].map(describeSpec).join("\n  ")}`);
      }
      rssSamples.push(rss);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  })();

  const worker = async (index: number): Promise<void> => {
    for (let batch = 0; running(); batch++) {
      const specs = fc.sample(requests, { seed: seed + index * 1_000_003 + batch, numRuns: 50 });
      for (const spec of specs) {
        if (!running()) return;
        inFlight.add(spec);
        const outcome = await send(target.url, spec, { timeoutMs: REQUEST_TIMEOUT_MS });
        inFlight.delete(spec);
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
  // A campaign stops at its first fault: report how long it really ran.
  const ranSeconds = Math.round((Date.now() - started) / 1000);

  const lastRequestAt = Date.now();
  const breach = await arena?.check();
  if (breach !== undefined) findings.push({ reason: breach });
  await arena?.stop();
  const held = crashed ? undefined : await releasedHoldings(target);
  // An agent aimed at with --url keeps its own watcher idle time: there, what it holds is only reported.
  if (held !== undefined && target.agent !== undefined && (held.processes > 0 || held.watchers > 0)) {
    findings.push({ reason: `${RELEASE_MS / 1000} s after the last request the agent still holds ${held.processes} processes and ${held.watchers} watchers` });
  }
  const end = crashed || target.own === undefined ? undefined : await collectedAtRest(target.own, lastRequestAt);
  const memory = judgeMemory(warm, end, findings);
  const closeWait = crashed || target.own === undefined ? 0 : (await target.own.tcpStates()).filter((state) => state === TCP_CLOSE_WAIT).length;
  if (closeWait > 0) findings.push({ reason: `${closeWait} connections the clients closed are still held by the agent (CLOSE_WAIT)` });
  const endFds = crashed ? Number.NaN : await target.fds();

  for (const finding of findings.slice(0, 10)) {
    console.error(`FAULT: ${finding.reason}`);
    if (finding.spec) console.error(`  request: ${describeSpec(finding.spec)}`);
    if (finding.outcome) console.error(`  answer: ${describeOutcome(finding.outcome)}`);
  }
  const families = [...byFamily.entries()]
    .sort()
    .map(([f, n]) => `${f} ${n}`)
    .join(", ");
  console.error(`fuzz: by family: ${families}`);
  console.log(
    `fuzz: ${sent} requests in ${ranSeconds} s (seed ${seed}), ${findings.length} faults, ${memory}, fds ${startFds} -> ${endFds}, held processes ${held?.processes ?? "?"}, watchers ${held?.watchers ?? "?"}, contexts ${held?.contexts ?? "?"}, agent ${crashed ? "CRASHED" : "alive"}`,
  );
  // Our own stop is no crash; the verdict is already made.
  target.agent?.child.off("exit", onExit);
  await target.agent?.stop();
  if (target.own !== undefined) await Promise.all([target.scratch, target.own.diagDir].map((dir) => rm(dir, { recursive: true, force: true })));
  return findings.length === 0 ? 0 : 1;
}

/** The fixtures the generators refer to by name: RPC paths, and the file Range requests read. */
async function prepareScratch(scratch: string): Promise<void> {
  await prepareRpcScratch(scratch);
  await prepareHttpScratch(scratch);
}

/**
 * Empties the scratch tree and makes its fixtures again, while requests keep arriving: they may
 * see their paths vanish, as any client may, or take a fixture's name first (an upload creating
 * the directory "data.bin"). Then it tries again; a fixture still missing is made next time.
 */
async function remakeScratch(scratch: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const names = await readdir(scratch);
      await Promise.all(names.map((name) => rm(join(scratch, name), { recursive: true, force: true, maxRetries: 3 })));
      await prepareScratch(scratch);
      return;
    } catch (err) {
      if (attempt === 3) {
        console.error(`fuzz: scratch not remade this time: ${String(err)}`);
        return;
      }
    }
  }
}

interface Holdings {
  readonly processes: number;
  readonly watchers: number;
  readonly contexts: number;
}

/** The agent's own gauges once processes and watchers are gone, or as they are after RELEASE_MS. */
async function releasedHoldings(target: Target): Promise<Holdings> {
  const read = async (): Promise<Holdings> => {
    const text = await scrape(target.url, target.token);
    const gauge = (name: string): number => metricValue(text, `sandbox_agent_${name}`);
    return { processes: gauge("processes"), watchers: gauge("watchers"), contexts: gauge("contexts") };
  };
  const until = Date.now() + RELEASE_MS;
  let held = await read();
  while ((held.processes > 0 || held.watchers > 0) && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    held = await read();
  }
  return held;
}

/**
 * Memory after a full collection once the last requests are let go, and exited processes'
 * records (kept EXITED_RETENTION_MS for late Connect calls, with their output) are forgotten.
 */
async function collectedAtRest(own: NonNullable<Target["own"]>, lastRequestAt: number): Promise<Collected> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastRequestAt + EXITED_RETENTION_MS + 1_000 - Date.now())));
  return own.collected();
}

/** The memory part of the summary; a finding for growth beyond the slack. */
function judgeMemory(warm: Collected | undefined, end: Collected | undefined, findings: Finding[]): string {
  if (warm === undefined || end === undefined) return "memory not judged (an agent the campaign did not start, or a run too short to warm up)";
  if (end.liveBytes > warm.liveBytes + LIVE_HEAP_SLACK_BYTES) {
    findings.push({ reason: `the live heap grew from ${mb(warm.liveBytes)} MB to ${mb(end.liveBytes)} MB (more than ${mb(LIVE_HEAP_SLACK_BYTES)} MB)` });
  }
  if (end.rssBytes > warm.rssBytes + RSS_SLACK_BYTES) {
    findings.push({ reason: `RSS after a full collection grew from ${mb(warm.rssBytes)} MB to ${mb(end.rssBytes)} MB (more than ${mb(RSS_SLACK_BYTES)} MB)` });
  }
  return `live heap ${mb(warm.liveBytes)} MB -> ${mb(end.liveBytes)} MB, rss ${mb(warm.rssBytes)} MB -> ${mb(end.rssBytes)} MB (after a full collection)`;
}

const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);

process.exitCode = await main();
