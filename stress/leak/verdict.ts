/**
 * What counts as a leak: the comparisons between the snapshot after the warm-up and the one after
 * the run, and the memory-growth rules with the reasoning behind their bounds.
 */
import { grownGroups } from "./heap-snapshot.js";
import type { LiveHeap } from "./live-heap.js";
import { GAUGES, isKernel, type Snapshot } from "./snapshot.js";

export const MiB = 1024 * 1024;

/** The agent at rest with no client: the settled snapshot, then (exited processes forgotten) its live heap. */
export interface AtRest {
  readonly snapshot: Snapshot;
  readonly fdTargets: string[];
  readonly heap: LiveHeap;
  /** RSS right after the full collection of the heap measurement. */
  readonly rssBytes: number;
}

/**
 * Memory rules. V8 collects and returns memory on its own schedule, so RSS and the heap-used gauge
 * swing by tens of MiB without any leak; the strict rule rests on a figure that does not, and the
 * RSS rules are there for leaks outside the JS heap. Figures below were measured on the shared
 * 2-core machine, in clean runs of 1,200 to 10,000 cycles.
 *
 *  - Data on the live heap (strict): both ends are measured at rest, every client gone, exited
 *    processes past their retention, right after the full collection of a heap snapshot; the
 *    snapshot's objects, closures, arrays and strings are summed, generated code left out
 *    (leak/heap-snapshot.ts). Measured: -0.1 to 0.0 MiB. The bound, 1 MiB, is ~100 bytes per
 *    cycle over 10,000 cycles, below anything a cycle could leave behind (an exited process's
 *    record with its streams is ~7 KiB, a watch or a subscriber 1-2 KiB). A leak injected for a
 *    test (every other process record kept) showed as +4.5 MiB after 600 cycles.
 *  - RSS at rest, after that same collection: rose 9-21 MiB whatever the run's length (V8 keeps
 *    the young generation and old-space pages it grew into, generated code keeps growing): a
 *    plateau, not a slope. Bound 40 MiB, about twice the worst clean run: it catches a native leak
 *    (node-pty, ZeroMQ, inotify, Buffers) of ~2 KiB per cycle or more over 10,000 cycles.
 *  - RSS while running, at 50% and 100% of the measured cycles: rose 2-11 MiB over the second
 *    half. Bound 24 MiB, so that a steady rise shows even when the total at rest stays in bounds.
 */
export const MAX_DATA_GROWTH_BYTES = 1 * MiB;
export const MAX_RSS_GROWTH_BYTES = 40 * MiB;
export const MAX_SECOND_HALF_RSS_RISE_BYTES = 24 * MiB;

/**
 * Descendants must be the same processes, with one allowance: the warm pool's kernel is replaced
 * every time a context takes it, so a pool kernel may have a new pid as long as the number of
 * kernels is the same. The long-lived context's kernel must be the very same process.
 */
export function descendantProblems(before: Snapshot, after: Snapshot, contextKernel: number): string[] {
  const problems: string[] = [];
  const split = (s: Snapshot) => {
    const kernels = [...s.descendants].filter(([pid, cmd]) => isKernel(cmd) && pid !== contextKernel).map(([pid]) => pid);
    const others = [...s.descendants].filter(([, cmd]) => !isKernel(cmd)).map(([pid]) => pid);
    return { kernels, others };
  };
  const b = split(before);
  const a = split(after);
  if (!after.descendants.has(contextKernel)) problems.push(`the long-lived context's kernel (pid ${contextKernel}) is gone`);
  if (a.kernels.length !== b.kernels.length) {
    problems.push(`pool kernels: ${b.kernels.length} after warm-up, ${a.kernels.length} now (${describe(after, a.kernels)})`);
  }
  const appeared = a.others.filter((pid) => !b.others.includes(pid));
  const vanished = b.others.filter((pid) => !a.others.includes(pid));
  if (appeared.length > 0) problems.push(`new descendants: ${describe(after, appeared)}`);
  if (vanished.length > 0) problems.push(`descendants gone since warm-up: ${describe(before, vanished)}`);
  return problems;
}

function describe(s: Snapshot, pids: readonly number[]): string {
  return pids.map((pid) => `${pid} ${JSON.stringify((s.descendants.get(pid) ?? "?").slice(0, 80))}`).join(", ");
}

/** Everything that must be back where it was: fds exactly, processes, zombies, gauges. */
export function settledProblems(before: Snapshot, after: Snapshot, contextKernel: number): string[] {
  const problems: string[] = [];
  if (after.fds !== before.fds) problems.push(`fds ${before.fds} -> ${after.fds}`);
  problems.push(...descendantProblems(before, after, contextKernel));
  if (after.zombies.length > 0) problems.push(`zombies: ${after.zombies.join(", ")}`);
  for (const name of GAUGES) {
    if (after.gauges[name] !== before.gauges[name]) problems.push(`gauge ${name} ${before.gauges[name]} -> ${after.gauges[name]}`);
  }
  return problems;
}

export interface MemoryFigures {
  readonly before: AtRest;
  readonly after: AtRest;
  /** RSS at rest after the warm-up, then at 25, 50, 75 and 100% of the measured cycles. */
  readonly quarters: readonly number[];
}

export function memoryProblems({ before, after, quarters }: MemoryFigures): string[] {
  const problems: string[] = [];
  const dataGrowth = after.heap.totals.dataBytes - before.heap.totals.dataBytes;
  if (dataGrowth > MAX_DATA_GROWTH_BYTES) {
    problems.push(
      `data on the live heap grew ${(dataGrowth / MiB).toFixed(2)} MiB (bound ${MAX_DATA_GROWTH_BYTES / MiB} MiB); ` +
        `grew most: ${grownGroups(before.heap.totals, after.heap.totals).join(", ")}`,
    );
  }
  const rssGrowth = after.rssBytes - before.rssBytes;
  if (rssGrowth > MAX_RSS_GROWTH_BYTES) problems.push(`rss at rest grew ${(rssGrowth / MiB).toFixed(1)} MiB (bound ${MAX_RSS_GROWTH_BYTES / MiB} MiB)`);
  const [, , half, , end] = quarters;
  if (half !== undefined && end !== undefined && end - half > MAX_SECOND_HALF_RSS_RISE_BYTES) {
    problems.push(`rss rose ${((end - half) / MiB).toFixed(1)} MiB over the second half of the run (bound ${MAX_SECOND_HALF_RSS_RISE_BYTES / MiB} MiB)`);
  }
  return problems;
}

/**
 * How two fd target lists differ, by kind ("+2 socket", "-1 /tmp/x"): sockets and pipes are
 * counted without their inode numbers, which differ for every new one and would hide the count.
 */
export function fdDifference(before: readonly string[], after: readonly string[]): string[] {
  const kind = (target: string): string => target.replace(/^(socket|pipe):\[\d+\]$/, "$1");
  const count = (list: readonly string[]) => list.reduce((m, t) => m.set(kind(t), (m.get(kind(t)) ?? 0) + 1), new Map<string, number>());
  const b = count(before);
  const a = count(after);
  const out: string[] = [];
  for (const target of new Set([...b.keys(), ...a.keys()])) {
    const delta = (a.get(target) ?? 0) - (b.get(target) ?? 0);
    if (delta !== 0) out.push(`${delta > 0 ? "+" : ""}${delta} ${target}`);
  }
  return out;
}
