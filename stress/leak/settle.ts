/**
 * Waiting for the agent to come to rest once its clients are gone: sockets closing, exited
 * children reaped, a pool kernel booting to replace one a context took. Figures are compared only
 * at rest, so a leak is something that stays, not something still on its way out.
 */
import { isKernel, snapshotOf, type Snapshot } from "./snapshot.js";
import { settledProblems } from "./verdict.js";

const POLL_MS = 500;
/** Long enough for a Python kernel to boot on a busy machine, and for closing sockets to go. */
export const SETTLE_TIMEOUT_MS = 60_000;
/** Polls in a row with the same fd count before the baseline counts as steady. */
const STEADY_POLLS = 4;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Target {
  readonly pid: number;
  readonly url: string;
  readonly token: string;
  /** The long-lived context's kernel, and how many pool kernels there should be besides it. */
  readonly contextKernel: number;
  readonly poolSize: number;
}

/**
 * The baseline: nothing running or watched, the pool full, no zombies, and the fd count steady
 * over a few polls. Returns the last snapshot even when the agent never got there (the final
 * comparison then reports what differs).
 */
export async function settleBaseline(target: Target): Promise<Snapshot> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let steady = 0;
  let last: Snapshot | undefined;
  for (;;) {
    const now = await snapshotOf(target.pid, target.url, target.token);
    const poolKernels = [...now.descendants].filter(([pid, cmd]) => isKernel(cmd) && pid !== target.contextKernel).length;
    const quiet = now.gauges.processes === 0 && now.gauges.watchers === 0 && now.zombies.length === 0 && poolKernels === target.poolSize;
    steady = quiet && last !== undefined && last.fds === now.fds ? steady + 1 : 0;
    last = now;
    if (steady >= STEADY_POLLS || Date.now() > deadline) return now;
    await sleep(POLL_MS);
  }
}

/** Polls until everything is back to the baseline, or the time is up; returns the last snapshot. */
export async function settleBack(target: Target, baseline: Snapshot): Promise<{ snapshot: Snapshot; waitedMs: number }> {
  const started = Date.now();
  for (;;) {
    const now = await snapshotOf(target.pid, target.url, target.token);
    if (settledProblems(baseline, now, target.contextKernel).length === 0 || Date.now() - started > SETTLE_TIMEOUT_MS) {
      return { snapshot: now, waitedMs: Date.now() - started };
    }
    await sleep(POLL_MS);
  }
}
