/** Shared pieces of the Process tests: collecting a stream of process events, reading /proc. */
import { readFile, readdir } from "node:fs/promises";
import type { ProcessEvent, ProcessEvent_EndEvent } from "../../src/gen/sandboxagent/api_pb.js";
import { eventually } from "./agent.js";

type Stream = "stdout" | "stderr" | "pty";

/** Everything a Start/Connect stream delivered. Output is joined on demand (streams can be large). */
export class Collected {
  pid: number | undefined;
  end: ProcessEvent_EndEvent | undefined;
  /** Event kinds in arrival order, data split by stream: "start", "stdout", "keepalive", "end"… */
  readonly kinds: string[] = [];
  /** Each data frame as it arrived. */
  readonly frames: { stream: Stream; data: Uint8Array }[] = [];
  error: unknown;
  /** Output bytes so far, per stream (cheap to read after every event). */
  readonly bytes: Record<Stream, number> = { stdout: 0, stderr: 0, pty: 0 };
  private readonly chunks: Record<Stream, Uint8Array[]> = { stdout: [], stderr: [], pty: [] };
  private readonly joined: Partial<Record<Stream, Buffer>> = {};

  get stdout(): Buffer {
    return this.output("stdout");
  }

  get stderr(): Buffer {
    return this.output("stderr");
  }

  get pty(): Buffer {
    return this.output("pty");
  }

  add(stream: Stream, data: Uint8Array): void {
    this.chunks[stream].push(data);
    this.bytes[stream] += data.length;
    delete this.joined[stream];
    this.frames.push({ stream, data });
    this.kinds.push(stream);
  }

  private output(stream: Stream): Buffer {
    const cached = this.joined[stream];
    if (cached !== undefined) return cached;
    const chunks = this.chunks[stream];
    const buffer = Buffer.concat(chunks);
    // Keep one chunk from now on, so that reading after every event stays linear.
    chunks.length = 0;
    if (buffer.length > 0) chunks.push(buffer);
    this.joined[stream] = buffer;
    return buffer;
  }
}

export function emptyCollected(): Collected {
  return new Collected();
}

export function record(into: Collected, event: ProcessEvent | undefined): void {
  const ev = event?.event;
  if (ev === undefined || ev.case === undefined) return;
  switch (ev.case) {
    case "start":
      into.pid = ev.value.pid;
      into.kinds.push("start");
      break;
    case "data": {
      const { case: stream, value } = ev.value.output;
      if (stream !== undefined) into.add(stream, value);
      break;
    }
    case "end":
      into.end = ev.value;
      into.kinds.push("end");
      break;
    case "keepalive":
      into.kinds.push("keepalive");
      break;
  }
}

/** Reads a whole Start/Connect stream; an RPC error is kept in `error`, not thrown. */
export async function collect(stream: AsyncIterable<{ event?: ProcessEvent }>, onEvent?: (c: Collected) => void): Promise<Collected> {
  const into = emptyCollected();
  try {
    for await (const res of stream) {
      record(into, res.event);
      onEvent?.(into);
    }
  } catch (err) {
    into.error = err;
  }
  return into;
}

/**
 * Reads on from a subscriber that fell behind: it may still get output that was in flight, never
 * the end; then it must fail. Returns that failure for the caller to check its code and message.
 */
export async function errorAfterFallingBehind(stream: AsyncIterator<{ event?: ProcessEvent }>): Promise<unknown> {
  try {
    for (let next = await stream.next(); !next.done; next = await stream.next()) {
      if (next.value.event?.event.case === "end") return new Error("a dropped subscriber was sent the end");
    }
  } catch (err) {
    return err;
  }
  return new Error("a dropped subscriber's stream ended without an error");
}

/** State letter from /proc/<pid>/stat ("Z" for a zombie), or undefined when the pid is gone. */
export async function procState(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

/** Pids of every process whose process group is `pgid`. */
export async function groupMembers(pgid: number): Promise<number[]> {
  const members: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid) members.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return members;
}

/**
 * Resolves once `pid` runs `program` itself, past the launcher that starts it. Typing into a
 * terminal while the program is still being exec'd can hang the terminal up (node-pty, seen with
 * any launcher that execs: perl, sh; see the issue 14 note), so tests that end a terminal program
 * with its input wait for it first.
 */
export async function untilRunning(pid: number, program: string): Promise<void> {
  await eventually(async () => (await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "")).trim() === program, 10_000, 5);
}

/** Running, that is: present in /proc and not a zombie. */
export async function isRunning(pid: number): Promise<boolean> {
  const state = await procState(pid);
  return state !== undefined && state !== "Z";
}
