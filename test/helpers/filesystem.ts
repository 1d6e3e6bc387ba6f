/** Helpers shared by the Filesystem tests: error checks, a background WatchDir reader, inotify. */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { expect } from "vitest";
import { EventType, type Filesystem, type WatchDirResponse } from "../../src/gen/sandboxagent/api_pb.js";
import { AUTH, eventually, type TestAgent } from "./agent.js";
import { gaugesOf } from "./faults.js";

/** Awaits `call`, which must fail with `code` and a message matching every pattern. */
export async function expectConnectError(call: Promise<unknown>, code: Code, ...patterns: RegExp[]): Promise<ConnectError> {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${Code[code]}`).toBeInstanceOf(ConnectError);
  const err = caught as ConnectError;
  expect(Code[err.code]).toBe(Code[code]);
  for (const pattern of patterns) expect(err.rawMessage).toMatch(pattern);
  return err;
}

export interface SeenEvent {
  readonly name: string;
  readonly type: EventType;
}

/** A WatchDir call read in the background, with what has arrived so far. */
export class WatchStream {
  readonly messages: WatchDirResponse[] = [];
  /** Settles when the stream ends: undefined for a clean end, or the error it ended with. */
  readonly done: Promise<ConnectError | undefined>;
  private readonly abort = new AbortController();

  constructor(fs: Client<typeof Filesystem>, path: string, recursive: boolean, headers: Record<string, string> = {}) {
    const stream = fs.watchDir({ path, recursive }, { headers: { ...AUTH, ...headers }, signal: this.abort.signal });
    this.done = (async () => {
      try {
        for await (const message of stream) this.messages.push(message);
        return undefined;
      } catch (err) {
        return ConnectError.from(err);
      }
    })();
  }

  /** Resolves once `start` has arrived (the watch is ready); rejects if the stream ended instead. */
  async started(): Promise<void> {
    const ended = this.done.then((err) => {
      throw err ?? new Error("stream ended before start");
    });
    await Promise.race([eventually(() => this.messages.some((m) => m.event.case === "start")), ended]);
  }

  events(): SeenEvent[] {
    return this.messages.flatMap((m) => (m.event.case === "filesystem" ? [{ name: m.event.value.name, type: m.event.value.type }] : []));
  }

  has(name: string, type: EventType): boolean {
    return this.events().some((e) => e.name === name && e.type === type);
  }

  count(name: string, type: EventType): number {
    return this.events().filter((e) => e.name === name && e.type === type).length;
  }

  /** The client goes away. */
  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

/**
 * How many inotify watches this process holds on `dir`, read from the kernel's own table
 * (/proc/self/fdinfo of every inotify descriptor): it sees a leaked watcher whatever the agent's
 * bookkeeping believes.
 */
export function inotifyWatchesOn(dir: string): number {
  const inode = statSync(dir).ino.toString(16);
  return inotifyWatchLines().filter((line) => line.includes(` ino:${inode} `)).length;
}

/** How many inotify watches this process holds, on anything. */
export function inotifyWatchCount(): number {
  return inotifyWatchLines().length;
}

/** One "inotify wd:… ino:… " line per watch, over every inotify descriptor of this process. */
function inotifyWatchLines(): string[] {
  const lines: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (!target.includes("inotify")) continue;
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    } catch {
      continue;
    }
    for (const line of info.split("\n")) if (line.startsWith("inotify ")) lines.push(line);
  }
  return lines;
}

export { EventType };

/** The agent's own count of open watches, streamed and polled (its `watchers` gauge on /metrics). */
export async function watchersOpen(agent: TestAgent): Promise<number> {
  return (await gaugesOf(agent)).watchers;
}
