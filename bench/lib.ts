/**
 * Shared pieces of the benchmarks: the agent under test runs as its own process (built output,
 * as in production) so its RSS is its own, and every figure is paired with a baseline measured
 * in the same run.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export interface Row {
  readonly metric: string;
  readonly unit: string;
  readonly agent: number;
  readonly baseline: number | null;
  /** agent / baseline; for throughput rows too, so the reader compares like with like. */
  readonly ratio: number | null;
  /**
   * The agent's peak RSS while the row's own figure was measured; rows that do not measure it
   * themselves get their suite's peak (run.ts).
   */
  readonly peakRssMiB?: number;
}

export function row(metric: string, unit: string, agent: number, baseline: number | null, peakRssMiB?: number): Row {
  const ratio = baseline === null || baseline === 0 ? null : agent / baseline;
  return peakRssMiB === undefined ? { metric, unit, agent, baseline, ratio } : { metric, unit, agent, baseline, ratio, peakRssMiB };
}

export interface BenchContext {
  readonly url: string;
  readonly token: string;
  readonly pid: number;
  /** The agent's RSS once started, before any suite ran. */
  readonly startRssMiB: number;
  /** Scratch directory for this run; removed afterwards. */
  readonly workDir: string;
  /** Smaller sizes for a quick check (CI), same metrics. */
  readonly quick: boolean;
  readonly log: (message: string) => void;
  /** Samples the agent's RSS while `work` runs. */
  readonly rss: RssSampler;
}

export interface Suite {
  readonly name: string;
  readonly run: (ctx: BenchContext) => Promise<Row[]>;
}

export interface AgentProcess {
  readonly url: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly stop: () => Promise<void>;
}

/**
 * Starts `node dist/main.js` on a free loopback port and waits for it to say where it listens.
 * Without the E2B interpreter's fixed second port: runs side by side, and no default contexts
 * start with the agent to skew what is measured.
 */
export async function startAgentProcess(token: string, extraArgs: string[] = []): Promise<AgentProcess> {
  const fixed = ["dist/main.js", "--host", "127.0.0.1", "--port", "0", "--interpreter-port", "0", "--log-level", "info"];
  const child = spawn(process.execPath, [...fixed, ...extraArgs], {
    env: { ...process.env, SANDBOX_AGENT_ACCESS_TOKEN: token },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`agent exited with ${code} before listening`)));
    lines.on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "sandbox-agent listening" && typeof entry.port === "number") resolve(entry.port);
      } catch {
        // not a log line
      }
    });
  });
  lines.removeAllListeners("line");
  child.stdout!.resume(); // keep draining request logs so the agent never blocks on a full pipe
  // However the driver ends (an exception thrown in a callback included), its agent goes with it;
  // SIGTERM, so that the agent stops its kernels and processes on the way out.
  const orphanGuard = (): void => void child.kill("SIGTERM");
  process.once("exit", orphanGuard);
  child.once("exit", () => process.off("exit", orphanGuard));
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        // A child killed by a signal has signalCode set and exitCode null.
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Resident set size of a process in MiB, from /proc. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

function rssMiBNow(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN; // the process is gone: no sample
  }
}

/**
 * The peak RSS of one process over windows of time, sampled every 10 ms from a timer of this
 * process (so a window also sees the sample taken right at its end). Windows may overlap.
 */
export class RssSampler {
  private readonly windows = new Set<{ peak: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), 10);
    this.timer.unref();
  }

  private sample(): void {
    if (this.windows.size === 0) return;
    const rss = rssMiBNow(this.pid);
    if (Number.isNaN(rss)) return;
    for (const window of this.windows) window.peak = Math.max(window.peak, rss);
  }

  /** Runs `work` and returns its result with the agent's peak RSS (MiB) meanwhile. */
  async during<T>(work: () => Promise<T>): Promise<{ result: T; peakMiB: number }> {
    const window = { peak: rssMiBNow(this.pid) };
    this.windows.add(window);
    try {
      const result = await work();
      this.sample();
      return { result, peakMiB: window.peak };
    } finally {
      this.windows.delete(window);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

/** Milliseconds one call of fn takes. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Runs fn `warmup` times unmeasured, then `count` times measured; returns the durations in ms. */
export async function sample(count: number, fn: () => Promise<unknown>, warmup = Math.min(20, count)): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(await timeMs(fn));
  return out;
}

/** Runs a shell command to completion and returns how long it took in ms. */
export async function timeCommand(cmd: string, args: string[]): Promise<number> {
  return timeMs(
    () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(cmd, args, { stdio: "ignore" });
        child.once("error", reject);
        child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
      }),
  );
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/**
 * A server in a Node process of its own (`node <args>`), which prints its port once it listens:
 * the bare servers of the baselines, and bench/peers/connect-floor.ts.
 */
export async function serverProcess(args: readonly string[]): Promise<{ url: string; close: () => void }> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`server ${args.join(" ").slice(0, 80)} exited with ${code}`)));
    child.stdout!.setEncoding("utf8").once("data", (line: string) => resolve(Number(line.trim())));
  });
  return { url: `http://127.0.0.1:${port}`, close: () => void child.kill() };
}

/** The building blocks alone (bench/peers/connect-floor.ts), over HTTP/1.1 or h2c. */
export function connectFloorServer(httpVersion: "1.1" | "2"): Promise<{ url: string; close: () => void }> {
  const script = fileURLToPath(new URL("./peers/connect-floor.ts", import.meta.url));
  return serverProcess(["--import", "tsx", script, httpVersion === "1.1" ? "h1" : "h2c"]);
}
