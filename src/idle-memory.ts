/**
 * Gives memory back once the agent is idle. After load V8 keeps the garbage of the burst until its
 * next full collection, which an idle agent never needs: measured after a soak, heap 200 MB and
 * RSS 330 MB, 27 MB and 133 MB after one full collection. So when no request has been in flight,
 * begun or ended for IDLE_MS, and the heap has grown since the last collection done here, one full
 * collection runs (a few ms to a few tens, on a loop that has nothing else to do).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** How long without any request before the agent counts as idle. */
const IDLE_MS = 5_000;
/** How often idleness is looked at; unref'd, it never keeps the agent alive. */
const CHECK_MS = 2_500;
/** Heap growth since the last collection done here that makes another worth it. */
const GROWTH_BYTES = 16 * 1024 * 1024;

/** V8's gc(), reached without starting node with --expose-gc. */
function exposeGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

export interface IdleMemoryOptions {
  readonly idleMs: number;
  readonly checkMs: number;
  readonly growthBytes: number;
}

export class IdleMemory {
  private inFlight = 0;
  private lastActivity = Date.now();
  private heapAfterGc = process.memoryUsage().heapUsed;
  private readonly timer: NodeJS.Timeout;
  private readonly gc = exposeGc();
  /** How many collections this ran, for tests and metrics. */
  collections = 0;

  constructor(private readonly options: IdleMemoryOptions = { idleMs: IDLE_MS, checkMs: CHECK_MS, growthBytes: GROWTH_BYTES }) {
    this.timer = setInterval(() => this.check(), options.checkMs);
    this.timer.unref();
  }

  requestStarted(): void {
    this.inFlight++;
    this.lastActivity = Date.now();
  }

  requestEnded(): void {
    this.inFlight--;
    this.lastActivity = Date.now();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    if (this.inFlight > 0 || Date.now() - this.lastActivity < this.options.idleMs) return;
    if (process.memoryUsage().heapUsed - this.heapAfterGc < this.options.growthBytes) return;
    this.gc();
    this.collections++;
    this.heapAfterGc = process.memoryUsage().heapUsed;
  }
}
