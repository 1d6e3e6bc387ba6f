/**
 * Fault: a client that stops reading. The agent must not buffer what it cannot send: a download
 * stalls at what the socket buffers hold, a process whose only subscriber takes nothing is paused
 * (its pipe fills and it blocks), and a subscriber behind a faster one is cut off at its bound
 * (16 MiB, src/services/process/limits.ts) with resource_exhausted while the fast one gets every
 * byte. The agent's resident memory stays far below what would have been sent, other clients are
 * served meanwhile, and once the stalled client goes away everything it held is released.
 *
 * test/integration/process/lifecycle.test.ts covers the fast/slow subscriber pair over HTTP/2; this file runs
 * it over HTTP/1.1 (backpressure through TCP rather than HTTP/2 windows) and adds the memory bound
 * and the accounting. The 30 s stall cut-off of a lone subscriber is not waited for here: a lone
 * subscriber's stall pauses the process, which is what is checked.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { readFile, truncate, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { connect as tcpConnect, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Process, type StartRequestSchema } from "../../../src/gen/sandboxagent/api_pb.js";
import { rssOf } from "../../../harness/probe.js";
import { AUTH, eventually, startTestAgent, tempDir, type TestAgent } from "../../helpers/agent.js";
import { downloadPath, openDescriptors } from "../../helpers/form.js";
import { collect, errorAfterFallingBehind } from "../../helpers/process.js";
import {
  baselineOf,
  clientsOver,
  expectBackToBaseline,
  eventuallyValue,
  expectServesOthers,
  getOnce,
  isRunning,
  withClients,
  type Held,
  type Transport,
} from "../../helpers/faults.js";

const MiB = 1024 * 1024;
/** The download a client never reads: sparse, so it costs no disk however large. */
const LARGE_FILE = 256 * MiB;
/** What a process whose only subscriber never reads would write if nothing held it back. */
const LARGE_OUTPUT = 128 * MiB;
/**
 * What a stalled client may cost the agent in resident memory, and how far the stalled flow may
 * get. Socket buffers on loopback hold a few MiB, the process pipeline pauses at 1 MiB per
 * subscriber (PAUSE_BYTES), heap noise is a few MiB more: 64 MiB is far above that, and far below
 * a copy of the file or of the output.
 */
const BOUND = 64 * MiB;

let agent: TestAgent;
let scratch: { path: string; cleanup: () => Promise<void> };
let baseline: Held;

beforeAll(async () => {
  agent = await startTestAgent({ kernelPoolSize: 0 });
  scratch = await tempDir("agent-fault-slow-");
  // Warm-up: a download, and a process streamed over each transport used below.
  const warm = join(scratch.path, "warm.txt");
  await writeFile(warm, "warm");
  expect((await getOnce(agent.url, downloadPath(warm), AUTH)).body).toBe("warm");
  for (const transport of ["h1", "h2"] as const) {
    await withClients(agent.url, transport, async (clients) => {
      await collect(clients.of(Process).start({ process: { cmd: "true", args: [], envs: {} } }, { headers: AUTH }));
    });
  }
  await expectServesOthers(agent);
  baseline = await baselineOf(agent);
});

afterAll(async () => {
  await agent?.close();
  await scratch?.cleanup();
});

/**
 * Waits until the flow `read` measures has started (a non-zero value) and then stopped: the same
 * value three times in a row, 200 ms apart. (A flow merely slowed down by a busy machine may pass
 * for stopped; every check made after this holds either way.)
 */
async function flowedThenStalled(read: () => Promise<number>): Promise<number> {
  await eventually(async () => (await read()) > 0, 30_000);
  const seen: number[] = [];
  const { value } = await eventuallyValue(
    async () => {
      seen.push(await read());
      await new Promise((resolve) => setTimeout(resolve, 200));
      const last = seen.slice(-3);
      return last.length === 3 && last.every((v) => v === last[0]) ? { value: last[0]! } : undefined;
    },
    30_000,
    0,
  );
  return value;
}

/** Bytes queued in the kernel on a loopback TCP connection, both ends: what is in flight on it. */
async function queuedOnConnection(clientPort: number): Promise<number> {
  const table = await readFile("/proc/net/tcp", "utf8");
  let total = 0;
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5) continue;
    const local = Number.parseInt(fields[1]!.split(":")[1]!, 16);
    const remote = Number.parseInt(fields[2]!.split(":")[1]!, 16);
    if (local !== clientPort && remote !== clientPort) continue;
    const [tx, rx] = fields[4]!.split(":").map((hex) => Number.parseInt(hex, 16));
    total += tx! + rx!;
  }
  return total;
}

/** Bytes a process has written so far (/proc/<pid>/io), to see it stop. */
async function writtenBy(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, "utf8");
  return Number(/^wchar: (\d+)$/m.exec(io)?.[1] ?? Number.NaN);
}

describe.each(["h1", "h2"] as const)("a download whose client never reads (%s)", (transport) => {
  it("stalls at what the socket holds, keeps memory bounded, serves others, and closes the file when the client goes", async () => {
    const path = join(scratch.path, `large-${transport}.bin`);
    // Sparse: 256 MiB of zeros that cost no disk.
    await writeFile(path, "");
    await truncate(path, LARGE_FILE);
    const rssBefore = await rssOf(process.pid);

    let clientPort: number;
    /** Bytes the client's runtime received and holds unread (HTTP/2 keeps a window's worth). */
    let heldByClient: () => number;
    let leave: () => void;
    if (transport === "h1") {
      const socket: Socket = tcpConnect(agent.port, "127.0.0.1");
      socket.on("error", () => undefined);
      await new Promise((resolve) => socket.once("connect", resolve));
      // Nothing ever reads: no 'data' listener, so node stops reading once its small buffer is full.
      socket.pause();
      socket.write(`GET ${downloadPath(path)} HTTP/1.1\r\nHost: x\r\nX-Access-Token: ${AUTH["x-access-token"]}\r\n\r\n`);
      clientPort = socket.localPort!;
      heldByClient = () => socket.readableLength;
      leave = () => socket.destroy();
    } else {
      const session = http2.connect(agent.url);
      session.on("error", () => undefined);
      const stream = session.request({ ":path": downloadPath(path), ...AUTH });
      stream.on("error", () => undefined);
      stream.pause();
      await new Promise((resolve) => session.once("connect", resolve));
      clientPort = session.socket.localPort!;
      heldByClient = () => stream.readableLength;
      leave = () => session.destroy();
    }
    await eventually(async () => (await openDescriptors(path)) === 1);
    const inFlight = await flowedThenStalled(async () => (await queuedOnConnection(clientPort)) + heldByClient());

    // Stalled well short of the file: the agent waits for the client instead of reading ahead.
    expect(inFlight).toBeLessThan(BOUND);
    expect((await rssOf(process.pid)) - rssBefore).toBeLessThan(BOUND);
    expect(await openDescriptors(path)).toBe(1);

    // Others are served meanwhile, a complete download included.
    await expectServesOthers(agent);
    const small = join(scratch.path, `small-${transport}.txt`);
    await writeFile(small, "x".repeat(100_000));
    expect((await getOnce(agent.url, downloadPath(small), AUTH)).body.length).toBe(100_000);

    leave();
    await eventually(async () => (await openDescriptors(path)) === 0);
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});

const flood = (bytes: number, tag: string): MessageInitShape<typeof StartRequestSchema> => ({
  process: { cmd: "/bin/sh", args: ["-c", `read go; head -c ${bytes} /dev/zero`], envs: {} },
  tag,
});
const byTag = (tag: string) => ({ selector: { case: "tag" as const, value: tag } });
const go = { input: { case: "stdin" as const, value: new TextEncoder().encode("\n") } };

describe.each(["h1", "h2"] as const)("a process whose only subscriber never reads (%s)", (transport: Transport) => {
  it("is paused instead of buffered, and runs to its end once the subscriber leaves", async () => {
    const tag = `paused-${transport}`;
    const rssBefore = await rssOf(process.pid);
    const stalled = clientsOver(agent.url, transport);
    // Takes the start event, then never asks for more.
    const events = stalled.of(Process).start(flood(LARGE_OUTPUT, tag), { headers: AUTH })[Symbol.asyncIterator]();
    const first = (await events.next()).value?.event?.event;
    expect(first?.case).toBe("start");
    const pid = first?.case === "start" ? first.value.pid : Number.NaN;

    await withClients(agent.url, "h2", async (others) => {
      await others.of(Process).sendInput({ process: byTag(tag), input: go }, { headers: AUTH });
    });
    // `sh` ran `head` in its process group; the writer is whichever member writes: sum them.
    const written = await flowedThenStalled(async () => (await writtenBy(pid).catch(() => 0)) + (await childrenWritten(pid)));
    expect(written).toBeLessThan(BOUND);
    expect(await isRunning(pid)).toBe(true);
    expect((await rssOf(process.pid)) - rssBefore).toBeLessThan(BOUND);
    await expectServesOthers(agent);

    // The subscriber leaves: nobody holds the process back any more, it writes to the end.
    stalled.close();
    await events.return?.(undefined).catch(() => undefined);
    await withClients(agent.url, "h2", async (others) => {
      const end = await collect(others.of(Process).connect({ process: byTag(tag) }, { headers: AUTH }));
      expect(end.error).toBeUndefined();
      expect(end.end).toMatchObject({ exitCode: 0, status: "exit status 0" });
    });
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});

/** Bytes written by the direct children of `pid` (the `head` that `sh` started). */
async function childrenWritten(pid: number): Promise<number> {
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "")).trim().split(/\s+/).filter(Boolean);
  let total = 0;
  for (const child of children) total += await writtenBy(Number(child)).catch(() => 0);
  return total;
}

describe("two subscribers over HTTP/1.1, one that stops reading", () => {
  it("gives the reader every byte and cuts the other off with resource_exhausted, then leaves nothing", async () => {
    // Enough for the slow one to fall 16 MiB behind past what the sockets between them buffer.
    const size = 48 * MiB;
    const tag = "pair-h1";
    await withClients(agent.url, "h2", async (control) => {
      const processes = control.of(Process);
      // Started and left waiting for its go, with no subscriber yet.
      const starter = new AbortController();
      await collect(processes.start(flood(size, tag), { headers: AUTH, signal: starter.signal }), (so) => {
        if (so.pid !== undefined) starter.abort();
      });

      const slowClients = clientsOver(agent.url, "h1");
      const readerClients = clientsOver(agent.url, "h1");
      try {
        const slow = slowClients
          .of(Process)
          .connect({ process: byTag(tag) }, { headers: AUTH })
          [Symbol.asyncIterator]();
        expect((await slow.next()).value?.event?.event.case).toBe("start");

        let attached!: () => void;
        const ready = new Promise<void>((resolve) => (attached = resolve));
        const reading = collect(readerClients.of(Process).connect({ process: byTag(tag) }, { headers: AUTH }), (so) => {
          if (so.pid !== undefined) attached();
        });
        await ready;
        await processes.sendInput({ process: byTag(tag), input: go }, { headers: AUTH });
        await expectServesOthers(agent);

        const got = await reading;
        expect(got.error).toBeUndefined();
        expect(got.stdout.length).toBe(size);
        expect(got.end).toMatchObject({ exitCode: 0, status: "exit status 0" });

        // The slow one reads again: what was already in flight, then the reason it was dropped.
        const error = await errorAfterFallingBehind(slow);
        expect(error).toBeInstanceOf(ConnectError);
        expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
        expect((error as ConnectError).rawMessage).toContain("fell behind by more than 16 MiB");
      } finally {
        slowClients.close();
        readerClients.close();
      }
    });
    await expectServesOthers(agent);
    await expectBackToBaseline(agent, baseline);
  });
});
