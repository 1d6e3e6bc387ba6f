/**
 * The tree watcher's events (tree-watcher.ts) in the protocol's words, for one watch:
 *  - add/addDir → CREATE (and WRITE for a file that already holds bytes), unlink/unlinkDir →
 *    REMOVE, change → WRITE or CHMOD.
 *  - RENAME is never sent: Node's inotify watch does not say which two names a rename joined
 *    (it drops inotify's cookie), so a rename arrives as the old name gone and the new one there,
 *    which we pass on as REMOVE + CREATE (a move out of the watched tree is a REMOVE, a move in a
 *    CREATE). Clients reacting to create/remove stay correct.
 *  - CHMOD: a change whose content did not move (same mtime and size) but whose mode or owner did.
 *    For a file we hold no earlier stats of (it predates the watch), a ctime newer than its mtime
 *    means only metadata changed. Directories' attribute changes are not reported.
 *
 * The watcher looks at a name after each of its inotify events, so the last write of a burst is
 * always seen; the coalescer folds the rest of the burst.
 */
import type { Stats } from "node:fs";
import { EventType } from "../../gen/sandboxagent/api_pb.js";
import type { WatchEvent } from "./coalesce.js";

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
   * number of live files that changed.
   */
  private readonly seen = new Map<string, Seen>();

  constructor(private readonly emit: (event: WatchEvent) => void) {}

  handle(event: string, name: string, st: Stats | undefined): void {
    switch (event) {
      case "add":
        if (st !== undefined) this.seen.set(name, seenOf(st));
        this.emit({ name, type: EventType.CREATE });
        // A file that already holds bytes was written after it was made, as inotify reports it
        // (IN_CREATE, then IN_MODIFY): envd's clients wait for that WRITE of a new file.
        if (st !== undefined && st.size > 0) this.emit({ name, type: EventType.WRITE });
        return;
      case "addDir":
        this.emit({ name, type: EventType.CREATE });
        return;
      case "unlink":
      case "unlinkDir":
        this.seen.delete(name);
        this.emit({ name, type: EventType.REMOVE });
        return;
      case "change":
        for (const type of this.changeTypes(name, st)) this.emit({ name, type });
        return;
    }
  }

  dispose(): void {
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
}
