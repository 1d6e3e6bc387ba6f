/**
 * Issue 15's figure: memory given back once the agent is idle. A burst of load (concurrent
 * streaming processes, the heaviest garbage maker) grows the heap; then, with nothing in flight,
 * the agent's RSS is watched for up to 60 s until it is within 1.5x of its RSS at start
 * (measured by run.ts before any suite). Runs last, so the other suites' load counts too.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Process } from "../../src/gen/sandboxagent/api_pb.js";
import { MiB, row, rssMiB, type BenchContext, type Row, type Suite } from "../lib.js";

const WATCH_MS = 60_000;
const TARGET_FACTOR = 1.5;

async function stream(ctx: BenchContext, bytes: number): Promise<void> {
  const c = createClient(Process, createConnectTransport({ baseUrl: ctx.url, httpVersion: "2", useBinaryFormat: true }));
  let got = 0;
  for await (const res of c.start(
    { process: { cmd: "head", args: ["-c", String(bytes), "/dev/zero"], envs: {} } },
    { headers: { "x-access-token": ctx.token } },
  )) {
    const ev = res.event?.event;
    if (ev?.case === "data") got += ev.value.output.value?.length ?? 0;
  }
  if (got !== bytes) throw new Error(`streamed ${got} of ${bytes} bytes`);
}

async function idleReturnRows(ctx: BenchContext): Promise<Row[]> {
  const processes = ctx.quick ? 20 : 100;
  const rounds = ctx.quick ? 1 : 3;
  for (let round = 0; round < rounds; round++) await Promise.all(Array.from({ length: processes }, () => stream(ctx, 10 * MiB)));
  const loaded = await rssMiB(ctx.pid);
  const began = Date.now();
  let rss = loaded;
  while (rss > ctx.startRssMiB * TARGET_FACTOR && Date.now() - began < WATCH_MS) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    rss = await rssMiB(ctx.pid);
  }
  const seconds = (Date.now() - began) / 1000;
  ctx.log(`RSS ${loaded.toFixed(0)} MiB right after the load, ${rss.toFixed(0)} MiB ${seconds.toFixed(0)} s later (start ${ctx.startRssMiB.toFixed(0)} MiB)`);
  return [
    row(`agent RSS once idle after load, within ${WATCH_MS / 1000} s (vs RSS at start)`, "MiB", rss, ctx.startRssMiB),
    row("seconds until idle RSS is within 1.5x of start (vs the 60 s allowed)", "s", seconds, WATCH_MS / 1000),
  ];
}

export const memorySuite: Suite = { name: "memory", run: idleReturnRows };
