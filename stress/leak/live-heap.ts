/**
 * The agent's live JavaScript heap: what survives a full garbage collection. RSS and the heap-used
 * gauge both include garbage V8 has not collected yet, so they rise and fall by tens of MiB with
 * no leak at all; the live heap moves only when something is kept.
 *
 * The agent is not started with --expose-gc and nothing in it would call gc() anyway. A heap
 * snapshot, though, starts with a full collection: the agent is started with
 * `--heapsnapshot-signal=SIGUSR2` (through NODE_OPTIONS, so the production command line is
 * unchanged) and, on SIGUSR2, writes a snapshot into a scratch directory on its main thread. The
 * /metrics request sent once the file appears is served after the snapshot is finished, so the
 * heap-used figure it reports is the live heap (plus the few KiB that request allocates).
 */
import { readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { startAgentProcess, type AgentProcess } from "../../bench/lib.js";
import { heapTotals, type HeapTotals } from "./heap-snapshot.js";

const POLL_MS = 100;
const SNAPSHOT_TIMEOUT_MS = 120_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** NODE_OPTIONS that make the agent write a heap snapshot into `dir` on SIGUSR2. */
function heapSnapshotNodeOptions(dir: string): string {
  return `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`;
}

/** The built agent (startAgentProcess with `args`), able to write heap snapshots into `diagDir` on SIGUSR2. */
export async function startAgentWithHeapSnapshots(token: string, diagDir: string, args: string[]): Promise<AgentProcess> {
  const saved = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = [saved, heapSnapshotNodeOptions(diagDir)].filter(Boolean).join(" ");
  try {
    return await startAgentProcess(token, args);
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
}

export interface LiveHeap {
  /** V8's heap in use right after the collection: data and generated code. */
  readonly liveBytes: number;
  readonly totals: HeapTotals;
}

/**
 * Makes the agent collect its garbage (by writing a heap snapshot) and returns the heap in use
 * right after, read by `heapUsed` (a /metrics scrape), and the snapshot's totals. The snapshot is
 * removed, or moved to `keepAs` for a closer look (Chrome DevTools, Memory tab, "Comparison").
 */
export async function liveHeap(pid: number, dir: string, heapUsed: () => Promise<number>, keepAs?: string): Promise<LiveHeap> {
  const isSnapshot = (name: string): boolean => name.endsWith(".heapsnapshot");
  const before = new Set((await readdir(dir)).filter(isSnapshot));
  process.kill(pid, "SIGUSR2");
  const deadline = Date.now() + SNAPSHOT_TIMEOUT_MS;
  let written: string | undefined;
  while (written === undefined) {
    if (Date.now() > deadline) throw new Error(`no heap snapshot from pid ${pid} within ${SNAPSHOT_TIMEOUT_MS} ms`);
    await sleep(POLL_MS);
    written = (await readdir(dir)).find((name) => isSnapshot(name) && !before.has(name));
  }
  // Served only once the main thread has finished writing the snapshot.
  const liveBytes = await heapUsed();
  const path = join(dir, written);
  const totals = await readWhenComplete(path);
  if (keepAs === undefined) await rm(path, { force: true });
  else await rename(path, keepAs);
  return { liveBytes, totals };
}

/** The snapshot should be complete by now; should the write still be going on, it will not parse yet. */
async function readWhenComplete(path: string): Promise<HeapTotals> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await heapTotals(path);
    } catch (err) {
      if (!(err instanceof SyntaxError) || attempt >= 20) throw err;
      await sleep(500);
    }
  }
}
