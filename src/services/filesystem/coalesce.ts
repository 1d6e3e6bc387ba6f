/**
 * Turns a burst of file-system events into a short, ordered batch. Events are collected for a
 * fixed window after the first one arrives, then delivered together:
 *  - a WRITE (or CHMOD) to a file whose latest pending event is already a WRITE (or CHMOD) is
 *    folded into it, so a hundred appends become one WRITE per window, and a CREATE followed by
 *    writes stays one CREATE and one WRITE;
 *  - nothing else is merged or dropped, and what is delivered keeps the order in which it
 *    happened (it is a subsequence of the real sequence, per file and across files).
 * The window is fixed rather than sliding, so a file written non-stop still reports once per
 * window instead of never.
 */
import { EventType } from "../../gen/sandboxagent/api_pb.js";

export interface WatchEvent {
  /** Relative to the watched directory; "" is the directory itself. */
  readonly name: string;
  readonly type: EventType;
}

/** Cloudflare's sandbox coalesces over ~75 ms: long enough for an editor's save, short enough to feel live. */
export const COALESCE_WINDOW_MS = 75;

/** A window that fills this much is delivered at once, so a mass delete cannot pile up in memory. */
const MAX_BATCH = 1024;

const FOLDABLE = new Set<EventType>([EventType.WRITE, EventType.CHMOD]);

export class Coalescer {
  private pending: WatchEvent[] = [];
  private readonly latest = new Map<string, EventType>();
  private timer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    private readonly deliver: (batch: readonly WatchEvent[]) => void,
    private readonly windowMs: number = COALESCE_WINDOW_MS,
  ) {}

  push(event: WatchEvent): void {
    if (this.disposed) return;
    if (FOLDABLE.has(event.type) && this.latest.get(event.name) === event.type) return;
    this.pending.push(event);
    this.latest.set(event.name, event.type);
    if (this.pending.length >= MAX_BATCH) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.windowMs);
  }

  /** Delivers whatever is pending now. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.latest.clear();
    this.deliver(batch);
  }

  /** Drops what is pending; nothing is delivered afterwards. */
  dispose(): void {
    this.disposed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = [];
    this.latest.clear();
  }
}
