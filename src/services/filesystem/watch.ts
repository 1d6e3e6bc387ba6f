/**
 * Directory watching shared by WatchDir (a stream) and the polled watchers: one chokidar
 * (inotify) watcher per request, its events named relative to the watched directory, mapped to
 * the protocol's types (classify.ts) and coalesced (coalesce.ts). Consumers only see ordered
 * batches and an end. The watched directory itself being removed is a REMOVE named "", and ends
 * the watch.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { FSWatcher, type ChokidarOptions } from "chokidar";
import { stat } from "node:fs/promises";
import { posix } from "node:path";
import { EventType } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, fsConnectError } from "../../errors.js";
import type { FileAccess, FileStats } from "../../user-fs/access.js";
import { EventClassifier } from "./classify.js";
import { Coalescer, type WatchEvent } from "./coalesce.js";

export type { WatchEvent } from "./coalesce.js";

export interface WatchSink {
  /** Coalesced events, in the order they happened. */
  readonly events: (batch: readonly WatchEvent[]) => void;
  /** The watch stopped on its own: the directory went away (no error), or watching failed. */
  readonly ended: (error?: ConnectError) => void;
}

export interface Watch {
  readonly path: string;
  /**
   * Stops watching and releases the inotify watches; safe to call more than once. The sink hears
   * `ended(reason)` unless the watch had already ended.
   */
  readonly close: (reason?: ConnectError) => Promise<void>;
}

/** The watches one service instance opened, so that disposing the service closes them all. */
export class WatchGroup {
  private readonly watches = new Set<Watch>();

  /**
   * Starts watching `path` and resolves once the watcher is ready (every existing directory is
   * being watched), so nothing that happens after that is missed. A missing path is `not_found`,
   * anything but a directory `invalid_argument`. `signal` (the request's) stops the setup: the
   * scan of a large tree takes seconds, and must neither outlive a caller who left nor hold back
   * the answer to a deadline; the watch is then closed and the signal's reason thrown.
   */
  async open(access: FileAccess, path: string, recursive: boolean, sink: WatchSink, signal?: AbortSignal): Promise<Watch> {
    const watch = await openWatch(access, path, recursive, sink, (closed) => this.watches.delete(closed), signal);
    this.watches.add(watch);
    return watch;
  }

  /** Watches open now, streamed and polled alike. */
  get size(): number {
    return this.watches.size;
  }

  async closeAll(): Promise<void> {
    const reason = new ConnectError("the agent is shutting down", Code.Unavailable);
    await Promise.allSettled([...this.watches].map((watch) => watch.close(reason)));
  }
}

/** How many directories' verdicts one watch remembers (see `listableBy`). */
const VERDICTS_MAX = 10_000;

/**
 * Whether the caller may list a directory, asked of the caller's own file worker once per
 * directory. inotify itself runs as the agent, so a recursive watch sees into directories the
 * caller could not read; their events are not the caller's to see. A directory already gone is
 * admitted (its last events are removals of names the caller saw appear, or could not learn of).
 */
function listableBy(access: FileAccess): (dir: string) => Promise<boolean> {
  const verdicts = new Map<string, Promise<boolean>>();
  return (dir) => {
    let verdict = verdicts.get(dir);
    if (verdict === undefined) {
      if (verdicts.size >= VERDICTS_MAX) verdicts.clear();
      verdict = access.openDir(dir).then(
        () => true,
        (err: unknown) => errnoOf(err) === "ENOENT",
      );
      verdicts.set(dir, verdict);
    }
    return verdict;
  };
}

async function openWatch(
  access: FileAccess,
  path: string,
  recursive: boolean,
  sink: WatchSink,
  onClose: (watch: Watch) => void,
  signal: AbortSignal | undefined,
): Promise<Watch> {
  let st: FileStats;
  try {
    st = await access.stat(path);
    if (!st.isDirectory()) throw new ConnectError(`invalid path: watch ${path}: not a directory`, Code.InvalidArgument);
    // Watching a directory tells what is in it: only for a caller who may list it.
    if (!access.asAgent) await access.openDir(path);
  } catch (err) {
    throw fsConnectError(err, "watch", path);
  }

  const watcher = watchOnce(path, {
    ignoreInitial: true,
    // Promptness comes first; the coalescer, not chokidar's delays, keeps bursts small.
    atomic: false,
    awaitWriteFinish: false,
    alwaysStat: true,
    // Never descend through symlinks: a link to an ancestor would otherwise recurse forever.
    followSymlinks: false,
    ignorePermissionErrors: true,
    ...(recursive ? {} : { depth: 0 }),
  });

  let closing: Promise<void> | undefined;
  const coalescer = new Coalescer((batch) => sink.events(batch));
  const classifier = new EventClassifier(path, (event) => coalescer.push(event));
  /** Stops once, telling the sink why; `flush` first delivers what the window still holds. */
  const finish = (reason: ConnectError | undefined, flush: boolean): Promise<void> => {
    if (closing !== undefined) return closing;
    classifier.dispose();
    if (flush) coalescer.flush();
    coalescer.dispose();
    sink.ended(reason);
    closing = (async () => {
      onClose(watch);
      await watcher.close();
    })();
    return closing;
  };
  const watch: Watch = { path, close: (reason) => finish(reason, false) };
  const end = (error?: ConnectError): void => void finish(error, true);

  let ready = false;
  const whenReady = new Promise<void>((resolve, reject) => {
    watcher.once("ready", () => {
      ready = true;
      resolve();
    });
    // Registered for the watcher's whole life: an emitter without an error listener throws.
    watcher.on("error", (err) => {
      if (ready) end(watchError(err, path));
      else reject(err);
    });
  });
  try {
    await unlessAborted(whenReady, signal);
  } catch (err) {
    const error = signal?.aborted ? ConnectError.from(signal.reason, Code.Canceled) : watchError(err, path);
    await watch.close(error);
    throw error;
  }

  /** The watched directory itself is gone: say so (REMOVE of "") and end. */
  const rootGone = (): void => {
    if (closing !== undefined) return;
    coalescer.push({ name: "", type: EventType.REMOVE });
    end();
  };
  // For a caller other than root, each event waits for its directory's verdict, in a chain, so
  // that events still reach the classifier in the order they happened.
  const admit = access.asAgent ? undefined : listableBy(access);
  let inOrder = Promise.resolve();
  watcher.on("all", (event, absolute, stats) => {
    if (closing !== undefined) return;
    const name = posix.relative(path, absolute);
    if (name === "" && event === "unlinkDir") rootGone();
    else if (admit === undefined) classifier.handle(event, name, stats);
    else {
      const dir = posix.dirname(absolute);
      inOrder = inOrder.then(async () => {
        if ((await admit(dir)) && closing === undefined) classifier.handle(event, name, stats);
      });
    }
  });
  // chokidar reports the root's removal only when it had children to rescan; an empty directory
  // going away shows up solely as a raw event named after itself on its own watch. Confirm with
  // a stat: gone, or replaced by another directory (our watch is on the old one), ends the watch.
  const rootName = posix.basename(path);
  watcher.on("raw", (_event, filename, details) => {
    if (closing !== undefined || filename !== rootName || !isWatchOf(details, path)) return;
    stat(path).then(
      (now) => {
        if (now.ino !== st.ino || now.dev !== st.dev) rootGone();
      },
      (err: unknown) => {
        if (errnoOf(err) === "ENOENT" || errnoOf(err) === "ENOTDIR") rootGone();
      },
    );
  });
  return watch;
}

/** `ready`, or a rejection with the signal's reason as soon as it aborts. */
function unlessAborted(ready: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return ready;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    ready.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * chokidar 4.0.3 reopens a closed watcher: when a watched path goes away it may call its own
 * `add` (to "watch for its return") after `close()`, and `add` clears the closed state. Closing
 * the watch when its root is removed does exactly that: the late `add` watched the parent
 * directory, a handle nobody closes, which kept the agent's process from ever exiting. A watcher
 * that was closed refuses to be added to again.
 */
class ClosedStaysClosed extends FSWatcher {
  private closedForGood = false;

  override add(...args: Parameters<FSWatcher["add"]>): FSWatcher {
    return this.closedForGood ? this : super.add(...args);
  }

  override close(): Promise<void> {
    this.closedForGood = true;
    return super.close();
  }
}

function watchOnce(path: string, options: ChokidarOptions): FSWatcher {
  return new ClosedStaysClosed(options).add(path);
}

const isWatchOf = (details: unknown, path: string): boolean =>
  typeof details === "object" && details !== null && "watchedPath" in details && details.watchedPath === path;

function watchError(err: unknown, path: string): ConnectError {
  // inotify says ENOSPC when the per-user watch limit is reached, not when the disk is full.
  if (errnoOf(err) === "ENOSPC") {
    return new ConnectError(`out of resources: watch ${path}: inotify watch limit reached (raise fs.inotify.max_user_watches)`, Code.ResourceExhausted);
  }
  return fsConnectError(err, "watch", path);
}
