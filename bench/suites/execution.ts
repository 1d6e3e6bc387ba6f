/**
 * Issue 4's figures, each against a baseline measured in the same run:
 * - Execute round trip of `1+1` in a warm Python context (connect-node, HTTP/1.1, JSON like the
 *   SDK) against a direct ZeroMQ round trip (execute_request → idle) to a Python kernel this bench
 *   launches itself with the agent's own Jupyter client classes;
 * - CreateContext plus the first Execute, with the warm pool (the agent under test) and without
 *   (a second agent started with --kernel-pool-size 0), against launching a bare kernel to ready;
 * - N contexts each executing in a loop at once: executions per second against the same loop over
 *   direct ZeroMQ to N bench-launched kernels, and the agent's RSS against its RSS before.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DEFAULTS } from "../../src/config.js";
import { ContextService, ExecutionService } from "../../src/gen/sandboxagent/api_pb.js";
import { findKernelSpecs } from "../../src/kernels/jupyter/kernelspecs.js";
import { launchKernel, type KernelProcess } from "../../src/kernels/jupyter/launcher.js";
import { KernelSession } from "../../src/kernels/jupyter/session.js";
import { lookupUser } from "../../src/users.js";
import { connectFloorServer, percentile, row, rssMiB, sample, startAgentProcess, timeMs, type BenchContext, type Row, type Suite } from "../lib.js";

interface Clients {
  readonly exec: Client<typeof ExecutionService>;
  readonly contexts: Client<typeof ContextService>;
  readonly headers: Record<string, string>;
}

function clients(url: string, token: string): Clients {
  // JSON over HTTP/1.1, as the SDK's code interpreter calls it.
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false });
  return { exec: createClient(ExecutionService, transport), contexts: createClient(ContextService, transport), headers: { "x-access-token": token } };
}

async function execute(c: Clients, contextId: string, code: string): Promise<void> {
  let sawMain = false;
  for await (const frame of c.exec.execute({ contextId, code, language: "python", envVars: {} }, { headers: c.headers })) {
    if (frame.event.case === "error") throw new Error(`execution failed: ${frame.event.value.name}: ${frame.event.value.value}`);
    if (frame.event.case === "result" && frame.event.value.isMainResult) sawMain = true;
  }
  if (!sawMain) throw new Error("execution ended without a main result");
}

/** A Python kernel driven directly over ZeroMQ: the floor for any execution round trip. */
interface DirectKernel {
  readonly run: (code: string) => Promise<void>;
  readonly stop: () => Promise<void>;
}

async function directKernel(cwd: string): Promise<DirectKernel> {
  const spec = (await findKernelSpecs()).get("python3");
  const user = lookupUser(process.env.USER ?? "root") ?? lookupUser("root");
  if (spec === undefined || user === undefined) throw new Error("the python3 kernelspec is not installed");
  const process_: KernelProcess = await launchKernel({ spec, user, cwd, env: {} });
  const session = new KernelSession(process_.connection, user.name);
  session.open();
  const run = async (code: string): Promise<void> => {
    const { reply } = await session.complete("shell", "execute_request", {
      code,
      silent: false,
      store_history: true,
      user_expressions: {},
      allow_stdin: false,
      stop_on_error: false,
    });
    if (reply.content.status !== "ok") throw new Error(`direct execution failed: ${String(reply.content.evalue)}`);
  };
  // Ready once a kernel_info round trip (reply and IOPub) completes.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await Promise.race([
      session.complete("shell", "kernel_info_request", {}).then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
    ]);
    if (ok) break;
    if (Date.now() > deadline || process_.hasExited()) throw new Error("bare kernel did not become ready");
  }
  return {
    run,
    stop: async () => {
      session.close();
      await process_.destroy();
    },
  };
}

async function roundTripRows(ctx: BenchContext, c: Clients): Promise<Row[]> {
  const count = ctx.quick ? 200 : 2000;
  const context = await c.contexts.createContext({ language: "python", cwd: ctx.workDir }, { headers: c.headers });
  const agentSamples = await sample(count, () => execute(c, context.id, "1+1"));
  await c.contexts.destroyContext({ contextId: context.id }, { headers: c.headers });
  const direct = await directKernel(ctx.workDir);
  const directSamples = await sample(count, () => direct.run("1+1"));
  await direct.stop();
  // The streaming round trip alone, through the building blocks with no kernel behind them.
  const floor = await connectFloorServer("1.1");
  const floorSamples = await sample(count, () => execute(clients(floor.url, ctx.token), "none", "1+1"));
  floor.close();
  const floorP50 = percentile(directSamples, 50) + percentile(floorSamples, 50);
  return [
    row("Execute 1+1, warm Python context, p50 (vs direct ZeroMQ)", "ms", percentile(agentSamples, 50), percentile(directSamples, 50)),
    row("Execute 1+1, warm Python context, p99 (vs direct ZeroMQ)", "ms", percentile(agentSamples, 99), percentile(directSamples, 99)),
    row(
      "Execute stream with no kernel, fastify + connect-fastify alone, p50 (vs direct ZeroMQ 1+1)",
      "ms",
      percentile(floorSamples, 50),
      percentile(directSamples, 50),
    ),
    row("Execute 1+1, warm Python context, p50 (vs direct ZeroMQ p50 + that stream's p50)", "ms", percentile(agentSamples, 50), floorP50),
  ];
}

async function createAndRun(c: Clients, cwd: string): Promise<number> {
  let id = "";
  const ms = await timeMs(async () => {
    id = (await c.contexts.createContext({ language: "python", cwd }, { headers: c.headers })).id;
    await execute(c, id, "1+1");
  });
  await c.contexts.destroyContext({ contextId: id }, { headers: c.headers });
  return ms;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function createRows(ctx: BenchContext, c: Clients): Promise<Row[]> {
  const runs = ctx.quick ? 3 : 8;
  // Warm: give the pool time to refill between runs, so every run finds a started kernel.
  const warm: number[] = [];
  for (let i = 0; i < runs; i++) {
    await sleep(3000);
    warm.push(await createAndRun(c, ctx.workDir));
  }
  const cold: number[] = [];
  const coldAgent = await startAgentProcess(ctx.token, ["--kernel-pool-size", "0"]);
  try {
    const coldClients = clients(coldAgent.url, ctx.token);
    for (let i = 0; i < runs; i++) cold.push(await createAndRun(coldClients, ctx.workDir));
  } finally {
    await coldAgent.stop();
  }
  const bare: number[] = [];
  for (let i = 0; i < runs; i++) {
    let kernel: DirectKernel | undefined;
    bare.push(await timeMs(async () => (kernel = await directKernel(ctx.workDir))));
    await kernel?.stop();
  }
  const bareP50 = percentile(bare, 50);
  return [
    row("CreateContext + first Execute, warm pool, p50 (vs bare kernel to ready)", "ms", percentile(warm, 50), bareP50),
    row("CreateContext + first Execute, no pool, p50 (vs bare kernel to ready)", "ms", percentile(cold, 50), bareP50),
  ];
}

/** Runs `loop` on every worker until the time is up; returns completed iterations per second. */
async function throughput(workers: number, seconds: number, loop: (worker: number) => Promise<void>): Promise<number> {
  const until = Date.now() + seconds * 1000;
  let done = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      while (Date.now() < until) {
        await loop(worker);
        done++;
      }
    }),
  );
  return done / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function concurrentRows(ctx: BenchContext, c: Clients): Promise<Row[]> {
  // As many as the agent keeps alive by default: one more and the cap shuts the least recently used
  // down, so its DestroyContext fails and the run ends without its table.
  const count = ctx.quick ? 8 : DEFAULTS.maxContexts;
  const seconds = ctx.quick ? 3 : 10;
  const rssBefore = await rssMiB(ctx.pid);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    ids.push((await c.contexts.createContext({ language: "python", cwd: ctx.workDir }, { headers: c.headers })).id);
  }
  let agentRate: number;
  let rssDuring: number;
  try {
    await Promise.all(ids.map((id) => execute(c, id, "1+1")));
    agentRate = await throughput(count, seconds, (worker) => execute(c, ids[worker]!, "1+1"));
    rssDuring = await rssMiB(ctx.pid);
  } finally {
    await Promise.all(ids.map((contextId) => c.contexts.destroyContext({ contextId }, { headers: c.headers })));
  }
  const direct: DirectKernel[] = [];
  try {
    for (let i = 0; i < count; i++) direct.push(await directKernel(ctx.workDir));
    const directRate = await throughput(count, seconds, (worker) => direct[worker]!.run("1+1"));
    return [
      row(`${count} contexts executing 1+1 in a loop (vs direct ZeroMQ)`, "exec/s", agentRate, directRate),
      row(`agent RSS with ${count} busy contexts (vs before)`, "MiB", rssDuring, rssBefore),
    ];
  } finally {
    await Promise.all(direct.map((kernel) => kernel.stop()));
  }
}

export const executionSuite: Suite = {
  name: "execution",
  run: async (ctx) => {
    const c = clients(ctx.url, ctx.token);
    ctx.log("round trips");
    const roundTrips = await roundTripRows(ctx, c);
    ctx.log("context creation");
    const creation = await createRows(ctx, c);
    ctx.log("concurrent contexts");
    const concurrent = await concurrentRows(ctx, c);
    return [...roundTrips, ...creation, ...concurrent];
  },
};
