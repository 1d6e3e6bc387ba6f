/**
 * chokidar's events in the protocol's words, for one watch:
 *  - add/addDir → CREATE (and WRITE for a file that already holds bytes), unlink/unlinkDir →
 *    REMOVE, change → WRITE or CHMOD.
 *  - RENAME is never sent: chokidar does not pair inotify's rename halves, and reports a rename
 *    as unlink of the old name and add of the new one, which we pass on as REMOVE + CREATE (a
 *    move out of the watched tree is a REMOVE, a move in a CREATE). Clients reacting to
 *    create/remove stay correct; none can rely on RENAME from any fsnotify-style watcher anyway.
 *  - CHMOD: a change whose content did not move (same mtime and size) but whose mode or owner did.
 *    For a file we hold no earlier stats of (it predates the watch), a ctime newer than its mtime
 *    means only metadata changed. Directories' attribute changes are not reported (chokidar only
 *    rescans a directory on change), nor a chmod of a file read since its last write (chokidar
 *    drops a change whose atime is newer than its mtime).
 *
 * chokidar throttles a file's change events for 5 ms on the leading edge, with no trailing
 * event, and attaches a file's own watch only after reporting it: a write just after another, or
 * just after the file's creation, can go unseen. So after each add or change we look at the file
 * once more, shortly after, and report what moved meanwhile; the last write of a burst is never
 * lost that way. The coalescer folds the duplicates this may produce.
 */
import type { Stats } from "node:fs";
import { lstat } from "node:fs/promises";
import { posix } from "node:path";
import { EventType } from "../../gen/sandboxagent/api_pb.js";
import type { WatchEvent } from "./coalesce.js";

/** Longer than chokidar's 5 ms throttle, short next to the coalescing window. */
const SETTLE_MS = 20;

interface Seen {
  readonly mtimeMs: number;
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

const seenOf = (st: Stats): Seen => ({ mtimeMs: st.mtimeMs, size: st.size, mode: st.mode, uid: st.uid, gid: st.gid });

/** What changed between two looks at a file: nothing, a write, a metadata change, or both. */
function differences(before: Seen, after: Seen): EventType[] {
  const types: EventType[] = [];
  if (after.mtimeMs !== before.mtimeMs || after.size !== before.size) types.push(EventType.WRITE);
  if (after.mode !== before.mode || after.uid !== before.uid || after.gid !== before.gid) types.push(EventType.CHMOD);
  return types;
}

export class EventClassifier {
  /**
   * Last known stats of each file that was added or changed while watched: memory follows the
   * number of live files that changed, as chokidar's own bookkeeping does.
   */
  private readonly seen = new Map<string, Seen>();
  private readonly settling = new Map<string, NodeJS.Timeout>();
  private disposed = false;

  constructor(
    private readonly root: string,
    private readonly emit: (event: WatchEvent) => void,
  ) {}

  handle(event: string, name: string, st: Stats | undefined): void {
    switch (event) {
      case "add":
        if (st !== undefined) this.seen.set(name, seenOf(st));
        this.emit({ name, type: EventType.CREATE });
        // A file that already holds bytes was written after it was made, as inotify reports it
        // (IN_CREATE, then IN_MODIFY): envd's clients wait for that WRITE of a new file.
        if (st !== undefined && st.size > 0) this.emit({ name, type: EventType.WRITE });
        this.settleLater(name);
        return;
      case "addDir":
        this.emit({ name, type: EventType.CREATE });
        return;
      case "unlink":
      case "unlinkDir":
        this.forget(name);
        this.emit({ name, type: EventType.REMOVE });
        return;
      case "change":
        for (const type of this.changeTypes(name, st)) this.emit({ name, type });
        this.settleLater(name);
        return;
    }
  }

  dispose(): void {
    this.disposed = true;
    for (const timer of this.settling.values()) clearTimeout(timer);
    this.settling.clear();
    this.seen.clear();
  }

  private changeTypes(name: string, st: Stats | undefined): EventType[] {
    if (st === undefined) return [EventType.WRITE];
    const before = this.seen.get(name);
    this.seen.set(name, seenOf(st));
    if (before === undefined) return [st.ctimeMs > st.mtimeMs ? EventType.CHMOD : EventType.WRITE];
    const types = differences(before, seenOf(st));
    // Nothing visible moved: file times are coarse (a clock tick), so a same-size rewrite within
    // one tick looks like this. A write reported in vain costs less than one missed.
    return types.length > 0 ? types : [EventType.WRITE];
  }

  private settleLater(name: string): void {
    if (this.disposed || this.settling.has(name)) return;
    this.settling.set(
      name,
      setTimeout(() => void this.settle(name), SETTLE_MS),
    );
  }

  private async settle(name: string): Promise<void> {
    this.settling.delete(name);
    let st: Stats;
    try {
      st = await lstat(posix.join(this.root, name));
    } catch {
      return; // Gone: chokidar reports the unlink.
    }
    const before = this.seen.get(name);
    if (this.disposed || before === undefined) return;
    const now = seenOf(st);
    this.seen.set(name, now);
    for (const type of differences(before, now)) this.emit({ name, type });
  }

  private forget(name: string): void {
    this.seen.delete(name);
    const timer = this.settling.get(name);
    if (timer !== undefined) clearTimeout(timer);
    this.settling.delete(name);
  }
}
