/**
 * A bound on how many file-system calls one request keeps in flight: enough to keep libuv's
 * thread pool busy, few enough that one huge listing or copy does not starve other requests.
 * `lstatAll` uses callbacks rather than fs/promises: for thousands of entries the promise API
 * costs several times more than the system calls themselves (measured: 10,000 lstat calls take
 * ~25 ms this way, ~100 ms through `Promise.all` of `fs.promises.lstat`).
 */
import { lstat, type Stats } from "node:fs";

type Job = (release: () => void) => void;

export class FsPool {
  private active = 0;
  private queue: Array<Job | undefined> = [];
  private head = 0;

  constructor(
    private readonly concurrency: number,
    private readonly signal?: AbortSignal,
  ) {}

  /** lstat of every path, in order; each slot holds the Stats or the error for that path. */
  lstatAll(paths: readonly string[]): Promise<Array<Stats | NodeJS.ErrnoException>> {
    return new Promise((resolve) => {
      const results = new Array<Stats | NodeJS.ErrnoException>(paths.length);
      let left = paths.length;
      if (left === 0) resolve(results);
      paths.forEach((path, i) => {
        const finish = (result: Stats | NodeJS.ErrnoException, release: () => void): void => {
          results[i] = result;
          release();
          if (--left === 0) resolve(results);
        };
        this.schedule((release) => {
          if (this.signal?.aborted) {
            // Asynchronously, or thousands of queued jobs would release each other recursively.
            const reason = this.signal.reason as NodeJS.ErrnoException;
            queueMicrotask(() => finish(reason, release));
            return;
          }
          lstat(path, (err, st) => finish(err ?? st, release));
        });
      });
    });
  }

  /** Runs `task` once a slot is free. */
  run<T>(task: () => Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.schedule((release) => {
        const started = this.signal?.aborted ? Promise.reject(this.signal.reason) : task();
        started.then(resolve, reject).finally(release);
      });
    });
  }

  private schedule(job: Job): void {
    if (this.active < this.concurrency) {
      this.active++;
      job(() => this.release());
    } else {
      this.queue.push(job);
    }
  }

  private release(): void {
    if (this.head < this.queue.length) {
      // The slot passes straight to the next job, so no newcomer can slip in between.
      const next = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      }
      next(() => this.release());
    } else {
      this.active--;
    }
  }
}
