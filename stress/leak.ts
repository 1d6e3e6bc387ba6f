/**
 * `npm run leakcheck -- --cycles N`: does the agent give back what a well-behaved client's
 * conversations cost it? Starts the built agent as its own process (warm pool of one Python
 * kernel), runs N cycles one after another — each a process start, an attach with input, a Python
 * execution and a streamed watch, with PTYs, polled watchers and context create/destroy every few
 * cycles (leak/cycle.ts) — and compares the agent after the warm-up with the agent after the run,
 * both measured with every client closed and the agent at rest:
 *  - open fds: exactly the same number (the differing targets are printed if not);
 *  - descendants: the same processes (a pool kernel may have been replaced by a new one), no zombies;
 *  - the processes/watchers/contexts gauges of /metrics: the same values;
 *  - memory (leak/verdict.ts): the data on the live heap after a full collection (leak/live-heap.ts)
 *    within 1 MiB, RSS at rest within 40 MiB, and RSS rising at most 24 MiB over the second half.
 * Progress goes to stderr; one summary line to stdout. Exits 1 on any leak or failed cycle.
 * `--only NAME,...` and `--sequential` help find which operation leaks or is slow; the time per
 * operation is printed at the end either way.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import type { AgentProcess } from "../bench/lib.js";
import { fdTargets, metricValue, rssOf } from "../harness/probe.js";
import { openClients, type ClientSet } from "./leak/clients.js";
import { runCycle, StepTimes, type CycleEnv, type CyclePlan } from "./leak/cycle.js";
import { settleBack, settleBaseline, type Target } from "./leak/settle.js";
import { liveHeap, startAgentWithHeapSnapshots, type LiveHeap } from "./leak/live-heap.js";
import { GAUGES, memoryText, scrape, snapshotOf, type Snapshot } from "./leak/snapshot.js";
import { EXITED_RETENTION_MS } from "../src/services/process/limits.js";
import { createContext, kernelPid } from "./leak/steps.js";
import { fdDifference, memoryProblems, MiB, settledProblems, type AtRest } from "./leak/verdict.js";

const { values: args } = parseArgs({
  options: {
    cycles: { type: "string", default: "10000" },
    warmup: { type: "string" },
    "pty-every": { type: "string", default: "10" },
    "watch-event-every": { type: "string", default: "10" },
    "polled-every": { type: "string", default: "20" },
    "context-every": { type: "string", default: "100" },
    sequential: { type: "boolean", default: false },
    only: { type: "string" },
    "keep-heap-snapshots": { type: "string" },
  },
});

const cycles = Number(args.cycles);
/** The first cycles fill caches, JIT the hot paths and grow the heap to its working size. */
const warmup = args.warmup === undefined ? Math.min(200, Math.floor(cycles / 5)) : Number(args.warmup);
const plan: CyclePlan = {
  ptyEvery: Number(args["pty-every"]),
  watchEventEvery: Number(args["watch-event-every"]),
  polledWatchEvery: Number(args["polled-every"]),
  contextEvery: Number(args["context-every"]),
  sequential: args.sequential === true,
  only: args.only === undefined ? undefined : new Set(args.only.split(",")),
};
const periods = [plan.ptyEvery, plan.watchEventEvery, plan.polledWatchEvery, plan.contextEvery];
if (![cycles, warmup, ...periods].every((n) => Number.isInteger(n) && n >= 0) || cycles <= warmup || periods.some((n) => n < 1)) {
  console.error(
    "usage: npm run leakcheck -- [--cycles N] [--warmup W<N] [--pty-every K] [--watch-event-every K] [--polled-every K] [--context-every M] [--sequential] [--only start,attach,...] [--keep-heap-snapshots DIR]",
  );
  process.exit(2);
}

const POOL_SIZE = 1;
/** A failing agent fails every cycle; stop after this many instead of logging thousands. */
const MAX_FAILURES = 10;
const PROGRESS_EVERY = Math.min(1000, Math.max(1, Math.floor(cycles / 10)));
/** Exited processes stay findable (and in memory) this long; the figures at rest are taken after it. */
const RETENTION_WAIT_MS = EXITED_RETENTION_MS + 2_000;

const mb = (bytes: number): string => `${(bytes / MiB).toFixed(0)} MB`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const log = (message: string): void => void process.stderr.write(`leakcheck: ${message}\n`);

/**
 * The agent's warnings and errors on our stderr. It logs at info (the production default, and the
 * level at which startAgentProcess learns its port), one line per request: those are dropped.
 */
function forwardAgentLog(agent: AgentProcess): void {
  createInterface({ input: agent.child.stdout! }).on("line", (line) => {
    let level = 0;
    try {
      level = (JSON.parse(line) as { level?: number }).level ?? 0;
    } catch {
      level = 50; // not a log line: say it
    }
    if (level >= 40) process.stderr.write(`agent: ${line}\n`);
  });
}

interface RunState {
  failures: string[];
  agentGone: boolean;
  readonly times: StepTimes;
}

async function runCycles(from: number, to: number, env: CycleEnv, state: RunState, onCycle: (cycle: number) => Promise<void>): Promise<void> {
  for (let cycle = from; cycle < to && state.failures.length < MAX_FAILURES; cycle++) {
    if (state.agentGone) throw new Error(`the agent exited during cycle ${cycle - 1}`);
    try {
      await runCycle(cycle, plan, env, state.times);
    } catch (err) {
      state.failures.push((err as Error).message);
      log(`FAILED ${(err as Error).message}`);
    }
    await onCycle(cycle);
  }
}

async function main(): Promise<number> {
  const token = randomBytes(16).toString("hex");
  const scratch = await mkdtemp(join(tmpdir(), "agent-leak-"));
  const watchDir = join(scratch, "watch");
  const polledDir = join(scratch, "polled");
  const diagDir = join(scratch, "diagnostics");
  await Promise.all([mkdir(watchDir), mkdir(polledDir), mkdir(diagDir)]);
  const agent = await startAgentWithHeapSnapshots(token, diagDir, ["--kernel-pool-size", String(POOL_SIZE)]);
  forwardAgentLog(agent);
  const state: RunState = { failures: [], agentGone: false, times: new StepTimes() };
  let stopping = false;
  agent.child.once("exit", (code, signal) => {
    state.agentGone = true;
    if (!stopping) log(`the agent exited (${signal ?? code}) during the run`);
  });
  let clients: ClientSet = openClients(agent.url);
  try {
    const setup = { clients: clients.of("connect-h2"), token, cycle: -1 };
    const contextId = await createContext(setup, scratch);
    const contextKernel = await kernelPid(setup, contextId);
    const target: Target = { pid: agent.pid, url: agent.url, token, contextKernel, poolSize: POOL_SIZE };
    const envWith = (set: ClientSet): CycleEnv => ({ clients: set, token, contextId, scratch, watchDir, polledDir });
    const keepDir = args["keep-heap-snapshots"];
    const heapOf = (label: string): Promise<LiveHeap> =>
      liveHeap(
        agent.pid,
        diagDir,
        async () => metricValue(await scrape(agent.url, token), "sandbox_agent_nodejs_heap_size_used_bytes"),
        keepDir === undefined ? undefined : join(keepDir, `agent-${label}.heapsnapshot`),
      );
    /** Waits until exited processes are forgotten (their records and replay buffers are not leaks). */
    const restAfter = async (label: string, lastCycleAt: number, snapshot: Snapshot): Promise<AtRest> => {
      const targets = await fdTargets(agent.pid);
      await sleep(lastCycleAt + RETENTION_WAIT_MS - Date.now());
      const heap = await heapOf(label);
      return { snapshot, fdTargets: targets, heap, rssBytes: await rssOf(agent.pid) };
    };
    const started = Date.now();
    log(`agent pid ${agent.pid}, context kernel pid ${contextKernel}; ${warmup} warm-up cycles, then ${cycles - warmup} measured`);

    await runCycles(0, warmup, envWith(clients), state, async () => {});
    clients.close();
    const before = await restAfter("after-warm-up", Date.now(), await settleBaseline(target));
    log(
      `after warm-up (${((Date.now() - started) / 1000).toFixed(0)} s, at rest): ${restText(before)}, descendants ${before.snapshot.descendants.size}, ${GAUGES.map((name) => `${name} ${before.snapshot.gauges[name]}`).join(", ")}`,
    );

    clients = openClients(agent.url);
    const measured = cycles - warmup;
    const quarters: number[] = [before.rssBytes];
    const measureStart = Date.now();
    let window = { at: Date.now(), cycle: warmup };
    await runCycles(warmup, cycles, envWith(clients), state, async (cycle) => {
      const done = cycle - warmup + 1;
      if ([1, 2, 3, 4].some((q) => done === Math.floor((measured * q) / 4))) quarters.push(await rssOf(agent.pid));
      if ((cycle + 1) % PROGRESS_EVERY === 0) {
        const rate = (cycle + 1 - window.cycle) / ((Date.now() - window.at) / 1000);
        window = { at: Date.now(), cycle: cycle + 1 };
        log(`${cycle + 1}/${cycles} cycles, ${rate.toFixed(1)} cycles/s, ${memoryText(await snapshotOf(agent.pid, agent.url, token))}`);
      }
    });
    const measuredSeconds = (Date.now() - measureStart) / 1000;
    const runSeconds = (Date.now() - started) / 1000;

    const kernelAtEnd = await kernelPid({ clients: clients.of("connect-h2"), token, cycle: cycles }, contextId).catch((err: unknown) => {
      state.failures.push(`long-lived context after the run: ${(err as Error).message}`);
      return -1;
    });
    if (kernelAtEnd !== -1 && kernelAtEnd !== contextKernel) state.failures.push(`the long-lived context's kernel changed: ${contextKernel} -> ${kernelAtEnd}`);
    const lastCycleAt = Date.now();
    clients.close();
    const { snapshot: final, waitedMs } = await settleBack(target, before.snapshot);
    log(`settled in ${(waitedMs / 1000).toFixed(1)} s`);
    const after = await restAfter("after-run", lastCycleAt, final);

    const problems = [
      ...state.failures.map((f) => `failed: ${f}`),
      ...settledProblems(before.snapshot, after.snapshot, contextKernel),
      ...memoryProblems({ before, after, quarters }),
    ];
    if (after.snapshot.fds !== before.snapshot.fds) log(`fd targets that differ: ${fdDifference(before.fdTargets, after.fdTargets).join(", ")}`);
    log(`${measured} measured cycles in ${measuredSeconds.toFixed(0)} s (${(measured / measuredSeconds).toFixed(1)} cycles/s)`);
    log(`rss after the warm-up (at rest) and at 25/50/75/100% of the measured cycles: ${quarters.map(mb).join(", ")}`);
    log(`at rest: before ${restText(before)}; after ${restText(after)}`);
    log("time per operation:");
    for (const line of state.times.summary()) log(`  ${line}`);
    for (const problem of problems) log(`LEAK/FAILURE: ${problem}`);

    console.log(
      `leakcheck: ${cycles} cycles in ${runSeconds.toFixed(0)} s, fds ${before.snapshot.fds} -> ${after.snapshot.fds}, rss ${mb(before.rssBytes)} -> ${mb(after.rssBytes)}, ` +
        `heap data ${(before.heap.totals.dataBytes / MiB).toFixed(1)} MB -> ${(after.heap.totals.dataBytes / MiB).toFixed(1)} MB, ${gaugeText(before.snapshot, after.snapshot)}, ` +
        `descendants ${before.snapshot.descendants.size} -> ${after.snapshot.descendants.size}, zombies ${after.snapshot.zombies.length}` +
        (problems.length > 0 ? `: ${problems.length} problem(s)` : ": ok"),
    );
    return problems.length > 0 ? 1 : 0;
  } finally {
    clients.close();
    stopping = true;
    await agent.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

function restText(rest: AtRest): string {
  const { liveBytes, totals } = rest.heap;
  return `fds ${rest.snapshot.fds}, rss ${mb(rest.rssBytes)}, live heap ${mb(liveBytes)} (data ${(totals.dataBytes / MiB).toFixed(2)} MiB, code and V8 ${(totals.otherBytes / MiB).toFixed(2)} MiB)`;
}

function gaugeText(before: Snapshot, after: Snapshot): string {
  return GAUGES.map((name) => `${name} ${before.gauges[name]} -> ${after.gauges[name]}`).join(", ");
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
