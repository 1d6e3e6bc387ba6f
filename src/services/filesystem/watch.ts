/**
 * Directory watching shared by WatchDir (a stream) and the polled watchers: one tree watcher
 * (inotify, tree-watcher.ts) per request, its events named relative to the watched directory, mapped to
 * the protocol's types (classify.ts) and coalesced (coalesce.ts). Consumers only see ordered
 * batches and an end. The watched directory itself being removed is a REMOVE named "", and ends
 * the watch.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { posix } from "node:path";
import { EventType } from "../../gen/sandboxagent/api_pb.js";
import { errnoOf, fsConnectError } from "../../errors.js";
import type { FileAccess, FileStats } from "../../user-fs/access.js";
import { EventClassifier } from "./classify.js";
import { Coalescer, type WatchEvent } from "./coalesce.js";
import { TreeWatcher, type TreeHooks } from "./tree-watcher.js";

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

  let tree: TreeWatcher | undefined;
  let closing: Promise<void> | undefined;
  const coalescer = new Coalescer((batch) => sink.events(batch));
  const classifier = new EventClassifier((event) => coalescer.push(event));
  /** Stops once, telling the sink why; `flush` first delivers what the window still holds. */
  const finish = (reason: ConnectError | undefined, flush: boolean): Promise<void> => {
    if (closing !== undefined) return closing;
    classifier.dispose();
    if (flush) coalescer.flush();
    coalescer.dispose();
    sink.ended(reason);
    tree?.close();
    onClose(watch);
    closing = Promise.resolve();
    return closing;
  };
  const watch: Watch = { path, close: (reason) => finish(reason, false) };
  const end = (error?: ConnectError): void => void finish(error, true);

  // For a caller other than root, each event waits for its directory's verdict, in a chain, so
  // that events still reach the classifier in the order they happened.
  const admit = access.asAgent ? undefined : listableBy(access);
  let inOrder = Promise.resolve();
  const hooks: TreeHooks = {
    event: (event, absolute, stats) => {
      if (closing !== undefined) return;
      const name = posix.relative(path, absolute);
      // The watched directory itself is gone (or replaced): say so (REMOVE of "") and end.
      if (name === "") {
        coalescer.push({ name: "", type: EventType.REMOVE });
        end();
      } else if (admit === undefined) classifier.handle(event, name, stats);
      else {
        const dir = posix.dirname(absolute);
        inOrder = inOrder.then(async () => {
          if ((await admit(dir)) && closing === undefined) classifier.handle(event, name, stats);
        });
      }
    },
    error: (err) => end(watchError(err, path)),
  };
  const opening = TreeWatcher.open(path, st, recursive, hooks, () => closing !== undefined || signal?.aborted === true);
  try {
    tree = await unlessAborted(opening, signal);
  } catch (err) {
    const error = signal?.aborted ? ConnectError.from(signal.reason, Code.Canceled) : watchError(err, path);
    await watch.close(error);
    // A setup that completes after all the same is closed at once.
    opening.then(
      (late) => late.close(),
      () => undefined,
    );
    throw error;
  }
  if (closing !== undefined) tree?.close();
  return watch;
}

/** `ready`, or a rejection with the signal's reason as soon as it aborts. */
function unlessAborted<T>(ready: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return ready;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    ready.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function watchError(err: unknown, path: string): ConnectError {
  // inotify says ENOSPC when the per-user watch limit is reached, not when the disk is full.
  if (errnoOf(err) === "ENOSPC") {
    return new ConnectError(`out of resources: watch ${path}: inotify watch limit reached (raise fs.inotify.max_user_watches)`, Code.ResourceExhausted);
  }
  return fsConnectError(err, "watch", path);
}
