/**
 * Watchers on a fresh directory of the client's own: the WatchDir stream, or the polled
 * CreateWatcher/GetWatcherEvents/RemoveWatcher. Once the watch is ready, a few entries are
 * created through the agent (MakeDir, or an upload); an event naming each must arrive, else the
 * operation fails with the names that never showed up. The watch is closed and the directory
 * removed afterwards.
 */
import { randomBytes } from "node:crypto";
import { Filesystem } from "../../../src/gen/sandboxagent/api_pb.js";
import { coin, randomInt } from "../random.js";
import type { OpContext, Operation } from "./context.js";

/** How long created entries may take to be reported, on a loaded machine. */
const EVENT_WAIT_MS = 15_000;
const POLL_INTERVAL_MS = 100;

/** Creates 1–4 entries in `dir` through the agent and returns their names. */
async function createEntries(ctx: OpContext, dir: string): Promise<string[]> {
  const names: string[] = [];
  for (let i = randomInt(1, 4); i > 0; i--) {
    const name = `entry-${i}-${randomBytes(4).toString("hex")}`;
    const path = `${dir}/${name}`;
    if (coin()) {
      await ctx.conn.client(Filesystem).makeDir({ path }, { signal: ctx.signal });
    } else {
      const boundary = `soak${randomBytes(8).toString("hex")}`;
      const body = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${path}"\r\n\r\n${name}\r\n--${boundary}--\r\n`);
      const res = await ctx.conn.http.request({
        version: coin() ? "1.1" : "2",
        method: "POST",
        path: "/upload",
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
        body,
        signal: ctx.signal,
      });
      if (res.status < 200 || res.status > 299) throw new Error(`upload into the watched directory answered ${res.status}`);
    }
    names.push(name);
  }
  return names;
}

function missing(expected: readonly string[], seen: ReadonlySet<string>): string[] {
  return expected.filter((name) => !seen.has(name));
}

async function viaStream(ctx: OpContext, dir: string): Promise<void> {
  const done = new AbortController();
  const events = ctx.conn
    .client(Filesystem)
    .watchDir({ path: dir }, { signal: AbortSignal.any([ctx.signal, done.signal]) })
    [Symbol.asyncIterator]();
  try {
    const first = await events.next();
    if (first.done || first.value.event.case !== "start") throw new Error("WatchDir did not begin with a start event");
    const names = await createEntries(ctx, dir);
    const seen = new Set<string>();
    const timer = setTimeout(() => done.abort(), EVENT_WAIT_MS);
    try {
      while (missing(names, seen).length > 0) {
        const next = await events.next();
        if (next.done) throw new Error(`WatchDir ended before reporting ${missing(names, seen).join(", ")}`);
        if (next.value.event.case === "filesystem") seen.add(next.value.event.value.name);
      }
    } catch (err) {
      if (done.signal.aborted && !ctx.signal.aborted) throw new Error(`WatchDir: no event for ${missing(names, seen).join(", ")} within ${EVENT_WAIT_MS} ms`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  } finally {
    done.abort(); // the client leaving is how a WatchDir ends
    await events.return?.().catch(() => undefined);
  }
}

async function viaPolling(ctx: OpContext, dir: string): Promise<void> {
  const fs = ctx.conn.client(Filesystem);
  const { watcherId } = await fs.createWatcher({ path: dir }, { signal: ctx.signal });
  const removeWatcher = (): Promise<unknown> => ctx.conn.client(Filesystem).removeWatcher({ watcherId }, { signal: ctx.signal });
  try {
    const names = await createEntries(ctx, dir);
    const seen = new Set<string>();
    const deadline = Date.now() + EVENT_WAIT_MS;
    while (missing(names, seen).length > 0) {
      if (Date.now() > deadline) throw new Error(`GetWatcherEvents: no event for ${missing(names, seen).join(", ")} within ${EVENT_WAIT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
      const { events } = await ctx.conn.client(Filesystem).getWatcherEvents({ watcherId }, { signal: ctx.signal });
      for (const event of events) seen.add(event.name);
    }
  } catch (err) {
    await removeWatcher().catch(() => undefined); // the first failure is the one worth reporting
    throw err;
  }
  await removeWatcher();
}

function watchOperation(name: string, watch: (ctx: OpContext, dir: string) => Promise<void>): Operation {
  return {
    name,
    weight: 1,
    async run(ctx) {
      const dir = ctx.freshPath("watch");
      await ctx.conn.client(Filesystem).makeDir({ path: dir }, { signal: ctx.signal });
      await watch(ctx, dir);
      await ctx.conn.client(Filesystem).remove({ path: dir }, { signal: ctx.signal });
    },
  };
}

export const watchStream = watchOperation("watch-stream", viaStream);
export const watchPolled = watchOperation("watch-polled", viaPolling);
