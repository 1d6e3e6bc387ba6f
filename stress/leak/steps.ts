/**
 * The operations one leak-check cycle repeats, each a complete client conversation that must end
 * the way a well-behaved SDK ends it: streams read to their end event or cancelled, contexts and
 * watchers destroyed. Each throws with a one-line reason when the agent answers wrongly, so a
 * failed cycle says what failed. Only harmless commands run (echo, sh with a fixed script), and
 * only files inside the scratch directories given by the caller are written.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { EventType, type ProcessEvent } from "../../src/gen/sandboxagent/api_pb.js";
import type { Clients } from "./clients.js";

/** Per call: generous for a shared 2-core machine, short enough to call a hang a hang. */
const CALL_TIMEOUT_MS = 30_000;
/** How often a polled watcher is asked for its events while the step waits for one. */
const POLL_INTERVAL_MS = 20;

export interface StepContext {
  readonly clients: Clients;
  readonly token: string;
  readonly cycle: number;
}

const options = (ctx: StepContext, extra: { signal?: AbortSignal } = {}) => ({
  headers: { "x-access-token": ctx.token },
  timeoutMs: CALL_TIMEOUT_MS,
  ...extra,
});

/** What a Start or Connect stream delivered, read to its end. */
interface ProcessOutcome {
  pid: number | undefined;
  output: string;
  end: { exitCode: number; status: string } | undefined;
}

async function readProcess(
  stream: AsyncIterable<{ event?: ProcessEvent }>,
  into: ProcessOutcome = { pid: undefined, output: "", end: undefined },
): Promise<ProcessOutcome> {
  for await (const message of stream) {
    const event = message.event?.event;
    if (event?.case === "start") into.pid = event.value.pid;
    else if (event?.case === "data" && event.value.output.case !== undefined) into.output += Buffer.from(event.value.output.value).toString("utf8");
    else if (event?.case === "end") into.end = { exitCode: event.value.exitCode, status: event.value.status };
  }
  return into;
}

function expectEnd(what: string, got: ProcessOutcome, expected: string | RegExp): void {
  if (got.end === undefined) throw new Error(`${what}: stream ended without an end event`);
  if (got.end.exitCode !== 0) throw new Error(`${what}: exit ${got.end.exitCode} (${got.end.status}), output ${JSON.stringify(got.output)}`);
  const ok = typeof expected === "string" ? got.output === expected : expected.test(got.output);
  if (!ok) throw new Error(`${what}: output ${JSON.stringify(got.output)}, expected ${String(expected)}`);
}

/** Process/Start of a short command, with a tag, read to its end event. */
export async function startEcho(ctx: StepContext): Promise<void> {
  const word = `cycle-${ctx.cycle}`;
  const stream = ctx.clients.process.start({ process: { cmd: "echo", args: [word], envs: {} }, tag: `leak-echo-${ctx.cycle}` }, options(ctx));
  expectEnd("start echo", await readProcess(stream), `${word}\n`);
}

/** The same in a terminal: forkpty, the terminal's master side, node-pty's exit watch. */
export async function startPty(ctx: StepContext): Promise<void> {
  const word = `pty-${ctx.cycle}`;
  const stream = ctx.clients.process.start({ process: { cmd: "echo", args: [word], envs: {} }, pty: { size: { cols: 80, rows: 24 } } }, options(ctx));
  expectEnd("start pty", await readProcess(stream), new RegExp(`^${word}\\r?\\n$`));
}

/**
 * A process that waits for a line: started by one call, attached to by a second (Connect), fed
 * through a third (SendInput). Both streams must see the answer and the end.
 */
export async function attach(ctx: StepContext): Promise<void> {
  const { process } = ctx.clients;
  const tag = `leak-attach-${ctx.cycle}`;
  const word = `line-${ctx.cycle}`;
  const started = process.start({ process: { cmd: "sh", args: ["-c", 'read x; echo "got $x"'], envs: {} }, tag }, options(ctx))[Symbol.asyncIterator]();
  const first = await started.next();
  if (first.done === true || first.value.event?.event.case !== "start") throw new Error("attach: Start did not begin with a start event");
  const startOutcome = readProcess({ [Symbol.asyncIterator]: () => started });
  startOutcome.catch(() => undefined); // awaited below; a failure before that must not go unhandled

  const attached = process.connect({ process: { selector: { case: "tag", value: tag } } }, options(ctx))[Symbol.asyncIterator]();
  const hello = await attached.next();
  if (hello.done === true || hello.value.event?.event.case !== "start") throw new Error("attach: Connect did not begin with a start event");
  const pid = hello.value.event.event.value.pid;
  // Connect subscribed before its start event: what the process prints from here on reaches it.
  await process.sendInput(
    { process: { selector: { case: "pid", value: pid } }, input: { input: { case: "stdin", value: Buffer.from(`${word}\n`) } } },
    options(ctx),
  );
  const [viaConnect, viaStart] = await Promise.all([
    readProcess({ [Symbol.asyncIterator]: () => attached }, { pid, output: "", end: undefined }),
    startOutcome,
  ]);
  expectEnd("attach (Connect)", viaConnect, `got ${word}\n`);
  expectEnd("attach (Start)", viaStart, `got ${word}\n`);
}

/** Runs `code` in a context and returns its stdout and the text of its results. */
async function run(ctx: StepContext, contextId: string, code: string): Promise<{ stdout: string; results: string[] }> {
  const out = { stdout: "", results: [] as string[] };
  for await (const message of ctx.clients.execution.execute({ contextId, code, language: "python", envVars: {} }, options(ctx))) {
    const event = message.event;
    if (event.case === "stdout") out.stdout += event.value.content;
    else if (event.case === "result") out.results.push(event.value.text);
    else if (event.case === "error") throw new Error(`execute: ${event.value.name}: ${event.value.value}`);
  }
  return out;
}

/** A small Python cell in the long-lived context: output, a result, and state kept across cycles. */
export async function execute(ctx: StepContext, contextId: string): Promise<void> {
  const n = ctx.cycle;
  const got = await run(ctx, contextId, `n = ${n}\ncount = globals().get("count", 0) + 1\nprint(f"cycle-{n}")\nn * 2`);
  if (got.stdout !== `cycle-${n}\n` || got.results.join() !== String(n * 2)) {
    throw new Error(`execute: stdout ${JSON.stringify(got.stdout)}, results ${JSON.stringify(got.results)}`);
  }
}

/** The pid of the context's kernel, so the final comparison knows which kernel must survive. */
export async function kernelPid(ctx: StepContext, contextId: string): Promise<number> {
  const got = await run(ctx, contextId, "import os\nprint(os.getpid())");
  const pid = Number(got.stdout.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`kernel pid: got ${JSON.stringify(got.stdout)}`);
  return pid;
}

export async function createContext(ctx: StepContext, cwd: string): Promise<string> {
  const context = await ctx.clients.contexts.createContext({ language: "python", cwd }, options(ctx));
  if (context.id === "") throw new Error("create context: empty id");
  return context.id;
}

export async function destroyContext(ctx: StepContext, contextId: string): Promise<void> {
  const answer = await ctx.clients.contexts.destroyContext({ contextId }, options(ctx));
  if (!answer.success) throw new Error(`destroy context ${contextId}: success false`);
}

/** A context for one execution: CreateContext (takes the warm kernel), Execute, DestroyContext. */
export async function contextRoundTrip(ctx: StepContext, cwd: string): Promise<void> {
  const id = await createContext(ctx, cwd);
  try {
    const got = await run(ctx, id, "import os\nprint(os.getcwd())");
    if (got.stdout.trim() !== cwd) throw new Error(`context: cwd ${JSON.stringify(got.stdout)}, expected ${cwd}`);
  } finally {
    await destroyContext(ctx, id);
  }
}

/**
 * WatchDir on `dir`: once `start` arrives a new file is written; with `awaitEvent` the client waits
 * for its CREATE, otherwise it cancels at once, while the event still sits in the agent's
 * coalescing window (the path where a pending timer must die with the watch). The file is removed
 * after the stream is gone, so the directory stays small (every watch's setup scans it).
 */
export async function watchStream(ctx: StepContext, dir: string, awaitEvent: boolean): Promise<void> {
  const name = `f-${ctx.cycle}`;
  const abort = new AbortController();
  let done = false;
  try {
    const stream = ctx.clients.fs.watchDir({ path: dir, recursive: false }, options(ctx, { signal: abort.signal }));
    for await (const message of stream) {
      const event = message.event;
      if (event.case === "start") {
        await writeFile(join(dir, name), "x");
        done = !awaitEvent;
      } else if (event.case === "filesystem" && event.value.name === name && event.value.type === EventType.CREATE) {
        done = true;
      }
      if (done) {
        abort.abort();
        break;
      }
    }
  } catch (err) {
    if (!(done && ConnectError.from(err).code === Code.Canceled)) throw new Error(`watch: ${ConnectError.from(err).message}`);
  }
  if (!done) throw new Error(awaitEvent ? "watch: stream ended without the CREATE" : "watch: stream ended before start");
  await unlink(join(dir, name));
}

/** CreateWatcher, a new file, GetWatcherEvents until its CREATE shows, RemoveWatcher. */
export async function watchPolled(ctx: StepContext, dir: string): Promise<void> {
  const { fs } = ctx.clients;
  const name = `p-${ctx.cycle}`;
  const { watcherId } = await fs.createWatcher({ path: dir, recursive: false }, options(ctx));
  try {
    await writeFile(join(dir, name), "x");
    const deadline = Date.now() + CALL_TIMEOUT_MS;
    for (;;) {
      const { events } = await fs.getWatcherEvents({ watcherId }, options(ctx));
      if (events.some((e) => e.name === name && e.type === EventType.CREATE)) break;
      if (Date.now() > deadline) throw new Error(`polled watch: no CREATE of ${name} within ${CALL_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
  } finally {
    await fs.removeWatcher({ watcherId }, options(ctx));
  }
  await unlink(join(dir, name));
}
