/**
 * Gives memory back once the agent is idle. After load V8 keeps the garbage of the burst until its
 * next full collection, which an idle agent never needs, and glibc keeps what was freed in its
 * arenas: measured after 300 streams of 10 MiB, RSS 445 MB for 25 MB of live heap, 192 MB of
 * Buffers waiting for a collection, and still 409 MB once V8 had collected them. So once no
 * request has been in flight, begun or ended for a while, one full collection runs and then
 * malloc_trim(0) (native/mem-trim) returns the free pages: a few ms to a few tens, on a loop
 * that has nothing else to do.
 *
 * Twice per idle spell: at IDLE_MS, and again once the output of exited processes, kept
 * EXITED_RETENTION_MS for late Connects, has been let go.
 *
 * The trim runs again TRIM_AGAIN_MS after each collection: V8 frees the backing stores of the
 * Buffers it collected on a background thread, after gc() returns, so the first trim finds most
 * of them still allocated (measured after 300 streams of 10 MiB: 333 MB before the second trim,
 * 98 MB after it).
 */
import { createRequire } from "node:module";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { EXITED_RETENTION_MS } from "./services/process/limits.js";

/** How long without any request before the agent counts as idle. */
const IDLE_MS = 5_000;
/** How often idleness is looked at; unref'd, it never keeps the agent alive. */
const CHECK_MS = 2_500;
/** How long after a collection the allocator is trimmed again (see above). */
const TRIM_AGAIN_MS = 1_000;

interface MemTrim {
  trim(): boolean;
}

const memTrim = createRequire(import.meta.url)("../native/mem-trim/build/Release/mem_trim.node") as MemTrim;

/** V8's gc(), reached without starting node with --expose-gc. */
function exposeGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

export interface IdleMemoryOptions {
  /** Idle times (ms since the last request) at which to collect, in increasing order. */
  readonly collectAfterMs: readonly number[];
  readonly checkMs: number;
  /** Run before each collection: what else can be let go when idle (threads that are not needed). */
  readonly release?: readonly (() => Promise<void>)[];
}

const DEFAULT_OPTIONS: IdleMemoryOptions = { collectAfterMs: [IDLE_MS, IDLE_MS + EXITED_RETENTION_MS + CHECK_MS], checkMs: CHECK_MS };

export class IdleMemory {
  private inFlight = 0;
  private lastActivity = Date.now();
  /** Index into collectAfterMs of the next collection of this idle spell. */
  private next = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly gc = exposeGc();
  /** How many collections this ran, for tests. */
  collections = 0;

  private collecting = false;
  private readonly options: IdleMemoryOptions;

  constructor(options: Partial<IdleMemoryOptions> = {}) {
    this.options = { ...DEFAULT_OPTIONS, ...options };
    this.timer = setInterval(() => this.check(), this.options.checkMs);
    this.timer.unref();
  }

  requestStarted(): void {
    this.inFlight++;
    this.activity();
  }

  requestEnded(): void {
    this.inFlight--;
    this.activity();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private activity(): void {
    this.lastActivity = Date.now();
    this.next = 0;
  }

  private check(): void {
    if (this.inFlight > 0 || this.collecting) return;
    const due = this.options.collectAfterMs[this.next];
    if (due === undefined || Date.now() - this.lastActivity < due) return;
    this.next++;
    this.collecting = true;
    // A thread's memory is freed once it has ended: the collection and the trim come after.
    void Promise.allSettled((this.options.release ?? []).map((release) => release())).then(() => {
      this.collecting = false;
      this.gc();
      memTrim.trim();
      this.collections++;
      setTimeout(() => memTrim.trim(), TRIM_AGAIN_MS).unref();
    });
  }
}
