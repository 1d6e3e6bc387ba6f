/**
 * `npm run soak -- --seconds N --clients C`: C concurrent clients drive a live agent for N seconds,
 * each repeatedly drawing an operation from a mix of everything the agent serves (uploads and
 * downloads checked by SHA-256, streamed process output checked byte for byte, PTY sessions,
 * watchers, Python executions), then compares the agent's memory and descriptors before and after.
 *
 * It starts the built agent itself (kernel pool of one) unless `--url U --token T` aim it at a
 * running one. Progress goes to stderr; stdout gets exactly one line:
 *   soak: R requests, E errors, L lost bytes, rss A MB -> B MB, fds X -> Y, event-loop lag p99 Z ms,
 *   idle rss S MB at start -> I MB N s after the load
 * The last figure is the agent giving memory back on its own once idle (src/idle-memory.ts): RSS
 * is watched for up to IDLE_RETURN_MS after the clients stop, until it is within 1.5x of start.
 * The exit status is non-zero on any error, any lost byte, or an agent that died.
 */
import { parseArgs } from "node:util";
import { OPERATION_TIMEOUT_MS, SoakClient } from "./soak/client.js";
import { LagSampler } from "./soak/lag.js";
import { executePython } from "./soak/ops/execute.js";
import { OPERATIONS } from "./soak/ops/index.js";
import { addedFds } from "./soak/fds.js";
import { settled } from "./soak/settle.js";
import { Tally } from "./soak/tally.js";
import { attachRemoteTarget, startLocalTarget, type AgentResources, type Target } from "./soak/target.js";

/** How long the agent has to give memory back once the load stops. */
const IDLE_RETURN_MS = 60_000;
/** What counts as given back: RSS within this factor of the agent's at start. */
const IDLE_RETURN_FACTOR = 1.5;

/** A first Python execution may wait for the kernel pool to start its kernel. */
const KERNEL_START_TIMEOUT_MS = 180_000;

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    clients: { type: "string", default: "4" },
    url: { type: "string" },
    token: { type: "string" },
  },
});
const seconds = Number(args.seconds);
const clientCount = Number(args.clients);
if (!(seconds > 0) || !Number.isInteger(clientCount) || clientCount < 1 || (args.url === undefined) !== (args.token === undefined)) {
  console.error("usage: npm run soak -- --seconds N --clients C [--url URL --token T]");
  process.exit(2);
}

const log = (message: string): void => console.error(`soak: ${message}`);
const mb = (bytes: number): string => (Number.isFinite(bytes) ? (bytes / 2 ** 20).toFixed(1) : "?");

/** Python must work: a machine without the kernel fails the soak instead of skipping a fifth of it. */
async function requirePython(target: Target): Promise<void> {
  const probe = new SoakClient({ url: target.url, token: target.token, scratch: target.scratch, name: "python-check", tally: new Tally() });
  try {
    const outcome = await executePython(probe.conn, "print('ready')\n1 + 1", AbortSignal.timeout(KERNEL_START_TIMEOUT_MS), KERNEL_START_TIMEOUT_MS);
    if (outcome.error !== undefined || outcome.mainResult !== "2") throw new Error(`1 + 1 gave ${outcome.mainResult ?? outcome.error}`);
  } catch (err) {
    throw new Error(`Python execution does not work on this agent (install the kernels with \`bash scripts/install.sh python\`): ${String(err)}`);
  } finally {
    probe.close();
  }
}

/** Each operation once, one after another: first-use costs (JIT, pools, caches) land before "before". */
async function warmUp(target: Target, tally: Tally): Promise<void> {
  const client = new SoakClient({ url: target.url, token: target.token, scratch: target.scratch, name: "warm-up", tally });
  try {
    if (await client.open()) for (const op of OPERATIONS) await client.run(op);
  } finally {
    client.close();
  }
}

/**
 * Resources once the descriptor count holds still for `stableMs` (at most `maxMs`). Before the
 * run that takes a while: the kernel pool starts a replacement for the kernel the first execution
 * took, and its ZeroMQ sockets open seconds later. After it, a short wait covers connections the
 * agent is still closing.
 */
async function settledResources(target: Target, stableMs: number, maxMs: number): Promise<AgentResources> {
  const intervalMs = 250;
  const fds = await settled(async () => (await target.resources()).fds, { intervalMs, stableReads: stableMs / intervalMs, maxMs });
  return { fds, rssBytes: (await target.resources()).rssBytes };
}

interface IdleReturn {
  readonly startRssBytes: number;
  readonly idleRssBytes: number;
  readonly afterMs: number;
}

/** RSS once it is back within IDLE_RETURN_FACTOR of start, or after IDLE_RETURN_MS, whichever first. */
async function idleReturn(target: Target, startRssBytes: number): Promise<IdleReturn> {
  const began = Date.now();
  let rss = (await target.resources()).rssBytes;
  while (rss > startRssBytes * IDLE_RETURN_FACTOR && Date.now() - began < IDLE_RETURN_MS) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    rss = (await target.resources()).rssBytes;
  }
  return { startRssBytes, idleRssBytes: rss, afterMs: Date.now() - began };
}

async function soak(target: Target, tally: Tally): Promise<{ before: AgentResources; after: AgentResources; lagMs: number; idle: IdleReturn; death?: string }> {
  const startRssBytes = (await target.resources()).rssBytes;
  await requirePython(target);
  await warmUp(target, tally);
  const before = await settledResources(target, 3_000, 30_000);
  const fdsBefore = await target.fdTargets?.();
  log(`warm: rss ${mb(before.rssBytes)} MB, ${before.fds} fds; ${clientCount} clients for ${seconds} s`);

  const started = Date.now();
  const deadline = started + seconds * 1000;
  const running = (): boolean => Date.now() < deadline && target.exitReason() === undefined;
  // One progress line per lag window (every 10 s).
  const sampler = new LagSampler(target.url, target.token, tally, (window) =>
    log(
      `${Math.round((Date.now() - started) / 1000)} s: ${tally.requests} requests, ${tally.errors} errors, ${tally.lostBytes} lost bytes, ` +
        `rss ${mb(window.rssBytes)} MB, lag p99 ${window.lagP99Ms.toFixed(1)} ms [${tally.summary()}]`,
    ),
  );
  await sampler.begin();

  const clients = Array.from(
    { length: clientCount },
    (_, i) => new SoakClient({ url: target.url, token: target.token, scratch: target.scratch, name: `client-${i}`, tally }),
  );
  try {
    await Promise.all(clients.map(async (client) => (await client.open()) && client.loop(running)));
  } finally {
    for (const client of clients) client.close();
    await sampler.end();
  }
  log(`clients done after ${Math.round((Date.now() - started) / 1000)} s (each finishes its operation, at most ${OPERATION_TIMEOUT_MS / 1000} s); settling`);

  // An agent that died has no "after": the line then says "?", and the exit status says why.
  const after = await settledResources(target, 1_000, 5_000).catch(() => ({ fds: Number.NaN, rssBytes: Number.NaN }));
  const fdsAfter = await target.fdTargets?.().catch(() => undefined);
  const idle = await idleReturn(target, startRssBytes).catch(() => ({ startRssBytes, idleRssBytes: Number.NaN, afterMs: Number.NaN }));
  const death = await target.deathReason();
  if (fdsBefore !== undefined && fdsAfter !== undefined && after.fds > before.fds) log(`descriptors added: ${addedFds(fdsBefore, fdsAfter).join(", ")}`);
  return { before, after, lagMs: sampler.maxP99Ms, idle, death };
}

async function main(): Promise<number> {
  const tally = new Tally();
  const target = args.url !== undefined && args.token !== undefined ? await attachRemoteTarget(args.url, args.token) : await startLocalTarget();
  try {
    const { before, after, lagMs, idle, death } = await soak(target, tally);
    if (death !== undefined) log(death);
    const count = (n: number): string => (Number.isFinite(n) ? String(n) : "?");
    console.log(
      `soak: ${tally.requests} requests, ${tally.errors} errors, ${tally.lostBytes} lost bytes, ` +
        `rss ${mb(before.rssBytes)} MB -> ${mb(after.rssBytes)} MB, fds ${count(before.fds)} -> ${count(after.fds)}, ` +
        `event-loop lag p99 ${lagMs.toFixed(1)} ms, ` +
        `idle rss ${mb(idle.startRssBytes)} MB at start -> ${mb(idle.idleRssBytes)} MB ${Math.round(idle.afterMs / 1000)} s after the load`,
    );
    log(`by operation (ok/failed): ${tally.summary()}`);
    // Set now, so that the verdict stands even if the cleanup below never finishes.
    process.exitCode = tally.errors > 0 || tally.lostBytes > 0 || death !== undefined ? 1 : 0;
    return process.exitCode;
  } finally {
    await target.close().catch((err: unknown) => log(`cleanup failed: ${String(err)}`));
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
