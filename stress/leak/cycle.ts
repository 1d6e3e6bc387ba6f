/**
 * One leak-check cycle: which operations it runs, over which transport, and how long each took
 * (the timings say what dominates a slow run).
 *
 * Every cycle starts an echo, attaches to a waiting process, executes a cell and streams a watch.
 * The watch waits for its file's CREATE only every `watchEventEvery` cycles (10 by default) and
 * otherwise cancels right after writing the file. The agent holds every event for a fixed 75 ms
 * coalescing window (src/services/filesystem/coalesce.ts), so a cycle that waits for one takes
 * ~100 ms where the others take ~50 ms: waiting every time would cost 10,000 cycles at least
 * 12.5 minutes on an idle machine (over the CI budget) while exercising nothing the cancelling
 * cycles do not — and those also cover a watch closed with an event still pending in its window.
 * Rarer work comes every k-th cycle:
 *  - a PTY start (node-pty is a native addon with its own fds and exit watcher);
 *  - a polled watcher (CreateWatcher/GetWatcherEvents/RemoveWatcher), which also waits out the
 *    coalescing window, hence every 20 cycles by default;
 *  - a context created and destroyed. Contexts are kernels: a CreateContext takes the warm pool's
 *    kernel and the pool boots a replacement (a second or two of a core), so one per cycle would
 *    measure Python's start-up and nothing else. Real callers mostly execute in a context they
 *    keep (or the default one), so every cycle executes in one long-lived context, and a context
 *    is created and destroyed every `contextEvery` cycles: enough, over a 10,000-cycle run, to
 *    show a kernel, its connection directory or its ZeroMQ sockets left behind per context.
 * The operations of a cycle run concurrently (they touch different things); cycles run one after
 * another, so nothing piles up across cycles and a leak shows as growth per cycle.
 */
import { TRANSPORTS, type ClientSet } from "./clients.js";
import { attach, contextRoundTrip, execute, startEcho, startPty, watchPolled, watchStream, type StepContext } from "./steps.js";

export interface CyclePlan {
  readonly ptyEvery: number;
  readonly watchEventEvery: number;
  readonly polledWatchEvery: number;
  readonly contextEvery: number;
  /** Run a cycle's operations one after another instead of together (for profiling). */
  readonly sequential: boolean;
  /** Only these operations (by the names StepTimes reports), to find which one leaks or is slow. */
  readonly only: ReadonlySet<string> | undefined;
}

export interface CycleEnv {
  readonly clients: ClientSet;
  readonly token: string;
  /** The long-lived context every cycle executes in. */
  readonly contextId: string;
  readonly scratch: string;
  readonly watchDir: string;
  readonly polledDir: string;
}

/** Milliseconds per operation name, over the whole run. */
export class StepTimes {
  private readonly samples = new Map<string, number[]>();

  async time(name: string, op: () => Promise<void>): Promise<void> {
    const started = performance.now();
    try {
      await op();
    } finally {
      let list = this.samples.get(name);
      if (list === undefined) {
        list = [];
        this.samples.set(name, list);
      }
      list.push(performance.now() - started);
    }
  }

  /** "name p50/p95/max ms" per operation, slowest median first. */
  summary(): string[] {
    const rows = [...this.samples].map(([name, list]) => {
      const sorted = [...list].sort((a, b) => a - b);
      const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
      return { name, p50: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] ?? Number.NaN, n: sorted.length };
    });
    rows.sort((a, b) => b.p50 - a.p50);
    return rows.map(
      (r) => `${r.name.padEnd(16)} n=${String(r.n).padEnd(6)} p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, max ${r.max.toFixed(0)} ms`,
    );
  }
}

export async function runCycle(cycle: number, plan: CyclePlan, env: CycleEnv, times: StepTimes): Promise<void> {
  const ctx: StepContext = { clients: env.clients.of(TRANSPORTS[cycle % TRANSPORTS.length]!), token: env.token, cycle };
  const ops: Array<[string, () => Promise<void>]> = [
    ["start", () => startEcho(ctx)],
    ["attach", () => attach(ctx)],
    ["execute", () => execute(ctx, env.contextId)],
    cycle % plan.watchEventEvery === 0
      ? ["watch-event", () => watchStream(ctx, env.watchDir, true)]
      : ["watch-cancel", () => watchStream(ctx, env.watchDir, false)],
  ];
  if (cycle % plan.ptyEvery === 0) ops.push(["start-pty", () => startPty(ctx)]);
  if (cycle % plan.polledWatchEvery === 0) ops.push(["watch-polled", () => watchPolled(ctx, env.polledDir)]);
  if (cycle % plan.contextEvery === 0) ops.push(["context", () => contextRoundTrip(ctx, env.scratch)]);

  const chosen = plan.only === undefined ? ops : ops.filter(([name]) => plan.only!.has(name));
  const timed = (name: string, op: () => Promise<void>): Promise<void> =>
    times.time(name, op).catch((err: unknown) => {
      throw new Error(`cycle ${cycle} (${ctx.clients.transport}) ${name}: ${(err as Error).message}`);
    });
  if (plan.sequential) {
    for (const [name, op] of chosen) await timed(name, op);
    return;
  }
  const results = await Promise.allSettled(chosen.map(([name, op]) => timed(name, op)));
  const failures = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
  if (failures.length > 0) throw new Error(failures.join("; "));
}
